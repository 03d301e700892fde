package xds

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// TestEndpointChangeKeepsOtherResources: an input that only moves
// endpoints rebuilds the load assignments and reuses the clusters and
// virtual hosts of the views it rebuilds, so their encodings are not
// marshalled again.
func TestEndpointChangeKeepsOtherResources(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond})
	lookup := decodeSnapshot(t, 1, twoMeshes)
	s.Update(lookup, staticEndpoints{"a/x": {{Address: "10.0.1.1", Port: 9080, Healthy: true}}})
	c := dialADS(t, addr, "mesh/a/virtualNode/c")
	c.until(10*time.Second, "the first configuration", c.synced)
	c.settle()
	pushed := func() *View {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.nodes["mesh/a/virtualNode/c"].pushed
	}
	before := pushed()

	s.Update(lookup, staticEndpoints{"a/x": {{Address: "10.0.1.1", Port: 9080, Healthy: true}, {Address: "10.0.1.2", Port: 9080, Healthy: true}}})
	const cluster = "cds_egress_a_x_http_9080"
	c.until(10*time.Second, "the new endpoint", func() bool {
		cla := claOf(t, c.last[resource.EndpointType], cluster)
		return cla != nil && countEndpoints(cla) == 2
	})
	c.settle()
	after := pushed()
	if after == before {
		t.Fatal("the view was not rebuilt")
	}
	if len(after.Clusters) != len(before.Clusters) || len(after.Clusters) == 0 {
		t.Fatalf("clusters %d, then %d", len(before.Clusters), len(after.Clusters))
	}
	for i := range after.Clusters {
		if after.Clusters[i] != before.Clusters[i] {
			t.Errorf("cluster %s was built again for an endpoint change", after.Clusters[i].Name)
		}
	}
	if !slices.Equal(after.Listeners, before.Listeners) || !slices.Equal(after.Routes, before.Routes) || len(after.Routes) == 0 {
		t.Errorf("the listeners and routes were built again for an endpoint change")
	}
	for i, rc := range after.Routes {
		for j, vh := range rc.VirtualHosts {
			if vh != before.Routes[i].VirtualHosts[j] {
				t.Errorf("virtual host %s of %s was built again for an endpoint change", vh.Name, rc.Name)
			}
		}
	}
	if after.Endpoints[0] == before.Endpoints[0] {
		t.Errorf("the load assignment was not rebuilt")
	}
}

// TestWithEndpointsIsTranslate: for random endpoint changes, the view
// rebuilt from the previous view's load assignment requests (what the
// server does when only endpoints changed) is exactly the view translated
// afresh from the new endpoints, for every node and gateway of the test
// meshes in both flavours: the same resources, notes and used nodes.
func TestWithEndpointsIsTranslate(t *testing.T) {
	t.Parallel()
	lookup := loadMesh(t, "testdata/mesh.yaml")
	var ids []nodeid.ID
	for _, vn := range lookup.List(v1alpha1.KindVirtualNode, "", "") {
		ids = append(ids, nodeid.ID{Mesh: vn.Mesh, Kind: nodeid.VirtualNode, Name: vn.Name})
	}
	for _, gw := range lookup.List(v1alpha1.KindVirtualGateway, "", "") {
		ids = append(ids, nodeid.ID{Mesh: gw.Mesh, Kind: nodeid.VirtualGateway, Name: gw.Name})
	}
	keys := slices.Sorted(maps.Keys(fixtureEndpoints()))
	r := rand.New(rand.NewPCG(1, 2))
	randomEndpoints := func() staticEndpoints {
		out := staticEndpoints{}
		for _, k := range keys {
			for i := range r.IntN(4) {
				out[k] = append(out[k], Endpoint{Address: fmt.Sprintf("10.9.%d.%d", r.IntN(3), i), Port: uint32(r.IntN(2) * 8080),
					Healthy: r.IntN(3) > 0, Zone: []string{"", "a", "b"}[r.IntN(3)]})
			}
		}
		return out
	}
	tr := newTranslator(lookup, randomEndpoints())
	views := map[string]*View{}
	for _, id := range ids {
		for _, fl := range []Flavour{FlavourEnvoy, FlavourProxyless} {
			views[nodeKey(id, fl)] = tr.view(id, fl)
		}
	}
	for step := range 20 {
		eps := randomEndpoints()
		tr = tr.derive(eps)
		fresh := newTranslator(lookup, eps)
		for _, id := range ids {
			for _, fl := range []Flavour{FlavourEnvoy, FlavourProxyless} {
				key := nodeKey(id, fl)
				got, want := tr.withEndpoints(views[key]), fresh.view(id, fl)
				if d := viewDiff(got, want); d != "" {
					t.Fatalf("step %d, %s: %s", step, key, d)
				}
				views[key] = got
			}
		}
	}
}

// viewDiff says how two views differ, or "" when they are equal.
func viewDiff(a, b *View) string {
	eq := func(what string, x, y []proto.Message) string {
		if len(x) != len(y) {
			return fmt.Sprintf("%d %s, want %d", len(x), what, len(y))
		}
		for i := range x {
			if !proto.Equal(x[i], y[i]) {
				return fmt.Sprintf("%s %d differs:\n%v\nwant\n%v", what, i, x[i], y[i])
			}
		}
		return ""
	}
	msgs := func(xs any) []proto.Message {
		var out []proto.Message
		switch v := xs.(type) {
		case []*listenerv3.Listener:
			for _, m := range v {
				out = append(out, m)
			}
		case []*routev3.RouteConfiguration:
			for _, m := range v {
				out = append(out, m)
			}
		case []*clusterv3.Cluster:
			for _, m := range v {
				out = append(out, m)
			}
		case []*endpointv3.ClusterLoadAssignment:
			for _, m := range v {
				out = append(out, m)
			}
		}
		return out
	}
	if d := cmp.Or(
		eq("listeners", msgs(a.Listeners), msgs(b.Listeners)),
		eq("routes", msgs(a.Routes), msgs(b.Routes)),
		eq("clusters", msgs(a.Clusters), msgs(b.Clusters)),
		eq("load assignments", msgs(a.Endpoints), msgs(b.Endpoints)),
	); d != "" {
		return d
	}
	if !slices.Equal(a.Notes, b.Notes) || !maps.Equal(a.uses, b.uses) || a.Missing != b.Missing {
		return fmt.Sprintf("notes %v uses %v missing %v, want %v %v %v", a.Notes, a.uses, a.Missing, b.Notes, b.uses, b.Missing)
	}
	return ""
}
