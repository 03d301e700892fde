package xds

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
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
	h := newHasher()
	views := map[string]*View{}
	for _, id := range ids {
		for _, fl := range []Flavour{FlavourEnvoy, FlavourProxyless} {
			views[nodeKey(id, fl)] = tr.view(id, fl)
			views[nodeKey(id, fl)].snapshot(h)
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
				// The snapshot of the rebuilt view, which starts with the
				// previous view's encodings, is that of the fresh one.
				gotSnap, gotV, gotErr := got.snapshot(h)
				wantSnap, wantV, wantErr := want.snapshot(newHasher())
				if gotV != wantV || (gotErr == nil) != (wantErr == nil) {
					t.Fatalf("step %d, %s: versions %+v (%v), want %+v (%v)", step, key, gotV, gotErr, wantV, wantErr)
				}
				if gotErr == nil {
					for typ := range gotSnap.Resources {
						g, w := gotSnap.Resources[typ].Items, wantSnap.Resources[typ].Items
						if !slices.Equal(slices.Sorted(maps.Keys(g)), slices.Sorted(maps.Keys(w))) {
							t.Fatalf("step %d, %s: type %d: resources %v, want %v", step, key, typ, slices.Sorted(maps.Keys(g)), slices.Sorted(maps.Keys(w)))
						}
						for name := range g {
							if !bytes.Equal(g[name].Resource.(*encoded).bytes(), w[name].Resource.(*encoded).bytes()) {
								t.Fatalf("step %d, %s: %s encodes differently", step, key, name)
							}
						}
					}
				}
				views[key] = got
			}
		}
	}
}

// TestEndpointChangeEncodesOnlyWhatChanged: when the instances of one
// virtual node change, and every data plane calls it, each view's load
// assignments are rebuilt but only the one of that node is built and
// marshalled again; the others are the objects already encoded, and the
// listeners, routes and clusters keep their versions without being
// hashed again.
func TestEndpointChangeEncodesOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	const services = 40
	lookup := loadMesh(t, scaleMesh(t, services, 3, 90, 10))
	eps := staticEndpoints{}
	for i := range services {
		node := fmt.Sprintf("scale/n-%d", i)
		for k := range 3 {
			eps[node] = append(eps[node], Endpoint{Address: fmt.Sprintf("10.1.%d.%d", i, k+1), Port: 8080, Healthy: true})
		}
	}
	tr := newTranslator(lookup, eps)
	h := newHasher()
	type built struct {
		v  *View
		tv typeVersions
	}
	views := make([]built, services)
	for i := range views {
		v := tr.view(nodeid.ID{Mesh: "scale", Kind: nodeid.VirtualNode, Name: fmt.Sprintf("n-%d", i)}, FlavourEnvoy)
		_, tv, err := v.snapshot(h)
		if err != nil {
			t.Fatal(err)
		}
		views[i] = built{v, tv}
	}

	next := maps.Clone(eps)
	next["scale/n-0"] = append(slices.Clone(eps["scale/n-0"]), Endpoint{Address: "10.2.0.1", Port: 8080, Healthy: true})
	d := tr.derive(next)
	before := h.marshals.Load()
	for i, b := range views {
		v := d.withEndpoints(b.v)
		_, tv, err := v.snapshot(h)
		if err != nil {
			t.Fatal(err)
		}
		if tv.Listeners != b.tv.Listeners || tv.Routes != b.tv.Routes || tv.Clusters != b.tv.Clusters {
			t.Errorf("n-%d: versions %+v, then %+v: only the load assignments changed", i, b.tv, tv)
		}
		if tv.Endpoints == b.tv.Endpoints {
			t.Errorf("n-%d: the load assignments kept their version %s, though every node calls n-0", i, tv.Endpoints)
		}
		for j, cla := range v.Endpoints {
			changed := strings.Contains(cla.ClusterName, "_n-0_")
			if same := cla == b.v.Endpoints[j]; same == changed {
				t.Errorf("n-%d: load assignment %s rebuilt: %v", i, cla.ClusterName, !same)
			}
		}
	}
	if n := h.marshals.Load() - before; n != 1 {
		t.Errorf("the endpoint change marshalled %d resources, want 1 (the load assignment of n-0)", n)
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
