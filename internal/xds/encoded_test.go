package xds

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/nodeid"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// TestEncodedMarshalsToTheResource: what go-control-plane writes for an
// encoded resource is the resource's own deterministic encoding, under its
// name.
func TestEncodedMarshalsToTheResource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		m    types.Resource
	}{
		{"c1", &clusterv3.Cluster{Name: "c1", ConnectTimeout: nil, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}},
		{"c2", &endpointv3.ClusterLoadAssignment{ClusterName: "c2", Endpoints: []*endpointv3.LocalityLbEndpoints{{Priority: 1}}}},
	} {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		e := newHasher().encode(tc.m)
		got, err := cache.MarshalResource(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: marshals to %x, want %x", tc.name, got, want)
		}
		if n := cache.GetResourceName(e); n != tc.name {
			t.Errorf("name %q, want %q", n, tc.name)
		}
		back := tc.m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(got, back); err != nil || !proto.Equal(back, tc.m) {
			t.Errorf("%s: decodes to %v (%v), want %v", tc.name, back, err, tc.m)
		}
	}
}

const sharedBackend = twoMeshes + `
---
kind: VirtualNode
mesh: a
name: d
spec:
  backends: [{virtualService: {virtualServiceName: x.a.local}}]
`

// TestServerMarshalsEachResourceOnce: however many streams and data planes
// receive a resource, the server marshals it once, and the caches hold
// the encoding, which go-control-plane copies into each response rather
// than marshalling the resource again per stream.
func TestServerMarshalsEachResourceOnce(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond})
	s.Update(decodeSnapshot(t, 1, sharedBackend), staticEndpoints{
		"a/x": {{Address: "10.0.1.1", Port: 9080, Healthy: true}},
	})
	var clients []*adsClient
	for _, node := range []string{"c", "d"} {
		for range 4 {
			clients = append(clients, dialADS(t, addr, "mesh/a/virtualNode/"+node))
		}
	}
	for _, c := range clients {
		c.until(10*time.Second, "the first configuration", c.synced)
	}
	for _, c := range clients {
		c.settle()
	}

	s.mu.Lock()
	h := s.hash
	distinct := map[proto.Message]bool{}
	for _, n := range s.nodes {
		for _, r := range n.pushed.Listeners {
			distinct[r] = true
		}
		for _, r := range n.pushed.Routes {
			distinct[r] = true
		}
		for _, r := range n.pushed.Clusters {
			distinct[r] = true
		}
		for _, r := range n.pushed.Endpoints {
			distinct[r] = true
		}
	}
	s.mu.Unlock()
	if got := h.marshals.Load(); got != int64(len(distinct)) {
		t.Errorf("%d resources marshalled for %d streams of 2 data planes holding %d distinct resources, want one each",
			got, len(clients), len(distinct))
	}

	// Both data planes' snapshots hold one encoding of the shared
	// cluster's load assignment.
	const shared = "cds_egress_a_x_http_9080"
	var encs []*encoded
	for _, key := range []string{"mesh/a/virtualNode/c", "mesh/a/virtualNode/d"} {
		snap, err := s.ads.GetSnapshot(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType} {
			for name, r := range snap.GetResources(typ) {
				if _, ok := r.(*encoded); !ok {
					t.Errorf("%s: %s %s is held as %T, which is marshalled again for every stream", key, typ, name, r)
				}
			}
		}
		e, _ := snap.GetResources(resource.EndpointType)[shared].(*encoded)
		if e == nil {
			t.Fatalf("%s: no load assignment %s", key, shared)
		}
		encs = append(encs, e)
	}
	if encs[0] != encs[1] {
		t.Errorf("the shared load assignment is encoded once per data plane")
	}
	// And every stream received exactly those bytes.
	for _, c := range clients {
		var found bool
		for _, a := range c.last[resource.EndpointType].GetResources() {
			cla := &endpointv3.ClusterLoadAssignment{}
			if err := a.UnmarshalTo(cla); err != nil {
				t.Fatal(err)
			}
			if cla.ClusterName == shared {
				found = true
				if !bytes.Equal(a.GetValue(), encs[0].bytes()) {
					t.Errorf("stream received %x, want the encoding %x", a.GetValue(), encs[0].bytes())
				}
			}
		}
		if !found {
			t.Errorf("a stream did not receive %s", shared)
		}
	}
}

// TestEncodedMarshalsWithoutCopy: marshalling an encoded resource, as
// go-control-plane does for every stream it answers, hands out the
// encoding itself rather than a copy, and appending to what it returned
// leaves the encoding as it was.
func TestEncodedMarshalsWithoutCopy(t *testing.T) {
	t.Parallel()
	m := &clusterv3.Cluster{Name: "c1", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
	e := newHasher().encode(m)
	want := bytes.Clone(e.bytes())
	got, err := cache.MarshalResource(e)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || &got[0] != &e.bytes()[0] {
		t.Error("marshalling copied the encoding")
	}
	_ = append(got, 1, 2, 3)
	if !bytes.Equal(e.bytes(), want) {
		t.Error("appending to the marshalled bytes changed the encoding")
	}
	prefix := []byte{9}
	out, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(prefix, e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, append([]byte{9}, want...)) || !bytes.Equal(e.bytes(), want) {
		t.Errorf("MarshalAppend gave %x", out)
	}
	if n := proto.Size(e); n != len(want) {
		t.Errorf("size %d, want %d", n, len(want))
	}
}

// TestEncodeRoutesIsMarshal: a route configuration encoded out of its
// virtual hosts' encodings is byte for byte its deterministic
// marshalling, for the route configurations of translated views and for
// ones that set fields on both sides of the virtual hosts.
func TestEncodeRoutesIsMarshal(t *testing.T) {
	t.Parallel()
	var rcs []*routev3.RouteConfiguration
	lookup := loadMesh(t, scaleMesh(t, 20, 4, 60, 40))
	tr := newTranslator(lookup, staticEndpoints{})
	for i := range 20 {
		v := tr.view(nodeid.ID{Mesh: "scale", Kind: nodeid.VirtualNode, Name: fmt.Sprintf("n-%d", i)}, FlavourEnvoy)
		rcs = append(rcs, v.Routes...)
	}
	vh := func(name string) *routev3.VirtualHost {
		return &routev3.VirtualHost{Name: name, Domains: []string{name, name + ":80"}, Routes: []*routev3.Route{{
			Name:  "r",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		}}}
	}
	rcs = append(rcs,
		&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vh("a"), vh("b")}},
		&routev3.RouteConfiguration{
			Name:                            "full",
			VirtualHosts:                    []*routev3.VirtualHost{vh("b"), vh("a"), vh("c")},
			InternalOnlyHeaders:             []string{"x-internal"},
			ResponseHeadersToRemove:         []string{"server"},
			ValidateClusters:                wrapperspb.Bool(false),
			MaxDirectResponseBodySizeBytes:  wrapperspb.UInt32(4096),
			MostSpecificHeaderMutationsWins: true,
		})
	seen := 0
	for _, rc := range rcs {
		if len(rc.VirtualHosts) < 2 {
			continue
		}
		seen++
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(rc)
		if err != nil {
			t.Fatal(err)
		}
		h := newHasher()
		if got := h.encode(rc).bytes(); !bytes.Equal(got, want) {
			t.Errorf("route configuration %q: encoded as\n%x\nwant\n%x", rc.Name, got, want)
		}
		if got, want := h.encode(rc).hash, contentHash(rc); got != want {
			t.Errorf("route configuration %q: hash %s, want %s", rc.Name, got, want)
		}
	}
	if seen < 20 {
		t.Fatalf("only %d route configurations with several virtual hosts", seen)
	}
}

// TestVirtualHostsEncodedOnce: the virtual host of a service that many
// data planes call is marshalled once, however many route
// configurations hold it.
func TestVirtualHostsEncodedOnce(t *testing.T) {
	t.Parallel()
	lookup := loadMesh(t, scaleMesh(t, 50, 3, 60, 40))
	tr := newTranslator(lookup, staticEndpoints{})
	h := newHasher()
	vhosts := map[*routev3.VirtualHost]bool{}
	var views []*View
	for i := range 50 {
		v := tr.view(nodeid.ID{Mesh: "scale", Kind: nodeid.VirtualNode, Name: fmt.Sprintf("n-%d", i)}, FlavourEnvoy)
		views = append(views, v)
		for _, rc := range v.Routes {
			if len(rc.VirtualHosts) > 1 {
				for _, vh := range rc.VirtualHosts {
					vhosts[vh] = true
				}
			}
			h.encode(rc)
		}
	}
	routes := 0
	for _, v := range views {
		routes += len(v.Routes)
	}
	// Each route configuration once, and each distinct virtual host of
	// the ones with several (a single one is marshalled in place).
	if got, want := h.marshals.Load(), int64(routes+len(vhosts)); got != want {
		t.Errorf("%d marshals for %d route configurations of %d distinct virtual hosts, want %d", got, routes, len(vhosts), want)
	}
	runtime.KeepAlive(views)
}
