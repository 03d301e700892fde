package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The proxy-only binary links the data plane and nothing of the control
// plane, the store, the console, the resource commands or the demo, nor
// their libraries (etcd, bbolt, the Prometheus client), nor xDS types
// it never decodes: that is what makes its idle sidecar smaller than one
// of the full binary.
func TestLinksOnlyTheDataPlane(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	forbidden := []string{
		"github.com/meshlens/meshlens/internal/cli",
		"github.com/meshlens/meshlens/internal/controlplane",
		"github.com/meshlens/meshlens/internal/xds",
		"github.com/meshlens/meshlens/internal/store",
		"github.com/meshlens/meshlens/internal/registry",
		"github.com/meshlens/meshlens/internal/console",
		"github.com/meshlens/meshlens/internal/consoleui",
		"github.com/meshlens/meshlens/internal/demo",
		"github.com/meshlens/meshlens/internal/meshca",
		"github.com/meshlens/meshlens/internal/tracestore",
		"github.com/meshlens/meshlens/internal/metricshistory",
		"github.com/meshlens/meshlens/internal/auth",
		"go.etcd.io/",
		"github.com/prometheus/client_golang",
		"github.com/envoyproxy/go-control-plane/pkg/cache",
		"github.com/envoyproxy/go-control-plane/pkg/server",
		// The admin endpoint writes Envoy's admin documents without
		// the generated admin types, which import the bootstrap and
		// through it packages the proxy never decodes.
		"github.com/envoyproxy/go-control-plane/envoy/admin/v3",
		"github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3",
		"github.com/envoyproxy/go-control-plane/envoy/config/overload/v3",
		"github.com/envoyproxy/go-control-plane/envoy/config/tap/v3",
	}
	var sawSidecar bool
	for _, d := range deps {
		sawSidecar = sawSidecar || d == "github.com/meshlens/meshlens/internal/sidecar"
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, strings.TrimSuffix(f, "/")+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) {
				t.Errorf("meshlens-proxy links %s (forbidden: %s)", d, f)
			}
		}
	}
	if !sawSidecar {
		t.Errorf("meshlens-proxy does not link internal/sidecar; deps: %v", deps)
	}
}
