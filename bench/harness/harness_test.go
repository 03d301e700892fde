package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlens/meshlens/bench/loadgen"
	"github.com/meshlens/meshlens/bench/xdssim"
)

func TestHAProxyConfig(t *testing.T) {
	cfg := haproxyConfig(haFrontends{HTTP: "127.0.0.1:1", H2C: "127.0.0.1:2", GRPC: "127.0.0.1:3", TCP: "127.0.0.1:4"},
		haTargets{HTTP: "127.0.0.1:11", H2C: "127.0.0.1:12", GRPC: "127.0.0.1:13", TCP: "127.0.0.1:14"})
	for _, want := range []string{"nbthread 1", "http-reuse always", "bind 127.0.0.1:2 proto h2", "server s1 127.0.0.1:13 proto h2", "mode tcp\n  bind 127.0.0.1:4"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}

func TestMeshYAML(t *testing.T) {
	plain := meshYAML("")
	if strings.Contains(plain, "accessLog") {
		t.Error("access log without a directory")
	}
	logged := meshYAML("/tmp/logs")
	if got := strings.Count(logged, "path: /tmp/logs/"); got != len(serverNodes)+1 {
		t.Errorf("%d access logs, want one per node", got)
	}
	if !strings.Contains(plain, "virtualServiceName: app-tcp.bench.local") {
		t.Error("client lacks the TCP backend")
	}
}

// The report renders from synthetic results, and updating BENCHMARKS.md
// keeps what is outside the generated markers.
func TestReport(t *testing.T) {
	res := &Results{Reps: 2, Conns: 16, IdleRSSMB: map[string]float64{"sidecar-client": 20, "haproxy-inner": 7}}
	for rep := 1; rep <= 2; rep++ {
		for _, s := range scenarios[:2] {
			for _, rate := range s.Loads {
				for i, p := range allPaths {
					r := Run{Scenario: s.ID, Proto: s.Proto, Payload: s.Payload, Load: loadName(rate), Rate: rate, Path: p, Variant: "default", Rep: rep,
						Summary: loadgen.Summary{Requests: 1000, Throughput: 1000, P50: 0.5 + 0.1*float64(i), P99: 2, Curve: make([]float64, len(loadgen.CurveQuantiles))}}
					for range hops(p) {
						r.Procs = append(r.Procs, ProcCost{Name: "x", CPUPer1000: 0.1, RSSPeakMB: 30})
					}
					res.Runs = append(res.Runs, r)
				}
			}
		}
	}
	res.XDS = []XDSRun{{Result: &xdssim.Result{Streams: 1000, RSSPeakMB: 100, Route: xdssim.Convergence{P99: 300}, Endpoint: xdssim.Convergence{P99: 200}}}}
	sec := sections(res)
	if !strings.Contains(sec["targets"], "1000 proxies converge on a change in < 1 s at p99 | route 300 ms, endpoint 200 ms | yes") {
		t.Errorf("targets:\n%s", sec["targets"])
	}
	if !strings.Contains(sec["latency"], "| meshlens, 2 hops | 0.700 |") {
		t.Errorf("latency:\n%s", sec["latency"])
	}

	md := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	hand := "## Findings\nwritten by hand\n"
	os.WriteFile(md, []byte(strings.Replace(skeleton, "## Profiles", hand+"## Profiles", 1)), 0o644)
	if err := updateMarkdown(md, res); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	if !strings.Contains(string(b), hand) || !strings.Contains(string(b), "| meshlens, 2 hops | 0.700 |") {
		t.Errorf("updated file:\n%s", b)
	}
	if err := writePlot(filepath.Join(t.TempDir(), "p.png"), res); err != nil {
		t.Fatal(err)
	}
}

// hops is the number of proxy processes on a path.
func hops(path string) int {
	switch path {
	case pathML1, pathHA1:
		return 1
	case pathML2, pathHA2:
		return 2
	}
	return 0
}
