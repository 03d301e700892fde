package xdssim

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMeshDocs(t *testing.T) {
	docs := meshDocs(10, 5, 90, 10)
	for kind, want := range map[string]int{"VirtualNode": 10, "VirtualRouter": 10, "Route": 10, "VirtualService": 10, "Mesh": 1} {
		if got := strings.Count(docs, "kind: "+kind+"\n"); got != want {
			t.Errorf("%d %s documents, want %d", got, kind, want)
		}
	}
	// Every node calls the shared service 0, node 0 included.
	if got := strings.Count(docs, "virtualServiceName: svc-0.scale.local"); got != 10 {
		t.Errorf("%d nodes call the shared service, want 10", got)
	}
}

func TestHasWeights(t *testing.T) {
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Routes: []*routev3.Route{{
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
			WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
				{Name: "a", Weight: wrapperspb.UInt32(newWeightA)}, {Name: "b", Weight: wrapperspb.UInt32(newWeightB)},
			}},
		}}},
	}}}}}
	b, err := proto.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	if has, err := hasWeights(b, newWeightA, newWeightB); !has || err != nil {
		t.Errorf("weights not recognised (%v)", err)
	}
	if has, err := hasWeights(b, 90, 10); has || err != nil {
		t.Errorf("other weights recognised (%v)", err)
	}
	if _, err := hasWeights(b[:len(b)-1], newWeightA, newWeightB); err == nil {
		t.Error("a truncated route configuration is accepted")
	}
}

// hasWeightsDecoded is hasWeights on a decoded route configuration.
func hasWeightsDecoded(rc *routev3.RouteConfiguration, a, b uint32) bool {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			var got []uint32
			for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				got = append(got, wc.GetWeight().GetValue())
			}
			if len(got) == 2 && got[0] == a && got[1] == b {
				return true
			}
		}
	}
	return false
}

// FuzzHasWeights: the wire walk never panics, and agrees with a full
// decode on the encoding a server sends (each field once, as proto.Marshal
// writes it; the walk does not merge repeated occurrences of a message
// field as a full decode does).
func FuzzHasWeights(f *testing.F) {
	rc := &routev3.RouteConfiguration{Name: "x", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Routes: []*routev3.Route{{
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
			WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
				{Name: "a", Weight: wrapperspb.UInt32(newWeightA)}, {Name: "b", Weight: wrapperspb.UInt32(newWeightB)},
			}},
		}}},
	}}}}}
	b, _ := proto.Marshal(rc)
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var rc routev3.RouteConfiguration
		if proto.Unmarshal(b, &rc) != nil {
			hasWeights(b, newWeightA, newWeightB) // must not panic
			return
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&rc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := hasWeights(b, newWeightA, newWeightB)
		if err != nil {
			t.Fatalf("hasWeights: %v on a route configuration proto accepts", err)
		}
		if want := hasWeightsDecoded(&rc, newWeightA, newWeightB); got != want {
			t.Fatalf("hasWeights = %v, decoded = %v", got, want)
		}
	})
}

// TestMeshChunks: the mesh split for an etcd store keeps every batch
// under the limit and every reference resolvable: the mesh and nodes
// first, then routers, routes and services.
func TestMeshChunks(t *testing.T) {
	chunks := meshChunks(250, 5, 90, 10, 100)
	whole := strings.Count(meshDocs(250, 5, 90, 10), "kind: ")
	total := 0
	order := []string{"kind: Mesh", "kind: VirtualNode", "kind: VirtualRouter", "kind: Route", "kind: VirtualService"}
	last := 0
	for i, c := range chunks {
		n := strings.Count(c, "kind: ")
		if n > 100 {
			t.Fatalf("chunk %d holds %d resources", i, n)
		}
		total += n
		for _, doc := range strings.Split(c, "---\n") {
			rank := -1
			for r, prefix := range order {
				if strings.HasPrefix(doc, prefix+"\n") {
					rank = r
				}
			}
			if rank < last {
				t.Fatalf("chunk %d: %q comes after a later kind", i, strings.SplitN(doc, "\n", 2)[0])
			}
			last = rank
		}
	}
	if total != whole {
		t.Fatalf("chunks hold %d resources, the mesh %d", total, whole)
	}
}
