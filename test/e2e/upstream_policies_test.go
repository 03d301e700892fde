package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
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

	p := startProxy(t, s, "mesh/od/virtualNode/client", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	egress := p.listenerAddr(t, "lds_egress_*")
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

const breakerMesh = `
kind: Mesh
name: cb
---
kind: VirtualNode
mesh: cb
name: client
spec:
  backends: [{virtualService: {virtualServiceName: svc.cb.local}}]
---
kind: VirtualNode
mesh: cb
name: svc
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      connectionPool: {http: {maxConnections: 1, maxPendingRequests: 1}}
  serviceDiscovery: {awsCloudMap: {namespaceName: cb.local, serviceName: svc}}
---
kind: VirtualService
mesh: cb
name: svc.cb.local
spec: {provider: {virtualNode: {virtualNodeName: svc}}}
`

// A listener's connectionPool bounds what its clients' sidecars send it:
// one connection and one queued request, so a third concurrent request
// gets Envoy's overflow 503 and the application never sees it.
func TestConnectionPoolOverflow(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, breakerMesh, "apply", "-f", "-")
	var held atomic.Int64
	var served atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.URL.Path == "/hold" {
			held.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "done")
	}), ReadHeaderTimeout: 10 * time.Second}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	register(t, s, "cb", "svc", "svc-1", "127.0.0.1", ln.Addr().(*net.TCPAddr).Port)

	p := startProxy(t, s, "mesh/cb/virtualNode/client", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	egress := p.listenerAddr(t, "lds_egress_*")
	c := proxyClient(egress)
	eventually(t, 20*time.Second, "the service answers", func() error {
		resp, err := c.Get("http://svc.cb.local:8080/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
	codes := make(chan int, 2)
	for range 2 {
		go func() {
			resp, err := c.Get("http://svc.cb.local:8080/hold")
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	eventually(t, 10*time.Second, "the first request is held", func() error {
		if held.Load() != 1 {
			return fmt.Errorf("%d held", held.Load())
		}
		return nil
	})
	before := served.Load()
	resp, err := c.Get("http://svc.cb.local:8080/third")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("X-Envoy-Overflow") != "true" || !strings.Contains(string(b), "overflow") {
		t.Errorf("third concurrent request: %s %q, want 503 overflow", resp.Status, b)
	}
	if served.Load() != before {
		t.Errorf("the overflowing request reached the application")
	}
	once.Do(func() { close(release) })
	for range 2 {
		if code := <-codes; code != 200 {
			t.Errorf("admitted request: %d", code)
		}
	}
	st, err := http.Get("http://" + p.admin + "/stats?filter=upstream_rq_pending_overflow")
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := io.ReadAll(st.Body)
	st.Body.Close()
	if !regexp.MustCompile(`(?m)^cluster\.[^ ]+\.upstream_rq_pending_overflow: 1$`).Match(sb) {
		t.Errorf("/stats:\n%s", sb)
	}
}

const healthMesh = `
kind: Mesh
name: hc
---
kind: VirtualNode
mesh: hc
name: client
spec:
  backends: [{virtualService: {virtualServiceName: svc.hc.local}}]
---
kind: VirtualNode
mesh: hc
name: svc
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      healthCheck: {protocol: http, path: /health, port: 8080, healthyThreshold: 2, unhealthyThreshold: 2, intervalMillis: 5000, timeoutMillis: 2000}
  serviceDiscovery: {awsCloudMap: {namespaceName: hc.local, serviceName: svc}}
---
kind: VirtualService
mesh: hc
name: svc.hc.local
spec: {provider: {virtualNode: {virtualNodeName: svc}}}
`

// The listener's healthCheck makes its clients' sidecars check every
// instance: one whose /health fails gets no traffic and shows as
// failed_active_hc, and comes back after healthyThreshold passing checks.
func TestActiveHealthCheck(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, healthMesh, "apply", "-f", "-")
	start := func(name string, healthy *atomic.Bool) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" && !healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, name)
		}), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().(*net.TCPAddr).Port
	}
	var goodHealthy, sickHealthy atomic.Bool
	goodHealthy.Store(true)
	good, sick := start("good", &goodHealthy), start("sick", &sickHealthy)
	register(t, s, "hc", "svc", "svc-good", "127.0.0.1", good)
	register(t, s, "hc", "svc", "svc-sick", "127.0.0.1", sick)

	p := startProxy(t, s, "mesh/hc/virtualNode/client", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	egress := p.listenerAddr(t, "lds_egress_*")
	c := proxyClient(egress)
	answers := func() (map[string]int, error) {
		seen := map[string]int{}
		for range 10 {
			resp, err := c.Get("http://svc.hc.local:8080/")
			if err != nil {
				return nil, err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen[string(b)]++
		}
		return seen, nil
	}
	clusters := func() string {
		resp, err := http.Get("http://" + p.admin + "/clusters")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// Failed, not merely pending its first check.
	sickFlag := fmt.Sprintf("127.0.0.1:%d::health_flags::/failed_active_hc\n", sick)
	eventually(t, 20*time.Second, "the sick instance is out", func() error {
		if cl := clusters(); !strings.Contains(cl, sickFlag) {
			return fmt.Errorf("/clusters lacks %s:\n%s", sickFlag, grepLines(cl, "health_flags"))
		}
		seen, err := answers()
		if err != nil {
			return err
		}
		if seen["good"] != 10 {
			return fmt.Errorf("answers %v, want all from good", seen)
		}
		return nil
	})
	st, err := http.Get("http://" + p.admin + "/stats?filter=health_check")
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := io.ReadAll(st.Body)
	st.Body.Close()
	if !regexp.MustCompile(`(?m)^cluster\.[^ ]+\.health_check\.healthy: 1$`).Match(sb) ||
		!regexp.MustCompile(`(?m)^cluster\.[^ ]+\.health_check\.failure: [1-9]`).Match(sb) {
		t.Errorf("health_check stats:\n%s", sb)
	}

	// Repaired: two passing checks (5 s apart) bring it back.
	sickHealthy.Store(true)
	eventually(t, 30*time.Second, "the repaired instance returns", func() error {
		seen, err := answers()
		if err != nil {
			return err
		}
		if seen["sick"] == 0 {
			return fmt.Errorf("answers %v", seen)
		}
		return nil
	})
}
