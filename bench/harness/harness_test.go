package harness

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

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
	plain := meshYAML("", nil)
	if strings.Contains(plain, "accessLog") {
		t.Error("access log without a directory")
	}
	logged := meshYAML("/tmp/logs", nil)
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
	res := &Results{Reps: 2, Conns: 16, IdleRSSMB: map[string]float64{"sidecar-client": 20, "haproxy-inner": 7},
		IdleCPUMs: map[string]float64{"sidecar-client": 2.125}}
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
	if !strings.Contains(sec["cost"], "| sidecar-client | 20.0 | 2.12 |") || !strings.Contains(sec["cost"], "| haproxy-inner | 7.0 | – |") {
		t.Errorf("cost:\n%s", sec["cost"])
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

func TestMeshYAMLTracing(t *testing.T) {
	for _, tc := range []struct {
		setting *tracingSetting
		want    string
	}{
		{nil, ""},
		{&tracingSettings[0], "  meshlens: {tracing: {provider: none}}\n"},
		{&tracingSettings[1], "  meshlens: {tracing: {provider: builtin, samplingPercentage: 1}}\n"},
		{&tracingSettings[2], "  meshlens: {tracing: {provider: builtin, samplingPercentage: 100}}\n"},
	} {
		y := meshYAML("", tc.setting)
		if tc.want == "" {
			if strings.Contains(y, "tracing") {
				t.Errorf("default mesh names tracing:\n%s", y)
			}
			continue
		}
		if !strings.Contains(y, "egressFilter: {type: DROP_ALL}\n"+tc.want+"---\n") {
			t.Errorf("mesh for %s lacks %q in its Mesh:\n%s", tc.setting.variant, tc.want, y)
		}
	}
}

// A setting is seen in a config_dump only when the dump carries its
// collector cluster and sampling percentage.
func TestTracingInConfig(t *testing.T) {
	builtin100 := `{"cluster":"cds_tracing_meshlens","tracing":{"random_sampling":{"value":100}}}`
	builtin1 := `{"cluster":"cds_tracing_meshlens","tracing":{"random_sampling":{"value":1}}}`
	off := `{"listeners":[]}`
	for _, tc := range []struct {
		setting tracingSetting
		dump    string
		want    bool
	}{
		{tracingSettings[0], off, true},
		{tracingSettings[0], builtin1, false},
		{tracingSettings[1], builtin1, true},
		{tracingSettings[1], builtin100, false},
		{tracingSettings[1], off, false},
		{tracingSettings[2], builtin100, true},
		{tracingSettings[2], builtin1, false},
	} {
		if got := tc.setting.inConfig(tc.dump); got != tc.want {
			t.Errorf("%s in %s = %v, want %v", tc.setting.variant, tc.dump, got, tc.want)
		}
	}
}

// The tracing table puts each setting against tracing off, and a run of
// the tracing variants alone rewrites only their section.
func TestTracingReport(t *testing.T) {
	res := &Results{Reps: 3, Conns: 16, DurationS: 4, Notes: []string{"tracing 100 % (builtin): stored 1500", "access log on: other"}}
	cpu := map[string]float64{"tracing-none": 0.1, "tracing-1": 0.11, "tracing-100": 0.2}
	for rep := 1; rep <= 3; rep++ {
		for _, ts := range tracingSettings {
			for _, p := range []string{pathDirect, pathML1, pathML2} {
				r := Run{Scenario: "http1-1k", Proto: "http1", Payload: "1k", Load: "1000rps", Rate: 1000, Path: p, Variant: ts.variant, Rep: rep,
					Summary: loadgen.Summary{Requests: 4000, Throughput: 1000, P50: 0.5, P99: 2 * cpu[ts.variant] * 10 * float64(rep)}}
				for range hops(p) {
					r.Procs = append(r.Procs, ProcCost{Name: "x", CPUPer1000: cpu[ts.variant] * float64(rep)})
				}
				res.Runs = append(res.Runs, r)
			}
		}
	}
	sec := sections(res)["tracing"]
	for _, want := range []string{
		"| meshlens, 1 hop | off (`provider: none`) | 0.200 (0.100–0.300) | 1.00x | 4.000 (2.000–6.000) | 1.00x | 0.500 | 3 |",
		"| meshlens, 2 hops | 100 % (builtin) | 0.800 (0.400–1.200) | 2.00x | 8.000 (4.000–12.000) | 2.00x |",
		"| meshlens, 2 hops | 1 % (builtin) | 0.440 (0.220–0.660) | 1.10x |",
		"- tracing 100 % (builtin): stored 1500\n",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("tracing section lacks %q:\n%s", want, sec)
		}
	}
	if strings.Contains(sec, "access log on") {
		t.Errorf("tracing section carries another variant's note:\n%s", sec)
	}

	o := Options{Only: tracingScenarioID}
	md := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	doc := strings.Replace(skeleton, "<!-- BEGIN generated: latency -->\n", "<!-- BEGIN generated: latency -->\nearlier figures\n", 1)
	os.WriteFile(md, []byte(doc), 0o644)
	if err := updateMarkdown(md, res, o.sectionsOfOnly()...); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	if !strings.Contains(string(b), "earlier figures") || !strings.Contains(string(b), "| meshlens, 2 hops | 100 % (builtin) |") {
		t.Errorf("updated file:\n%s", b)
	}
	for _, tc := range []struct {
		only string
		want []string
	}{
		{"", nil},
		{"tracing", []string{"tracing"}},
		{tracingScenarioID, []string{"tracing"}},
		{"http1-1k", nil},
		{"grpc", nil},
		{"floor", []string{"floor"}},
		{floorScenarioID, []string{"floor"}},
		{"1k-", []string{"tracing", "floor"}},
	} {
		if got := (Options{Only: tc.only}).sectionsOfOnly(); !slices.Equal(got, tc.want) {
			t.Errorf("sections of -only %q = %v, want %v", tc.only, got, tc.want)
		}
	}
}

// TestFloorReport: the floor section compares the three paths' CPU per
// request, its user and kernel parts and the rate against HAProxy's.
func TestFloorReport(t *testing.T) {
	res := &Results{Reps: 3, Conns: 16, DurationS: 4}
	cpu := map[string]float64{pathML1: 0.028, pathHA1: 0.0175, pathRelay1: 0.0168}
	rps := map[string]float64{pathML1: 18000, pathHA1: 22000, pathRelay1: 22500}
	for rep := 1; rep <= 3; rep++ {
		for _, p := range []string{pathML1, pathHA1, pathRelay1} {
			f := float64(rep+1) / 3 // 2/3, 1, 4/3
			pc := ProcCost{Name: "x", CPUPer1000: cpu[p] * f, SysPer1000: cpu[p] * f / 2}
			if p != pathHA1 {
				pc.ReadsPerReq, pc.WritesPerReq = 3.8, 2
			}
			res.Runs = append(res.Runs, Run{Scenario: "http1-1k", Proto: "http1", Payload: "1k", Load: "max", Path: p, Variant: floorVariant, Rep: rep,
				Summary: loadgen.Summary{Requests: 80000, Throughput: rps[p] * f},
				Procs:   []ProcCost{pc},
				Ends:    []ProcCost{{Name: "app", CPUPer1000: 0.025 * f}, {Name: "loadgen", CPUPer1000: 0.035 * f}}})
		}
	}
	sec := sections(res)["floor"]
	for _, want := range []string{
		"| meshlens, 1 hop | 18000 (12000–24000) | 28.0 (18.7–37.3) | 14.0 (9.3–18.7) | 14.0 (9.3–18.7) | 1.60x | 0.82x | 60.0 (40.0–80.0) | 3.80, 2.00 |",
		"| HAProxy, 1 hop | 22000 (14667–29333) | 17.5 (11.7–23.3) | 8.8 (5.8–11.7) | 8.8 (5.8–11.7) | 1.00x | 1.00x | 60.0 (40.0–80.0) | – |",
		"| Go relay, 1 hop | 22500 (15000–30000) | 16.8 (11.2–22.4) | 8.4 (5.6–11.2) | 8.4 (5.6–11.2) | 0.96x | 1.02x |",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("floor section lacks %q:\n%s", want, sec)
		}
	}
	if got := sections(&Results{})["floor"]; got != "The floor block was not run.\n" {
		t.Errorf("floor section without its runs: %q", got)
	}
}

// threadsCPU counts the CPU time of every thread of a process: a thread
// that spins for 200 ms adds at least that much.
func TestThreadsCPU(t *testing.T) {
	before, err := threadsCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		}
	}()
	<-done
	after, err := threadsCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got := after - before; got < 150*time.Millisecond {
		t.Errorf("threadsCPU grew by %v over 200 ms of spinning", got)
	}
	if _, err := threadsCPU(-1); err == nil {
		t.Error("threadsCPU of no process: no error")
	}
}

// freePort gives ports below the kernel's ephemeral range, each once.
func TestFreePort(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		addr, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if port < portLow || port >= portHigh || seen[addr] {
			t.Fatalf("freePort gave %s (seen before: %v), want a new port in %d-%d", addr, seen[addr], portLow, portHigh)
		}
		seen[addr] = true
	}
}

// The benchmark builds the binaries with the Makefile's BUILDTAGS, as
// `make build` ships them.
func TestBuildTagsAreTheMakefiles(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var tags string
	for _, l := range strings.Split(string(mk), "\n") {
		if v, ok := strings.CutPrefix(l, "BUILDTAGS ?= "); ok {
			tags = strings.TrimSpace(v)
		}
	}
	if tags != buildTags {
		t.Errorf("harness builds with -tags %q, the Makefile's BUILDTAGS is %q", buildTags, tags)
	}
}

// The split table puts a hop's user and kernel time per request against
// HAProxy's, and is left out for runs that carry no split.
func TestSplitTable(t *testing.T) {
	var runs []Run
	for rep := 1; rep <= 3; rep++ {
		for _, load := range []string{"1000rps", "max"} {
			for _, p := range []string{pathML1, pathHA1} {
				// meshlens: 0.030 CPU-s per 1000 of which 0.012 kernel;
				// HAProxy: 0.020 of which 0.012 kernel (rep 2 doubles).
				total, sys := 0.030, 0.012
				if p == pathHA1 {
					total = 0.020
				}
				if rep == 2 {
					total, sys = 2*total, 2*sys
				}
				runs = append(runs, Run{Scenario: "http1-1k", Proto: "http1", Payload: "1k", Load: load, Path: p, Variant: "default", Rep: rep,
					Procs: []ProcCost{{Name: "x", CPUPer1000: total, SysPer1000: sys}}})
			}
		}
	}
	got := splitTable(aggregate(runs), []Scenario{scenarioByID("http1-1k")})
	for _, want := range []string{
		"| http1 1k, 1000rps | 18.0 (18.0–36.0) | 12.0 (12.0–24.0) | 8.0 (8.0–16.0) | 12.0 (12.0–24.0) | 2.25x | 1.00x |",
		"| http1 1k, max | 18.0 (18.0–36.0) |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("split table lacks %q:\n%s", want, got)
		}
	}
	for i := range runs {
		runs[i].Procs[0].SysPer1000 = 0
	}
	if got := splitTable(aggregate(runs), []Scenario{scenarioByID("http1-1k")}); got != "" {
		t.Errorf("runs without a split gave a table:\n%s", got)
	}
}

// readUsage's system time grows with time spent in system calls, and
// is part of the CPU time.
func TestReadUsageSystemTime(t *testing.T) {
	before, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		// The kernel zeroes 1 MiB each time. A raw system call: the race
		// detector's bookkeeping of syscall.Read would be user time.
		syscall.Syscall(syscall.SYS_READ, f.Fd(), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	}
	after, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Sys - before.Sys; got < 100*time.Millisecond {
		t.Errorf("system time grew by %v over 300 ms of reads from /dev/zero", got)
	}
	if after.Sys > after.CPU {
		t.Errorf("system time %v exceeds CPU time %v", after.Sys, after.CPU)
	}
}
