package controlplane

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/meshlens/meshlens/internal/console"
)

const validateMesh = `kind: Mesh
name: shop
---
kind: VirtualNode
mesh: shop
name: front
spec:
  backends: [{virtualService: {virtualServiceName: cart.shop.local}}]
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: front.shop.local}}
---
kind: VirtualNode
mesh: shop
name: cart-v1
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: cart-v1.shop.local}}
---
kind: VirtualNode
mesh: shop
name: cart-v2
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: cart-v2.shop.local}}
---
kind: VirtualRouter
mesh: shop
name: cart
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: VirtualService
mesh: shop
name: cart.shop.local
spec: {provider: {virtualRouter: {virtualRouterName: cart}}}
`

func cartRoute(v1, v2 string) string {
	return `kind: Route
mesh: shop
virtualRouter: cart
name: split
spec:
  httpRoute:
    match: {prefix: /}
    action: {weightedTargets: [{virtualNode: cart-v1, weight: ` + v1 + `}, {virtualNode: cart-v2, weight: ` + v2 + `}]}
`
}

func validate(t *testing.T, cp *runningCP, body string) ValidateResponse {
	t.Helper()
	resp, err := http.Post("http://"+cp.s.APIAddr()+"/v1/console/validate", "application/yaml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out ValidateResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %v", resp.Status, err)
	}
	return out
}

// A pasted weight change is checked and dry-run: the caller's proxy is
// the one whose route changes, with the old and new weights, and nothing
// is written. A bad spec gets its field path.
func TestConsoleValidateDryRunsTrafficChange(t *testing.T) {
	t.Parallel()
	cp := startCP(t, Config{Resolver: newFakeResolver()})
	cp.apply(t, validateMesh+"---\n"+cartRoute("50", "50"))
	rev := cp.s.store.Snapshot().Revision()

	out := validate(t, cp, cartRoute("90", "10"))
	if !out.Valid || out.Message != "" {
		t.Fatalf("valid change refused: %+v", out)
	}
	var front *console.ProxyDiff
	for i := range out.Changes {
		if out.Changes[i].Node == "mesh/shop/virtualNode/front" {
			front = &out.Changes[i]
		}
	}
	if front == nil || len(front.Routes) != 1 {
		t.Fatalf("changes %+v, want front's route", out.Changes)
	}
	rc := front.Routes[0]
	if rc.Change != "changed" || len(rc.Old) != 2 || len(rc.New) != 2 || rc.Old[0].Weight != 50 || rc.New[0].Weight != 90 || rc.New[1].Weight != 10 {
		t.Errorf("route change %+v, want 50/50 -> 90/10", rc)
	}
	if got := cp.s.store.Snapshot().Revision(); got != rev {
		t.Errorf("revision %d after a dry run, want %d", got, rev)
	}

	bad := validate(t, cp, cartRoute("90", "-1"))
	if bad.Valid || len(bad.Errors) == 0 || !strings.Contains(bad.Errors[0].Path, "weightedTargets[1].weight") {
		t.Errorf("bad weight: %+v, want an error at spec.httpRoute.action.weightedTargets[1].weight", bad)
	}
	unchanged := validate(t, cp, cartRoute("50", "50"))
	if !unchanged.Valid || len(unchanged.Changes) != 0 {
		t.Errorf("no-op: %+v, want valid, no changes", unchanged)
	}
}
