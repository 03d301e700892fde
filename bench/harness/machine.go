package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshlens/meshlens/bench/loadgen"
)

// Version of the harness and its load generator, reported with results.
const Version = "meshbench/1 (loadgen: own open/closed-loop generator, coordinated omission corrected)"

// Machine is what the figures were measured on.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	HAProxy   string `json:"haproxy"`
	LoadGen   string `json:"loadgen"`
	Commit    string `json:"commit"`
	MemoryGiB int    `json:"memory_gib"`
}

func describeMachine(ctx context.Context, repo string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadGen: Version}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := exec.CommandContext(ctx, "haproxy", "-v").Output(); err == nil {
		m.HAProxy = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	if b, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m.Go = strings.TrimSpace(string(b))
	}
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD")
	cmd.Dir = repo
	if b, err := cmd.Output(); err == nil {
		m.Commit = strings.TrimSpace(string(b))
		st := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no")
		st.Dir = repo
		if out, err := st.Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
			m.Commit += " with uncommitted changes"
		}
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.MemoryGiB = int((uint64(si.Totalram)*uint64(si.Unit) + 1<<29) >> 30)
	}
	return m
}

// raiseFileLimit lifts the soft limit on open files to the hard one: the
// simulator holds thousands of connections.
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	want := max(l.Cur, min(l.Max, 1<<20))
	if want > l.Cur {
		l.Cur = want
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			slog.Warn("raise open file limit", "err", err)
		}
	}
}

// waitConfig waits until every sidecar's config_dump does (or does not)
// mention s.
func (e *env) waitConfig(ctx context.Context, s string, present bool) error {
	for name, sc := range e.sidecars {
		err := waitFor(ctx, 15*time.Second, "config of "+name, func() error {
			resp, err := plainHTTP.Get("http://" + sc.admin + "/config_dump")
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), s) != present {
				return fmt.Errorf("access log path present=%v", !present)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// GoBench is one line of `go test -bench` output.
type GoBench struct {
	Package     string  `json:"package"`
	Name        string  `json:"name"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:.*?\s([\d.]+) B/op\s+([\d.]+) allocs/op)?`)

// runGoBench runs the request path's and the stats store's
// microbenchmarks with -benchmem.
func runGoBench(ctx context.Context, o Options) ([]GoBench, error) {
	benchtime := "1s"
	if o.Smoke {
		benchtime = "100x"
	}
	var out []GoBench
	var errs []string
	for _, pkg := range []string{"./internal/proxy/", "./internal/stats/", "./internal/accesslog/"} {
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", benchtime, "-count", "1", pkg)
		cmd.Dir = o.Repo
		b, err := cmd.CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v\n%s", pkg, err, tailOf(string(b))))
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			m := benchLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			g := GoBench{Package: strings.Trim(pkg, "./"), Name: m[1]}
			g.NsPerOp, _ = strconv.ParseFloat(m[2], 64)
			g.BytesPerOp, _ = strconv.ParseFloat(m[3], 64)
			g.AllocsPerOp, _ = strconv.ParseFloat(m[4], 64)
			out = append(out, g)
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

func tailOf(s string) string {
	if len(s) > 1500 {
		return s[len(s)-1500:]
	}
	return s
}

// Profile is the top of one pprof profile.
type Profile struct {
	Name string `json:"name"`
	File string `json:"file"`
	Top  string `json:"top"`
}

func pprofTop(ctx context.Context, repo, file, sampleIndex string) (string, error) {
	args := []string{"tool", "pprof", "-top", "-nodecount=25"}
	if sampleIndex != "" {
		args = append(args, "-sample_index="+sampleIndex)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, file)...)
	cmd.Dir = repo
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool pprof %s: %w", file, err)
	}
	return string(b), nil
}

// profileMicrobench profiles BenchmarkHTTP1Proxy (CPU and allocations).
func profileMicrobench(ctx context.Context, o Options) ([]Profile, error) {
	benchtime := "3s"
	if o.Smoke {
		benchtime = "200x"
	}
	cpu, mem := o.Out+"/microbench-cpu.prof", o.Out+"/microbench-mem.prof"
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkHTTP1Proxy$", "-benchmem", "-benchtime", benchtime,
		"-cpuprofile", cpu, "-memprofile", mem, "-o", os.TempDir()+"/meshbench-proxy.test", "./internal/proxy/")
	cmd.Dir = o.Repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("profile BenchmarkHTTP1Proxy: %w\n%s", err, tailOf(string(b)))
	}
	var out []Profile
	for _, p := range []struct{ name, file, idx string }{
		{"BenchmarkHTTP1Proxy CPU", cpu, ""},
		{"BenchmarkHTTP1Proxy allocations (alloc_space)", mem, "alloc_space"},
	} {
		top, err := pprofTop(ctx, o.Repo, p.file, p.idx)
		if err != nil {
			return out, err
		}
		out = append(out, Profile{Name: p.name, File: p.file, Top: top})
	}
	return out, nil
}

// profileUnderLoad takes CPU and allocation profiles of the client and
// server sidecars while 1 KB requests run over two hops at 1000 requests
// per second (the rate the CPU target is set at, where waking up per
// request weighs most; the closed-loop maximum shows the forwarding work),
// once with HTTP/1.1 and once with gRPC, and counts the HTTP/1.1 server
// sidecar's goroutines idle and loaded.
// defaultProfileRate is the load the profiles are taken under unless
// Options.ProfileRate says otherwise.
const defaultProfileRate = 1000

func (e *env) profileUnderLoad(ctx context.Context, o Options) ([]Profile, *Goroutines, error) {
	secs := 10
	if o.Smoke {
		secs = 1
	}
	var out []Profile
	var g *Goroutines
	rate := o.profileRate()
	load := fmt.Sprintf("%d rps", int(rate))
	if rate == 0 {
		load = "the maximum rate"
	}
	for _, s := range []Scenario{scenarios[0], scenarios[1]} {
		server := e.sidecars[serverNodeFor(s.Proto).name]
		sidecars := []*sidecar{e.sidecars[clientNode], server}
		idle, err := settledGoroutines(server)
		if err != nil {
			return nil, nil, err
		}
		type fetched struct {
			name, file string
			err        error
		}
		results := make(chan fetched, len(sidecars))
		for _, sc := range sidecars {
			go func() {
				f := fmt.Sprintf("%s/%s-sidecar-%s-cpu.prof", o.Out, s.ID, sc.node)
				results <- fetched{fmt.Sprintf("%s over two hops at %s, sidecar %s, CPU", s.ID, load, sc.node), f,
					fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", sc.admin, secs), f)}
			}()
		}
		d, err := e.dialer(pathML2, s)
		if err != nil {
			return nil, nil, err
		}
		cfg := loadgen.Config{Rate: rate, Conns: o.Conns, Duration: time.Duration(secs+1) * time.Second, Warmup: 5, Dial: d}
		loaded := make(chan int, 1)
		go func() {
			time.Sleep(time.Duration(secs) * time.Second / 2)
			n, _ := goroutines(server)
			loaded <- n
		}()
		if _, err := loadgen.Run(ctx, cfg); err != nil {
			return nil, nil, fmt.Errorf("load for profiling: %w", err)
		}
		if g == nil {
			g = &Goroutines{Conns: o.Conns, Idle: idle, Loaded: <-loaded}
			if g.Conns > 0 {
				g.PerConn = float64(g.Loaded-g.Idle) / float64(g.Conns)
			}
		}
		for range sidecars {
			f := <-results
			if f.err != nil {
				return nil, g, f.err
			}
			top, err := pprofTop(ctx, o.Repo, f.file, "")
			if err != nil {
				return nil, g, err
			}
			out = append(out, Profile{Name: f.name, File: f.file, Top: top})
		}
		// Allocations since the sidecar started.
		f := fmt.Sprintf("%s/%s-sidecar-%s-allocs.prof", o.Out, s.ID, server.node)
		if err := fetch("http://"+server.admin+"/debug/pprof/allocs", f); err == nil {
			if top, err := pprofTop(ctx, o.Repo, f, "alloc_space"); err == nil {
				out = append(out, Profile{Name: fmt.Sprintf("sidecar %s allocations since start (alloc_space)", server.node), File: f, Top: top})
			}
		}
	}
	return out, g, nil
}

func fetch(url, file string) error {
	resp, err := longHTTP.Get(url)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return nil
}

var goroutineTotal = regexp.MustCompile(`goroutine profile: total (\d+)`)

// settledGoroutines counts a sidecar's goroutines once the count holds
// still for a second (connections of the previous run winding down), or
// after ten seconds.
func settledGoroutines(sc *sidecar) (int, error) {
	prev, err := goroutines(sc)
	for range 10 {
		if err != nil {
			return 0, err
		}
		time.Sleep(time.Second)
		var n int
		if n, err = goroutines(sc); err == nil && n == prev {
			return n, nil
		}
		prev = n
	}
	return prev, err
}

func goroutines(sc *sidecar) (int, error) {
	resp, err := plainHTTP.Get("http://" + sc.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, fmt.Errorf("goroutines of %s: %w", sc.node, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	m := goroutineTotal.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("goroutines of %s: no total in the answer", sc.node)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n, nil
}

// waitTracing waits until every sidecar's config_dump shows a tracing
// setting.
func (e *env) waitTracing(ctx context.Context, t tracingSetting) error {
	for name, sc := range e.sidecars {
		err := waitFor(ctx, 15*time.Second, "tracing "+t.variant+" in the config of "+name, func() error {
			resp, err := plainHTTP.Get("http://" + sc.admin + "/config_dump")
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !t.inConfig(strings.Join(strings.Fields(string(b)), "")) {
				return fmt.Errorf("config_dump does not show tracing %s", t.yaml())
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// traceCount is how many traces of the HTTP/1.1 server sidecar that
// started since a moment the control plane's trace store answers with
// (its Jaeger API, which returns at most 1500).
func (e *env) traceCount(ctx context.Context, since time.Time) (int, error) {
	u := fmt.Sprintf("%s/api/traces?limit=1500&start=%d&service=%s/%s", e.apiURL, since.UnixMicro(), meshName, serverNodes[0].name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("trace store query: %w", err)
	}
	resp, err := longHTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("trace store query: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("trace store query: %s: %s", resp.Status, b)
	}
	var body struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("trace store query: decode: %w", err)
	}
	return len(body.Data), nil
}

// profileRate is the load the sidecars' profiles are taken under.
func (o Options) profileRate() float64 {
	if o.ProfileRate < 0 {
		return defaultProfileRate
	}
	return o.ProfileRate
}
