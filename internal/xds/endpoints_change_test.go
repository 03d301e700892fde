package xds

import (
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/store"
)

const twoMeshes = `
kind: Mesh
name: a
---
kind: Mesh
name: b
---
kind: VirtualNode
mesh: a
name: x
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: a.local, serviceName: x}}
---
kind: VirtualService
mesh: a
name: x.a.local
spec: {provider: {virtualNode: {virtualNodeName: x}}}
---
kind: VirtualNode
mesh: a
name: c
spec:
  backends: [{virtualService: {virtualServiceName: x.a.local}}]
---
kind: VirtualNode
mesh: b
name: yy
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: b.local, serviceName: yy}}
`

func decodeSnapshot(t testing.TB, rev uint64, doc string) *store.Snapshot {
	t.Helper()
	rs, err := v1alpha1.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return store.NewSnapshot(rev, rs)
}

// TestEndpointChangeAfterUpdateThatRebuiltNothing: an update that changes
// no connected data plane's view (an instance in another mesh) must not
// make the server forget what the connected views were built from, or the
// next real endpoint change is never pushed.
func TestEndpointChangeAfterUpdateThatRebuiltNothing(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond})
	lookup := decodeSnapshot(t, 1, twoMeshes)
	s.Update(lookup, staticEndpoints{})
	c := dialADS(t, addr, "mesh/a/virtualNode/c")
	c.until(10*time.Second, "the first configuration", c.synced)
	const cluster = "cds_egress_a_x_http_9080"
	if cla := claOf(t, c.last[resource.EndpointType], cluster); cla == nil || countEndpoints(cla) != 0 {
		t.Fatalf("load assignment of x = %v, want an empty one", cla)
	}
	c.settle()

	// An instance of b/yy: nothing connected sees mesh b.
	s.Update(lookup, staticEndpoints{"b/yy": {{Address: "10.0.2.1", Port: 9080, Healthy: true}}})
	c.settle()
	// Then an instance of a/x: c must receive it.
	s.Update(lookup, staticEndpoints{
		"b/yy": {{Address: "10.0.2.1", Port: 9080, Healthy: true}},
		"a/x":  {{Address: "10.0.1.1", Port: 9080, Healthy: true}},
	})
	c.until(5*time.Second, "the endpoint of x", func() bool {
		cla := claOf(t, c.last[resource.EndpointType], cluster)
		return cla != nil && countEndpoints(cla) == 1
	})
}
