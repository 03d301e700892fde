package xds

import (
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
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
