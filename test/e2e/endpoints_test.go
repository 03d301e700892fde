package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEndpointChangeAfterChangeInAnotherMesh: a sidecar of mesh a gets an
// instance registered for its backend even when the registration before
// it (in mesh b) changed no connected sidecar's view.
func TestEndpointChangeAfterChangeInAnotherMesh(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, `
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
`, "apply", "-f", "-")
	p := startProxy(t, s, "mesh/a/virtualNode/c", true, "--register=false", "--egress-addr", "127.0.0.1:0")
	clusters := func() string {
		resp, err := http.Get("http://" + p.admin + "/clusters")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	eventually(t, 10*time.Second, "c has the cluster of x", func() error {
		if cl := clusters(); !strings.Contains(cl, "cds_egress_a_x_http_9080::") {
			return fmt.Errorf("/clusters:\n%s", cl)
		}
		return nil
	})
	register(t, s, "b", "yy", "i1", "127.0.0.2", 9080)
	time.Sleep(time.Second) // the control plane applies mesh b's change on its own
	register(t, s, "a", "x", "i1", "127.0.0.3", 9080)
	eventually(t, 6*time.Second, "c has the endpoint of x", func() error {
		if cl := clusters(); !strings.Contains(cl, "cds_egress_a_x_http_9080::127.0.0.3:9080::") {
			return fmt.Errorf("/clusters:\n%s", grepLines(cl, "cds_egress_a_x"))
		}
		return nil
	})
}
