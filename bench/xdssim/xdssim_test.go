package xdssim

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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
	if !hasWeights(rc, newWeightA, newWeightB) || hasWeights(rc, 90, 10) {
		t.Error("weights not recognised")
	}
}
