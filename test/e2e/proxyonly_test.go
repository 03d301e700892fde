package e2e

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	proxyOnlyOnce sync.Once
	proxyOnlyBin  string
	proxyOnlyErr  error
)

// proxyOnlyBinary builds meshlens-proxy once for the package, as the
// tests build meshlens (with -race under the race detector).
func proxyOnlyBinary(t testing.TB) string {
	t.Helper()
	proxyOnlyOnce.Do(func() {
		proxyOnlyBin = filepath.Join(filepath.Dir(binary), "meshlens-proxy")
		args := []string{"build", "-o", proxyOnlyBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/meshlens/meshlens/cmd/meshlens-proxy")...).CombinedOutput()
		if err != nil {
			proxyOnlyErr = fmt.Errorf("build meshlens-proxy: %w\n%s", err, out)
		}
	})
	if proxyOnlyErr != nil {
		t.Fatal(proxyOnlyErr)
	}
	return proxyOnlyBin
}

// meshlens-proxy, the proxy-only build, is a sidecar as `meshlens proxy`
// is: the same flags, configured over xDS, routing real traffic to the
// instances the control plane knows; and it reports its version.
func TestProxyOnlyBinaryIsASidecar(t *testing.T) {
	t.Parallel()
	bin := proxyOnlyBinary(t)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dev") {
		t.Errorf("meshlens-proxy --version: %v %q", err, out)
	}
	if out, err := exec.Command(bin, "--no-such-flag").CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown flag") {
		t.Errorf("meshlens-proxy --no-such-flag: %v %q, want a usage error", err, out)
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("meshlens-proxy --no-such-flag: %v, want exit code 2", err)
	}

	s := startServer(t, t.TempDir())
	s.mustCLI(t, routingMesh+routingRoutes(), "apply", "-f", "-")
	a, b := startEchoApp(t, "a"), startEchoApp(t, "b")
	register(t, s, "routing", "a", "a-1", "127.0.0.1", a.addrPort())
	register(t, s, "routing", "b", "b-1", "127.0.0.1", b.addrPort())
	p := startProxyCmd(t, []string{bin}, s, "mesh/routing/virtualNode/client", nil, true,
		"--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	c := proxyClient(p.listenerAddr(t, "lds_egress_*"))
	eventually(t, 10*time.Second, "route through meshlens-proxy", func() error {
		resp, err := c.Get("http://svc.routing.local:8080/exact")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(string(got), "b GET /exact") {
			return fmt.Errorf("%s %q, want app b", resp.Status, got)
		}
		return nil
	})
}
