package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The proxy-only binary links the data plane and nothing of the control
// plane, the store, the console, the resource commands or the demo, nor
// their libraries (etcd, bbolt, the Prometheus client), nor
// go-control-plane's generated xDS types: that is what makes its idle
// sidecar smaller than one of the full binary.
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
		// The proxy decodes xDS into internal/xdsproto's mirror types:
		// go-control-plane's generated packages, and the packages they
		// import, register their descriptors at start-up (about 7 MB of
		// an idle sidecar's RSS; docs/design.md).
		"github.com/envoyproxy/",
		"github.com/cncf/xds/",
		"cel.dev/expr",
		"google.golang.org/genproto/googleapis/api/expr/",
		// The generator and the test conversions link go-control-plane.
		"github.com/meshlens/meshlens/internal/xdsproto/gen",
		"github.com/meshlens/meshlens/internal/xdsproto/xdsprototest",
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
