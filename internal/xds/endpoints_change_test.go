package xds

import (
	"slices"
	"sync"
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

// rebuildCounter is a Metrics that records how many views each rebuild
// built.
type rebuildCounter struct {
	noMetrics
	mu     sync.Mutex
	builds []int
}

func (r *rebuildCounter) Rebuilt(n int, _ time.Duration) {
	r.mu.Lock()
	r.builds = append(r.builds, n)
	r.mu.Unlock()
}

func (r *rebuildCounter) take() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.builds
	r.builds = nil
	return out
}

// TestEndpointChangeRebuildsOnlyTheViewsThatUseIt: an endpoint change
// costs the data planes whose views contain that node's endpoints, not
// every data plane of the mesh.
func TestEndpointChangeRebuildsOnlyTheViewsThatUseIt(t *testing.T) {
	t.Parallel()
	m := &rebuildCounter{}
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond, Metrics: m})
	lookup := decodeSnapshot(t, 1, twoMeshes+`
---
kind: VirtualNode
mesh: a
name: z
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: a.local, serviceName: z}}
---
kind: VirtualService
mesh: a
name: z.a.local
spec: {provider: {virtualNode: {virtualNodeName: z}}}
---
kind: VirtualNode
mesh: a
name: d
spec:
  backends: [{virtualService: {virtualServiceName: z.a.local}}]
`)
	s.Update(lookup, staticEndpoints{})
	c := dialADS(t, addr, "mesh/a/virtualNode/c")
	d := dialADS(t, addr, "mesh/a/virtualNode/d")
	c.until(10*time.Second, "c's configuration", c.synced)
	d.until(10*time.Second, "d's configuration", d.synced)
	c.settle()
	d.settle()
	m.take()
	dEDS := d.acked[resource.EndpointType]

	s.Update(lookup, staticEndpoints{"a/x": {{Address: "10.0.1.1", Port: 9080, Healthy: true}}})
	c.until(5*time.Second, "the endpoint of x", func() bool {
		cla := claOf(t, c.last[resource.EndpointType], "cds_egress_a_x_http_9080")
		return cla != nil && countEndpoints(cla) == 1
	})
	d.settle()
	if got := m.take(); !slices.Equal(got, []int{1}) {
		t.Errorf("views rebuilt per rebuild: %v, want [1] (c only)", got)
	}
	if d.acked[resource.EndpointType] != dEDS {
		t.Errorf("d, which does not reach x, got new endpoints")
	}

	// z's endpoints reach d, and x's stay with c.
	s.Update(lookup, staticEndpoints{
		"a/x": {{Address: "10.0.1.1", Port: 9080, Healthy: true}},
		"a/z": {{Address: "10.0.3.1", Port: 9080, Healthy: true}},
	})
	d.until(5*time.Second, "the endpoint of z", func() bool {
		cla := claOf(t, d.last[resource.EndpointType], "cds_egress_a_z_http_9080")
		return cla != nil && countEndpoints(cla) == 1
	})
	c.settle()
	if cla := claOf(t, c.last[resource.EndpointType], "cds_egress_a_x_http_9080"); cla == nil || countEndpoints(cla) != 1 {
		t.Errorf("c's endpoints of x after z moved: %v", cla)
	}
}
