// Package harness runs the meshlens benchmarks: it builds meshlens,
// starts a control plane, an upstream application, sidecars and HAProxy
// on loopback, drives every scenario over every path with the load
// generator (paths interleaved, repeated), measures what each proxy
// process costs, runs the Go microbenchmarks of the request path and the
// control-plane simulator, and writes the results as JSON, a latency plot
// and the generated sections of BENCHMARKS.md.
package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/meshlens/meshlens/bench/loadgen"
	"github.com/meshlens/meshlens/bench/xdssim"
)

// Options choose what a run does.
type Options struct {
	// Repo is the meshlens repository root.
	Repo string
	// Out is the results directory (results.json, latency.png, logs).
	Out string
	// Markdown, when set, is the BENCHMARKS.md whose generated sections
	// are rewritten.
	Markdown string
	// Smoke runs every scenario briefly, once, with a small simulator.
	Smoke    bool
	Reps     int
	Duration time.Duration
	Conns    int
	// XDSStreams are the simulator's N values; XDSServices and
	// XDSEndpoints size its mesh.
	XDSStreams          []int
	XDSServices         int
	XDSEndpointsPerNode int
	XDSTimeout          time.Duration
	// XDSReplicas are the control-plane setups the simulation runs for
	// each N: 1 is one server with its bbolt file; R > 1 is R replicas
	// sharing a three-member etcd cluster (Debian's etcd-server). Empty
	// means [1].
	XDSReplicas []int
	// XDSProfile, when set, is a directory that receives CPU profiles of
	// the control plane and of the simulator during each change.
	XDSProfile string
	// XDSProfileSeconds is the length of the control plane's profiles.
	XDSProfileSeconds int
	// ProfileRate is the load, in requests per second, the sidecars'
	// profiles are taken under; 0 is as fast as the load generator can
	// go, a negative value the default (1000).
	ProfileRate          float64
	SkipData, SkipXDS    bool
	SkipGoBench, SkipCPU bool
	// Only, when set, keeps the scenarios whose id contains it.
	Only string
	// IdleConns is how many idle keep-alive connections the memory per
	// connection is measured with (0: not measured); IdleConnSettle is
	// how long they stay idle before the RSS is read.
	IdleConns      int
	IdleConnSettle time.Duration
	// A run during which processes outside the benchmark used more than
	// MaxForeignCPU cores is run again after RetryPause, up to Retries
	// times; the last attempt is kept either way, with its figure.
	MaxForeignCPU float64
	Retries       int
	RetryPause    time.Duration
}

// Results is everything a run measured; results.json holds it.
type Results struct {
	Machine   Machine            `json:"machine"`
	Mode      string             `json:"mode"`
	Started   time.Time          `json:"started"`
	Finished  time.Time          `json:"finished"`
	Reps      int                `json:"reps"`
	DurationS float64            `json:"duration_s"`
	Conns     int                `json:"conns"`
	Runs      []Run              `json:"runs"`
	IdleRSSMB map[string]float64 `json:"idle_rss_mb"`
	// IdleCPUMs is the CPU time (ms per second) each proxy process spent
	// while idle, after its idle RSS was read.
	IdleCPUMs map[string]float64 `json:"idle_cpu_ms_per_s,omitempty"`
	// SidecarBinary says what the sidecars ran: the proxy-only build
	// (meshlens-proxy), or `meshlens proxy` in a repository without it.
	SidecarBinary string `json:"sidecar_binary"`
	// IdleConns is the memory per idle keep-alive connection of meshlens
	// and HAProxy.
	IdleConns  []IdleConns `json:"idle_conns"`
	Goroutines *Goroutines `json:"goroutines,omitempty"`
	GoBench    []GoBench   `json:"go_bench"`
	XDS        []XDSRun    `json:"xds"`
	Profiles   []Profile   `json:"profiles"`
	Notes      []string    `json:"notes"`
	Failures   []string    `json:"failures"`
}

// Run is one scenario at one load over one path.
type Run struct {
	Scenario string  `json:"scenario"`
	Proto    string  `json:"proto"`
	Payload  string  `json:"payload"`
	Load     string  `json:"load"`
	Rate     float64 `json:"rate"`
	Path     string  `json:"path"`
	Variant  string  `json:"variant"`
	Rep      int     `json:"rep"`
	loadgen.Summary
	Procs []ProcCost `json:"procs"`
	// Ends is what the two ends of the path spent: the upstream app
	// ("app") and this process, the load generator ("loadgen"). A proxy
	// that makes them work harder per request (more frames, more reads)
	// costs throughput beyond its own CPU.
	Ends []ProcCost `json:"ends"`
	// ForeignCPU is the CPU (in cores) that processes outside the
	// benchmark used during the run; Attempts counts runs redone because
	// it was too high.
	ForeignCPU float64 `json:"foreign_cpu_cores"`
	Attempts   int     `json:"attempts"`
}

// ProcCost is what one proxy process on the path spent during a run.
type ProcCost struct {
	Name       string  `json:"name"`
	CPUSeconds float64 `json:"cpu_s"`
	CPUPer1000 float64 `json:"cpu_s_per_1000"`
	RSSPeakMB  float64 `json:"rss_peak_mb"`
	// SysPer1000 is the part of CPUPer1000 spent in the kernel (stime
	// of /proc/<pid>/stat): system calls and the network stack under
	// them. The rest is the process's own code.
	SysPer1000 float64 `json:"sys_s_per_1000,omitempty"`
	// ReadsPerReq and WritesPerReq are the read and write system calls
	// per request, for the ends and meshlens sidecars only: Go processes,
	// whose socket reads and writes /proc/<pid>/io counts (HAProxy's recv
	// and send it does not).
	ReadsPerReq  float64 `json:"reads_per_req,omitempty"`
	WritesPerReq float64 `json:"writes_per_req,omitempty"`
}

// Goroutines counts a sidecar's goroutines idle and with the load
// generator's connections open.
type Goroutines struct {
	Idle, Loaded, Conns int
	PerConn             float64
}

// XDSRun is one control-plane simulation, or why it failed.
type XDSRun struct {
	Result *xdssim.Result `json:"result"`
	Error  string         `json:"error,omitempty"`
}

// Main runs everything Options ask for and writes the results.
func Main(ctx context.Context, o Options) error {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	work, err := os.MkdirTemp("", "meshbench-")
	if err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	defer os.RemoveAll(work)
	raiseFileLimit()

	res := &Results{Mode: "full", Started: time.Now().UTC(), Reps: o.Reps, DurationS: o.Duration.Seconds(), Conns: o.Conns, IdleRSSMB: map[string]float64{}}
	if o.Smoke {
		res.Mode = "smoke"
	}
	res.Machine = describeMachine(ctx, o.Repo)
	save := func() {
		if err := writeJSON(filepath.Join(o.Out, "results.json"), res); err != nil {
			slog.Error("save results", "err", err)
		}
	}

	if !o.SkipData {
		if err := runDataPlane(ctx, o, work, res, save); err != nil {
			res.Failures = append(res.Failures, "data plane: "+err.Error())
		}
		save()
	}
	if !o.SkipGoBench {
		slog.Info("go microbenchmarks", "packages", "internal/proxy, internal/stats, internal/accesslog")
		res.GoBench, err = runGoBench(ctx, o)
		if err != nil {
			res.Failures = append(res.Failures, "go benchmarks: "+err.Error())
		}
		if len(res.Profiles) == 0 || !o.Smoke {
			if p, err := profileMicrobench(ctx, o); err != nil {
				res.Failures = append(res.Failures, "microbenchmark profile: "+err.Error())
			} else {
				res.Profiles = append(res.Profiles, p...)
			}
		}
		save()
	}
	if !o.SkipXDS {
		if err := runXDS(ctx, o, work, res, save); err != nil {
			res.Failures = append(res.Failures, "xds simulator: "+err.Error())
		}
	}
	res.Finished = time.Now().UTC()
	save()
	if ctx.Err() != nil {
		// Interrupted: keep the raw results, leave the report alone.
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if err := writePlot(filepath.Join(o.Out, "latency.png"), res); err != nil {
		res.Failures = append(res.Failures, "plot: "+err.Error())
	}
	if o.Markdown != "" {
		if err := updateMarkdown(o.Markdown, res, o.sectionsOfOnly()...); err != nil {
			res.Failures = append(res.Failures, "markdown: "+err.Error())
		}
	}
	save()
	if len(res.Failures) > 0 {
		return fmt.Errorf("%d failures:\n  %s", len(res.Failures), strings.Join(res.Failures, "\n  "))
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// variant is a proxy configuration measured on a subset of scenarios.
type variant struct {
	name      string
	scenarios []string
	paths     []string
	loads     []float64
}

func runDataPlane(ctx context.Context, o Options, work string, res *Results, save func()) error {
	e, err := startEnv(ctx, o.Repo, work)
	if err != nil {
		return err
	}
	defer e.close()
	if e.hasPprofFlag {
		if err := e.restartSidecars(ctx, []string{"--pprof"}, nil); err != nil {
			return fmt.Errorf("restart sidecars with --pprof: %w", err)
		}
	} else {
		res.Notes = append(res.Notes, "`meshlens proxy` has no `--pprof` flag: the CPU profile is of BenchmarkHTTP1Proxy instead of a sidecar under load.")
	}
	time.Sleep(time.Second)
	res.SidecarBinary = e.sidecarBinary()
	for name, p := range e.namedProcs() {
		if u, err := readUsage(p.pid()); err == nil {
			res.IdleRSSMB[name] = mb(u.RSS)
		}
	}
	idleWindow := idleCPUWindow
	if o.Smoke {
		idleWindow = time.Second
	}
	res.IdleCPUMs = idleCPU(e.namedProcs(), idleWindow)
	if o.IdleConns > 0 {
		ic, err := e.runIdleConns(ctx, o.IdleConns, o.IdleConnSettle)
		res.IdleConns = ic
		if err != nil {
			res.Failures = append(res.Failures, err.Error())
		}
		save()
	}

	selected := slices.DeleteFunc(slices.Clone(scenarios), func(s Scenario) bool {
		return o.Only != "" && !strings.Contains(s.ID, o.Only)
	})
	runReps := func(variantName string, reps int, scs []Scenario, paths []string, loads func(Scenario) []float64) {
		for rep := 1; rep <= reps; rep++ {
			for _, s := range scs {
				for _, rate := range loads(s) {
					for _, path := range paths {
						var r Run
						var err error
						for attempt := 1; ; attempt++ {
							fm := startForeign(e.allPids())
							r, err = e.runOne(ctx, o, s, rate, path)
							r.ForeignCPU, r.Attempts = fm.cores(), attempt
							if err != nil || r.ForeignCPU <= o.MaxForeignCPU || attempt > o.Retries || ctx.Err() != nil {
								break
							}
							slog.Warn("another workload used the machine during the run; running it again",
								"scenario", s.ID, "load", loadName(rate), "path", path, "foreign_cores", r.ForeignCPU)
							time.Sleep(o.RetryPause)
						}
						r.Variant, r.Rep = variantName, rep
						if err != nil {
							res.Failures = append(res.Failures, fmt.Sprintf("%s %s %s %s: %v", variantName, s.ID, loadName(rate), path, err))
						} else if r.Errors+r.BadStatus > 0 || r.Requests == 0 {
							res.Failures = append(res.Failures, fmt.Sprintf("%s %s %s %s: %d requests, %d errors, %d bad: %s",
								variantName, s.ID, loadName(rate), path, r.Requests, r.Errors, r.BadStatus, r.FirstErr))
						}
						res.Runs = append(res.Runs, r)
						slog.Info("run", "variant", variantName, "rep", rep, "scenario", s.ID, "load", loadName(rate), "path", path,
							"rps", int(r.Throughput), "p50_ms", r.P50, "p99_ms", r.P99, "errors", r.Errors+r.BadStatus, "foreign_cores", r.ForeignCPU)
					}
				}
				save()
			}
		}
	}
	runBlock := func(variantName string, scs []Scenario, paths []string, loads func(Scenario) []float64) {
		runReps(variantName, o.Reps, scs, paths, loads)
	}
	runBlock("default", selected, allPaths, func(s Scenario) []float64 { return s.Loads })

	// Tracing: HTTP/1.1 1 KB at 1000 rps over the meshlens paths with
	// tracing off, at 1 % and at 100 %, the settings interleaved within
	// each repetition (the mesh is re-applied between them).
	if o.Only == "" || strings.Contains(tracingScenarioID, o.Only) {
		once := func(variantName string, scs []Scenario, paths []string, loads func(Scenario) []float64) {
			runReps(variantName, 1, scs, paths, loads)
		}
		if err := runTracing(ctx, o, e, res, once); err != nil {
			return fmt.Errorf("tracing variants: %w", err)
		}
	}

	// The floor: HTTP/1.1 1 KB at the maximum rate through one meshlens
	// hop, one HAProxy hop and the Go relay, interleaved.
	if o.Only == "" || strings.Contains(floorScenarioID, o.Only) {
		runBlock(floorVariant, []Scenario{scenarioByID("http1-1k")}, []string{pathML1, pathHA1, pathRelay1},
			func(Scenario) []float64 { return []float64{closedLoop} })
	}

	if len(selected) == 0 {
		// Only the tracing variants or the floor were asked for.
		return nil
	}
	if !e.hasPprofFlag {
		// Nothing to profile in the running sidecars.
	} else if prof, g, err := e.profileUnderLoad(ctx, o); err != nil {
		res.Failures = append(res.Failures, "profile under load: "+err.Error())
	} else {
		res.Profiles = append(res.Profiles, prof...)
		res.Goroutines = g
	}
	if res.Goroutines == nil {
		res.Notes = append(res.Notes, "goroutines per connection: not measured (the proxy exposes no goroutine count without `--pprof`).")
	}

	// Variants: the cost of the access log and of stats, on the two main
	// protocols over the meshlens paths (direct as the reference).
	sub := slices.DeleteFunc(slices.Clone(selected), func(s Scenario) bool { return s.ID != "http1-1k" && s.ID != "grpc-1k" })
	subPaths := []string{pathDirect, pathML1, pathML2}
	subLoads := func(Scenario) []float64 { return []float64{1000, closedLoop} }
	if o.Smoke {
		subLoads = func(Scenario) []float64 { return []float64{1000} }
	}

	logDir := filepath.Join(work, "accesslogs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("access log dir: %w", err)
	}
	if err := e.applyMesh(ctx, logDir); err != nil {
		return fmt.Errorf("apply mesh with access logs: %w", err)
	}
	if err := e.waitConfig(ctx, logDir, true); err != nil {
		res.Notes = append(res.Notes, "access log on: the sidecars' config_dump never showed the access log path ("+err.Error()+"); measured anyway.")
	}
	runBlock("accesslog-on", sub, subPaths, subLoads)
	var logged int64
	entries, _ := os.ReadDir(logDir)
	for _, de := range entries {
		if fi, err := de.Info(); err == nil {
			logged += fi.Size()
		}
	}
	if logged == 0 {
		res.Notes = append(res.Notes, "access log on: the sidecars wrote no access log bytes, so the `accesslog-on` figures measure a proxy that does not log yet.")
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("access log on: the sidecars wrote %.1f MB of access logs.", mb(logged)))
	}
	if err := e.applyMesh(ctx, ""); err != nil {
		return fmt.Errorf("apply mesh without access logs: %w", err)
	}
	if err := e.waitConfig(ctx, logDir, false); err != nil {
		return err
	}

	if e.hasStatsFlag {
		flags := []string{"--stats=false"}
		if e.hasPprofFlag {
			flags = append(flags, "--pprof")
		}
		if err := e.restartSidecars(ctx, flags, nil); err != nil {
			return fmt.Errorf("restart sidecars with --stats=false: %w", err)
		}
		runBlock("stats-off", sub, subPaths, subLoads)
	} else {
		res.Notes = append(res.Notes, "stats off: `meshlens proxy` has no `--stats` flag yet; the variant was skipped.")
	}

	// Every core per sidecar (a sidecar runs on one by default, as
	// HAProxy here runs one thread): what the Go scheduler's work across
	// cores costs per request, and what it buys at the maximum rate.
	var flags []string
	if e.hasPprofFlag {
		flags = []string{"--pprof"}
	}
	if err := e.restartSidecars(ctx, flags, []string{"ENVOY_CONCURRENCY=0"}); err != nil {
		return fmt.Errorf("restart sidecars with ENVOY_CONCURRENCY=0: %w", err)
	}
	runBlock("every-core", sub, subPaths, subLoads)
	return nil
}

// allPids are the processes the harness started.
func (e *env) allPids() []int {
	var pids []int
	for _, p := range []*proc{e.server, e.app, e.haInner, e.haOuter, e.relay} {
		if p != nil {
			pids = append(pids, p.pid())
		}
	}
	for _, sc := range e.sidecars {
		if sc.p != nil {
			pids = append(pids, sc.p.pid())
		}
	}
	return pids
}

// namedProcs are the proxy processes by the names the report uses.
func (e *env) namedProcs() map[string]*proc {
	m := map[string]*proc{"haproxy-inner": e.haInner, "haproxy-outer": e.haOuter}
	for name, sc := range e.sidecars {
		m["sidecar-"+name] = sc.p
	}
	return m
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// runOne runs one scenario at one rate over one path and accounts the
// cost of each proxy process on it.
func (e *env) runOne(ctx context.Context, o Options, s Scenario, rate float64, path string) (Run, error) {
	r := Run{Scenario: s.ID, Proto: s.Proto, Payload: s.Payload, Load: loadName(rate), Rate: rate, Path: path}
	d, err := e.dialer(path, s)
	if err != nil {
		return r, err
	}
	procs := e.procsOn(path, s.Proto)
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = p.pid()
	}
	before := make([]usage, len(procs))
	ends := []struct {
		name string
		pid  int
	}{{"app", e.app.pid()}, {"loadgen", os.Getpid()}}
	endsBefore := make([]usage, len(ends))
	var sampler *rssSampler
	cfg := loadgen.Config{Rate: rate, Conns: o.Conns, Duration: o.Duration, Warmup: 20, Dial: d,
		Started: func() {
			for i, pid := range pids {
				before[i], _ = readUsage(pid)
			}
			for i, p := range ends {
				endsBefore[i], _ = readUsage(p.pid)
			}
			sampler = sampleRSS(pids, 250*time.Millisecond)
		}}
	if o.Smoke {
		cfg.Warmup = 3
	}
	if s.Payload == "upload-1m" {
		cfg.Warmup = 2
	}
	lr, err := loadgen.Run(ctx, cfg)
	after := make([]usage, len(procs))
	for i, pid := range pids {
		after[i], _ = readUsage(pid)
	}
	endsAfter := make([]usage, len(ends))
	for i, p := range ends {
		endsAfter[i], _ = readUsage(p.pid)
	}
	var peaks map[int]int64
	if sampler != nil {
		peaks = sampler.finish()
	}
	if lr != nil {
		r.Summary = lr.Summarize()
	}
	for i, p := range ends {
		pc := ProcCost{Name: p.name, CPUSeconds: (endsAfter[i].CPU - endsBefore[i].CPU).Seconds(), RSSPeakMB: mb(endsAfter[i].RSS)}
		if r.Requests > 0 {
			pc.CPUPer1000 = pc.CPUSeconds / float64(r.Requests) * 1000
			pc.SysPer1000 = (endsAfter[i].Sys - endsBefore[i].Sys).Seconds() / float64(r.Requests) * 1000
			pc.ReadsPerReq = float64(endsAfter[i].Reads-endsBefore[i].Reads) / float64(r.Requests)
			pc.WritesPerReq = float64(endsAfter[i].Writes-endsBefore[i].Writes) / float64(r.Requests)
		}
		r.Ends = append(r.Ends, pc)
	}
	for i, p := range procs {
		cpu := (after[i].CPU - before[i].CPU).Seconds()
		pc := ProcCost{Name: p.name, CPUSeconds: cpu, RSSPeakMB: mb(max(peaks[pids[i]], after[i].RSS))}
		if r.Requests > 0 {
			pc.CPUPer1000 = cpu / float64(r.Requests) * 1000
			pc.SysPer1000 = (after[i].Sys - before[i].Sys).Seconds() / float64(r.Requests) * 1000
			if strings.HasPrefix(p.name, "sidecar") || p.name == "gorelay" {
				pc.ReadsPerReq = float64(after[i].Reads-before[i].Reads) / float64(r.Requests)
				pc.WritesPerReq = float64(after[i].Writes-before[i].Writes) / float64(r.Requests)
			}
		}
		r.Procs = append(r.Procs, pc)
	}
	for _, p := range procs {
		if p.exited() {
			return r, fmt.Errorf("%s exited: %s", p.name, p.tail())
		}
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return r, err
	}
	return r, err
}

// tracingScenarioID selects the tracing variants with -only.
const tracingScenarioID = "http1-1k-tracing"

// floorScenarioID selects the floor block with -only; floorVariant names
// its runs.
const (
	floorScenarioID = "http1-1k-floor"
	floorVariant    = "floor"
)

// runTracing measures the tracing settings, each repetition running every
// setting in turn, then restores the mesh's default tracing. It checks
// that the control plane's trace store received the sidecars' spans.
func runTracing(ctx context.Context, o Options, e *env, res *Results,
	runBlock func(string, []Scenario, []string, func(Scenario) []float64)) error {
	s := scenarioByID("http1-1k")
	paths := []string{pathDirect, pathML1, pathML2}
	for rep := 1; rep <= o.Reps && ctx.Err() == nil; rep++ {
		for _, t := range tracingSettings {
			if err := e.applyMeshTracing(ctx, "", &t); err != nil {
				return fmt.Errorf("apply mesh with tracing %s: %w", t.variant, err)
			}
			if err := e.waitTracing(ctx, t); err != nil {
				return err
			}
			since := time.Now()
			n := len(res.Runs)
			runBlockRep(runBlock, t.variant, rep, s, paths, res)
			got, err := e.traceCount(ctx, since)
			if err != nil {
				return err
			}
			var sent int
			for _, r := range res.Runs[n:] {
				if r.Path == pathML1 || r.Path == pathML2 {
					sent += r.Requests
				}
			}
			slog.Info("tracing", "variant", t.variant, "rep", rep, "requests_through_sidecars", sent, "traces_stored", got)
			if t.provider != "none" && got == 0 {
				res.Failures = append(res.Failures, fmt.Sprintf("%s rep %d: the control plane's trace store received no trace of %d requests", t.variant, rep, sent))
			}
			if rep == o.Reps {
				res.Notes = append(res.Notes, fmt.Sprintf("tracing %s: the control plane's trace store answered %d traces (its query returns at most 1500) of the HTTP/1.1 server sidecar for the last repetition's %d requests through the sidecars.", t.label, got, sent))
			}
		}
	}
	if err := e.applyMesh(ctx, ""); err != nil {
		return fmt.Errorf("apply mesh with default tracing: %w", err)
	}
	return e.waitTracing(ctx, tracingSetting{provider: "builtin", percent: 1})
}

// runBlockRep runs one repetition of one variant through runBlock and
// numbers its runs rep.
func runBlockRep(runBlock func(string, []Scenario, []string, func(Scenario) []float64),
	variant string, rep int, s Scenario, paths []string, res *Results) {
	n := len(res.Runs)
	runBlock(variant, []Scenario{s}, paths, func(Scenario) []float64 { return []float64{1000} })
	for i := n; i < len(res.Runs); i++ {
		res.Runs[i].Rep = rep
	}
}

// sectionsOfOnly names the BENCHMARKS.md sections a run limited by Only
// measures, when that is the tracing variants alone; nil means every
// section.
func (o Options) sectionsOfOnly() []string {
	if o.Only == "" {
		return nil
	}
	for _, s := range scenarios {
		if strings.Contains(s.ID, o.Only) {
			return nil
		}
	}
	var only []string
	if strings.Contains(tracingScenarioID, o.Only) {
		only = append(only, "tracing")
	}
	if strings.Contains(floorScenarioID, o.Only) {
		only = append(only, "floor")
	}
	if only == nil {
		return nil
	}
	return only
}
