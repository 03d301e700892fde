package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

const proxiesMesh = `
kind: Mesh
name: ps
---
kind: VirtualGateway
mesh: ps
name: gw
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
`

// proxyStatus is what `get proxies -o json` prints of one proxy.
type proxyStatus struct {
	ID              string            `json:"id"`
	Flavour         string            `json:"flavour"`
	Acked           map[string]string `json:"acked"`
	Latest          map[string]string `json:"latest"`
	Sync            map[string]string `json:"sync"`
	InSync          bool              `json:"inSync"`
	Nacks           int               `json:"nacks"`
	LastNack        string            `json:"lastNack"`
	LastNackType    string            `json:"lastNackType"`
	LastNackVersion string            `json:"lastNackVersion"`
}

const (
	ldsType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	rdsType = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// `meshlens get proxies` shows each connected proxy, whether it holds
// the latest configuration of every xDS type, and the configuration it
// last rejected with its reason.
func TestGetProxies(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, proxiesMesh, "apply", "-f", "-")
	if r := s.cli(t, "", "get", "proxies"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no proxies connected") {
		t.Fatalf("no proxy yet: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	startProxy(t, s, "mesh/ps/virtualGateway/gw", true, "--listen", "8080=127.0.0.1:0")

	status := func() proxyStatus {
		var ps []proxyStatus
		out := s.mustCLI(t, "", "get", "proxies", "-o", "json")
		if err := json.Unmarshal([]byte(out), &ps); err != nil || len(ps) != 1 {
			t.Fatalf("get proxies -o json: %v\n%s", err, out)
		}
		return ps[0]
	}
	eventually(t, 10*time.Second, "the gateway in sync", func() error {
		if p := status(); !p.InSync || p.Sync[ldsType] != "SYNCED" || p.Acked[ldsType] != p.Latest[ldsType] {
			return fmt.Errorf("%+v", p)
		}
		return nil
	})
	p := status()
	if p.ID != "mesh/ps/virtualGateway/gw" || p.Flavour != "envoy" || p.Nacks != 0 || p.LastNack != "" {
		t.Errorf("%+v", p)
	}
	table := s.mustCLI(t, "", "get", "proxies")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "CDS") || !strings.Contains(lines[0], "LAST NACK") {
		t.Fatalf("table:\n%s", table)
	}
	for _, want := range []string{"ps/virtualGateway/gw", "envoy", "SYNCED (" + p.Latest[ldsType][:8] + ")", " yes "} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row lacks %q:\n%s", want, table)
		}
	}

	// A second listener on a port that is taken: the proxy rejects the
	// listeners, and says so.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	s.mustCLI(t, fmt.Sprintf(`kind: VirtualGateway
mesh: ps
name: gw
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
    - portMapping: {port: %d, protocol: http}
`, port), "apply", "-f", "-")
	eventually(t, 10*time.Second, "the NACK", func() error {
		if p = status(); p.Nacks == 0 {
			return fmt.Errorf("%+v", p)
		}
		return nil
	})
	// The proxy applies its configuration whole, so the NACK answers
	// whichever type completed it.
	short := map[string]string{ldsType: "LDS", rdsType: "RDS"}[p.LastNackType]
	if p.InSync || short == "" || p.Sync[p.LastNackType] != "NACKED" || p.LastNackVersion != p.Latest[p.LastNackType] ||
		!strings.Contains(p.LastNack, fmt.Sprintf("bind 0.0.0.0:%d", port)) {
		t.Errorf("after a rejected listener: %+v", p)
	}
	table = s.mustCLI(t, "", "get", "proxies", "--mesh", "ps")
	for _, want := range []string{"NACKED (", " no ", short + " " + p.LastNackVersion[:8] + ": apply"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if y := s.mustCLI(t, "", "get", "proxies", "gw", "-o", "yaml"); !strings.Contains(y, "lastNack: ") || !strings.Contains(y, "inSync: false") {
		t.Errorf("-o yaml:\n%s", y)
	}
	if out := s.mustCLI(t, "", "get", "proxies", "--mesh", "other"); out != "" {
		t.Errorf("--mesh other: %q", out)
	}
}
