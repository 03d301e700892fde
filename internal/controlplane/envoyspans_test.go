package controlplane

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/auth"
	"github.com/meshlens/meshlens/internal/xds"
)

// TestEnvoySpanWarnings: with tokens on, a mesh whose tracing is the
// builtin provider warns, in describe, apply and dry-run, of the Envoy
// data planes connected to it, whose span exports carry no token and
// are refused; a mesh with an otlp provider does not.
func TestEnvoySpanWarnings(t *testing.T) {
	t.Parallel()
	tokens := tokenStore(t)
	write := newToken(t, tokens, auth.Spec{Role: auth.RoleWrite})
	node := newToken(t, tokens, auth.Spec{Mesh: "demo", Node: "web"})
	cp := startCP(t, Config{Auth: tokens})
	cp.api.Token = write
	const mesh = "kind: Mesh\nname: demo\nspec: {}\n"
	const otlp = "kind: Mesh\nname: demo\nspec:\n  meshlens:\n    tracing: {provider: otlp, endpoint: 127.0.0.1:4317}\n"
	cp.apply(t, mesh+"---\nkind: VirtualNode\nmesh: demo\nname: web\nspec:\n  listeners:\n    - portMapping: {port: 8080, protocol: http}\n  serviceDiscovery:\n    dns: {hostname: web.demo.local}\n")
	ctx := context.Background()
	key := v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: "demo"}
	spanWarning := func(ws []string) string {
		for _, w := range ws {
			if strings.Contains(w, "spec.meshlens.tracing") && strings.Contains(w, "Envoy") {
				return w
			}
		}
		return ""
	}
	d, err := cp.api.Describe(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if w := spanWarning(d.Warnings); w != "" {
		t.Fatalf("a warning before any Envoy connected: %s", w)
	}

	dialEDSWithToken(t, cp.s.XDSAddr(), "mesh/demo/virtualNode/web", node)
	eventually(t, 10*time.Second, func() string {
		if !slices.ContainsFunc(cp.s.xds.Nodes(), func(n xds.NodeStatus) bool { return n.ID == "mesh/demo/virtualNode/web" }) {
			return "the Envoy data plane is not connected"
		}
		return ""
	})
	d, err = cp.api.Describe(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	w := spanWarning(d.Warnings)
	if !strings.Contains(w, "1 Envoy data plane(s) connected (mesh/demo/virtualNode/web)") || !strings.Contains(w, "otlp provider") {
		t.Fatalf("describe's warnings %q: no warning of the Envoy data plane's refused spans", d.Warnings)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+cp.s.APIAddr()+"/v1/meshes/demo", nil)
	req.Header.Set("Authorization", "Bearer "+write)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if w := spanWarning(resp.Header.Values("Warning")); w == "" {
		t.Errorf("GET's Warning headers %q: none of the Envoy data plane's refused spans", resp.Header.Values("Warning"))
	}
	res, err := cp.api.Apply(ctx, []byte(mesh), false)
	if err != nil {
		t.Fatal(err)
	}
	if spanWarning(res.Warnings) == "" {
		t.Errorf("apply's warnings %q: none of the Envoy data plane's refused spans", res.Warnings)
	}
	res, err = cp.api.Apply(ctx, []byte(otlp), true)
	if err != nil {
		t.Fatal(err)
	}
	if w := spanWarning(res.Warnings); w != "" {
		t.Errorf("a dry run to an otlp provider warns: %s", w)
	}
	res, err = cp.api.Apply(ctx, []byte(mesh), true)
	if err != nil {
		t.Fatal(err)
	}
	if spanWarning(res.Warnings) == "" {
		t.Errorf("dry run's warnings %q: none of the Envoy data plane's refused spans", res.Warnings)
	}
	cp.apply(t, otlp)
	if d, err = cp.api.Describe(ctx, key); err != nil {
		t.Fatal(err)
	}
	if w := spanWarning(d.Warnings); w != "" {
		t.Errorf("with an otlp provider, describe warns: %s", w)
	}
}
