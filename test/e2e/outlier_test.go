package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const outlierMesh = `
kind: Mesh
name: od
---
kind: VirtualNode
mesh: od
name: client
spec:
  backends: [{virtualService: {virtualServiceName: svc.od.local}}]
---
kind: VirtualNode
mesh: od
name: svc
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      outlierDetection:
        maxServerErrors: 3
        interval: {unit: ms, value: 100}
        baseEjectionDuration: {unit: s, value: 2}
        maxEjectionPercent: 50
  serviceDiscovery: {awsCloudMap: {namespaceName: od.local, serviceName: svc}}
---
kind: VirtualService
mesh: od
name: svc.od.local
spec: {provider: {virtualNode: {virtualNodeName: svc}}}
`

// An instance that answers 500 is ejected after the listener's
// maxServerErrors, traffic goes to the healthy one meanwhile, the
// ejection shows in /stats and /clusters, and the repaired instance
// returns after baseEjectionDuration.
func TestOutlierDetection(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, outlierMesh, "apply", "-f", "-")
	good := startEchoApp(t, "good")
	var broken atomic.Bool
	broken.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flaky := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "flaky")
	}), ReadHeaderTimeout: 10 * time.Second}
	go flaky.Serve(ln)
	t.Cleanup(func() { flaky.Close() })
	register(t, s, "od", "svc", "svc-good", "127.0.0.1", good.addrPort())
	register(t, s, "od", "svc", "svc-flaky", "127.0.0.1", ln.Addr().(*net.TCPAddr).Port)

	egress := freeAddr(t)
	p := startProxy(t, s, "mesh/od/virtualNode/client", true, "--egress-addr", egress, "--ingress-addr", "none", "--register=false")
	c := proxyClient(egress)
	send := func() (int, string) {
		resp, err := c.Get("http://svc.od.local:8080/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.SplitN(string(b), " ", 2)[0]
	}
	// Both instances are in the cluster before the test counts.
	eventually(t, 20*time.Second, "both instances receive traffic", func() error {
		seen := map[int]int{}
		for range 4 {
			code, _ := send()
			seen[code]++
		}
		if seen[200] == 0 || seen[500] == 0 {
			return fmt.Errorf("statuses %v", seen)
		}
		return nil
	})
	// At most maxServerErrors more failures, then only the good instance.
	fails := 0
	for range 8 {
		if code, _ := send(); code == 500 {
			fails++
		}
	}
	if fails > 3 {
		t.Fatalf("%d failures after the first ones; the instance should be ejected by the third", fails)
	}
	for i := range 20 {
		if code, who := send(); code != 200 || who != "good" {
			t.Fatalf("request %d while the flaky instance is ejected: %d from %q", i, code, who)
		}
	}
	stat := func(name string) string {
		resp, err := http.Get("http://" + p.admin + "/stats?filter=outlier_detection")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^cluster\.[^ ]+\.outlier_detection\.` + name + `: (\d+)$`).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("no outlier_detection.%s in /stats:\n%s", name, b)
		}
		return m[1]
	}
	if got := stat("ejections_enforced_total"); got != "1" {
		t.Errorf("ejections_enforced_total %s, want 1", got)
	}
	if got := stat("ejections_active"); got != "1" {
		t.Errorf("ejections_active %s, want 1", got)
	}
	// Prometheus gets the cluster as a label, as from Envoy.
	resp, err := http.Get("http://" + p.admin + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^envoy_cluster_outlier_detection_ejections_enforced_total\{envoy_cluster_name="[^"]+"\} 1$`).Match(b) {
		t.Errorf("/stats/prometheus lacks the ejection:\n%s", grepLines(string(b), "outlier"))
	}
	resp, err = http.Get("http://" + p.admin + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), ln.Addr().String()+"::health_flags::/failed_outlier_check") {
		t.Errorf("/clusters does not show the ejected instance:\n%s", b)
	}

	// Repaired, it is back after its 2 s ejection.
	broken.Store(false)
	eventually(t, 20*time.Second, "the repaired instance returns", func() error {
		seen := map[string]int{}
		for range 4 {
			_, who := send()
			seen[who]++
		}
		if seen["flaky"] == 0 {
			return fmt.Errorf("answers %v", seen)
		}
		return nil
	})
	if got := stat("ejections_active"); got != "0" {
		t.Errorf("ejections_active %s after the return, want 0", got)
	}
}

// grepLines keeps the lines of text that contain sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
