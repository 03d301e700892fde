// Command consolebench measures the meshlens console on a synthetic mesh:
// it starts a real `meshlens server`, applies a mesh of -nodes virtual
// nodes (each the provider of its own virtual service, each calling a few
// of the others' services, -edges calls in all), streams those proxies'
// mesh metrics to the control plane over Envoy's metrics service
// (envoy.service.metrics.v3.MetricsService, as the proxies do), then
// drives Debian's chromium (web/console/e2e/perf.mjs, through
// playwright-core) to measure, -runs times in a fresh browser context:
//
//   - first paint: from navigation start to the paint of the frame that
//     shows the graph, every node and edge of it (the console's
//     'meshlens:graph-first-paint' performance mark, set once that frame
//     is painted; perf.mjs fails if that frame misses a node or an edge);
//   - update: from a live update's arrival (server-sent event) to the
//     paint of the frame that shows it ('meshlens:graph-update').
//
// perf.mjs also checks find and hide, and clicking a node and an edge, on
// that graph.
//
// It reports the median and the spread (min-max) of each, and the control
// plane's resident memory at the end, and fails when a median exceeds
// -max-first-paint or -max-update (0: no limit). With -markdown it
// rewrites the `console` generated section of that BENCHMARKS.md.
//
//	cd bench && go run ./cmd/consolebench [-runs 3] [-markdown ../BENCHMARKS.md]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

type options struct {
	repo, binary, markdown, chromium string
	nodes, edges, runs, updates      int
	interval                         time.Duration
	maxFirstPaint, maxUpdate         time.Duration
}

func main() {
	var o options
	fs := flag.NewFlagSet("consolebench", flag.ExitOnError)
	fs.StringVar(&o.repo, "repo", "..", "the meshlens repository (web/console, cmd/meshlens)")
	fs.StringVar(&o.binary, "meshlens", "", "the meshlens binary (default: built from -repo)")
	fs.StringVar(&o.markdown, "markdown", "", "BENCHMARKS.md whose `console` generated section to rewrite")
	fs.StringVar(&o.chromium, "chromium", "/usr/bin/chromium", "the browser")
	fs.IntVar(&o.nodes, "nodes", 200, "virtual nodes in the synthetic mesh")
	fs.IntVar(&o.edges, "edges", 1000, "edges (caller -> virtual service) with traffic")
	fs.IntVar(&o.runs, "runs", 3, "page loads measured, each in a fresh browser context")
	fs.IntVar(&o.updates, "updates", 2, "live updates measured per page load")
	fs.DurationVar(&o.interval, "push-interval", 5*time.Second, "how often each synthetic proxy pushes its metrics")
	fs.DurationVar(&o.maxFirstPaint, "max-first-paint", time.Second, "fail when the median first paint exceeds this (0: no limit)")
	fs.DurationVar(&o.maxUpdate, "max-update", 2*time.Second, "fail when the median update exceeds this (0: no limit)")
	fs.Parse(os.Args[1:])
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "consolebench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.nodes < 2 || o.edges < 1 || o.edges > o.nodes*(o.nodes-1) {
		return fmt.Errorf("-nodes %d -edges %d: need at least 2 nodes and 1 edge, and no more edges than node pairs", o.nodes, o.edges)
	}
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "consolebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.binary == "" {
		o.binary = filepath.Join(tmp, "meshlens")
		build := exec.Command("go", "build", "-o", o.binary, "./cmd/meshlens")
		build.Dir = repo
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build meshlens: %v\n%s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	cp, err := startServer(ctx, o.binary, tmp)
	if err != nil {
		return err
	}
	defer cp.stop()
	slog.Info("control plane", "api", cp.api, "xds", cp.xds)

	m := newMesh(o.nodes, o.edges)
	if err := apply(ctx, cp.api, m.yaml()); err != nil {
		return err
	}
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	var wg sync.WaitGroup
	feedErr := make(chan error, o.nodes)
	for i := range o.nodes {
		wg.Go(func() {
			if err := m.feed(feedCtx, cp.xds, i, o.interval); err != nil && feedCtx.Err() == nil {
				feedErr <- err
			}
		})
	}
	defer wg.Wait()
	defer stopFeed()
	if err := waitTraffic(ctx, cp.api, o.edges, feedErr); err != nil {
		return err
	}

	loadBefore := loadavg()
	res, err := browse(ctx, repo, o, "http://"+cp.api)
	if err != nil {
		return err
	}
	rss := cp.rss()
	fp, up := res.firstPaint(), res.update()
	report := fmt.Sprintf("Measured %s: %d virtual nodes and %d virtual services (%d graph nodes, drawn as %d: a service with a single version shares its box with it), %d edges with traffic; %d page loads, %d live updates each; %d CPUs (%s/%s), 1-minute load average %s before the page loads and %s after.\n\n"+
		"| measure | median | min–max |\n|---|---|---|\n"+
		"| first paint of the graph | %s | %s–%s |\n"+
		"| a live update painted | %s | %s–%s |\n\n"+
		"Control plane resident memory at the end: %.0f MB.\n",
		time.Now().UTC().Format("2006-01-02"), o.nodes, o.nodes, res.Nodes, res.DrawnNodes, o.edges, o.runs, o.updates, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		loadBefore, loadavg(), ms(median(fp)), ms(slices.Min(fp)), ms(slices.Max(fp)), ms(median(up)), ms(slices.Min(up)), ms(slices.Max(up)), float64(rss)/(1<<20))
	fmt.Print(report)
	if o.markdown != "" {
		if err := updateMarkdown(o.markdown, "console", report); err != nil {
			return err
		}
	}
	var fails []string
	if o.maxFirstPaint > 0 && median(fp) > o.maxFirstPaint.Seconds()*1000 {
		fails = append(fails, fmt.Sprintf("median first paint %s exceeds %s", ms(median(fp)), o.maxFirstPaint))
	}
	if o.maxUpdate > 0 && median(up) > o.maxUpdate.Seconds()*1000 {
		fails = append(fails, fmt.Sprintf("median update %s exceeds %s", ms(median(up)), o.maxUpdate))
	}
	if len(fails) > 0 {
		return errors.New(strings.Join(fails, "; "))
	}
	return nil
}

func ms(v float64) string { return fmt.Sprintf("%.0f ms", v) }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// server is a running `meshlens server`.
type server struct {
	cmd      *exec.Cmd
	api, xds string
	exited   chan struct{}
}

func startServer(ctx context.Context, bin, dir string) (*server, error) {
	cmd := exec.Command(bin, "server", "--data-dir", filepath.Join(dir, "store"), "--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0")
	out, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start meshlens server: %w", err)
	}
	s := &server{cmd: cmd, exited: make(chan struct{})}
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, `msg="control plane serving"`) {
				continue
			}
			var a [2]string
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "api="); ok {
					a[0] = v
				}
				if v, ok := strings.CutPrefix(f, "xds="); ok {
					a[1] = v
				}
			}
			once.Do(func() { addrs <- a })
		}
	}()
	go func() { cmd.Wait(); close(s.exited) }()
	select {
	case a := <-addrs:
		s.api, s.xds = a[0], a[1]
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("meshlens server exited: %s", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, errors.New("meshlens server not serving within 30s")
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// rss is the server's resident memory in bytes (Linux), 0 if unknown.
func (s *server) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// loadavg is the machine's 1-minute load average (Linux), "?" if unknown:
// the measurements share the CPUs with whatever else runs.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// mesh is the synthetic mesh: virtual node i provides svc-i.bench.local
// and calls the services in calls[i].
type mesh struct {
	nodes int
	calls [][]int
	in    [][]int // callers of node i
}

func newMesh(nodes, edges int) *mesh {
	m := &mesh{nodes: nodes, calls: make([][]int, nodes), in: make([][]int, nodes)}
	seen := map[[2]int]bool{}
	for e, k := 0, 0; e < edges; k++ {
		from := k % nodes
		to := (from + 1 + (k/nodes)*7 + k%13) % nodes
		if to == from || seen[[2]int{from, to}] {
			continue
		}
		seen[[2]int{from, to}] = true
		m.calls[from] = append(m.calls[from], to)
		m.in[to] = append(m.in[to], from)
		e++
	}
	return m
}

func (m *mesh) yaml() []byte {
	var b bytes.Buffer
	b.WriteString("kind: Mesh\nname: bench\nspec: {}\n")
	for i := range m.nodes {
		fmt.Fprintf(&b, "---\nkind: VirtualNode\nmesh: bench\nname: vn-%d\nspec:\n  listeners:\n    - portMapping: {port: 8080, protocol: http}\n  serviceDiscovery:\n    dns: {hostname: vn-%d.bench.local}\n", i, i)
		if len(m.calls[i]) > 0 {
			b.WriteString("  backends:\n")
			for _, to := range m.calls[i] {
				fmt.Fprintf(&b, "    - virtualService: {virtualServiceName: svc-%d.bench.local}\n", to)
			}
		}
		fmt.Fprintf(&b, "---\nkind: VirtualService\nmesh: bench\nname: svc-%d.bench.local\nspec:\n  provider:\n    virtualNode: {virtualNodeName: vn-%d}\n", i, i)
	}
	return b.Bytes()
}

func apply(ctx context.Context, api string, doc []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+api+"/v1/apply", bytes.NewReader(doc))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("apply the synthetic mesh: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("apply the synthetic mesh: %s: %.500s", resp.Status, body)
	}
	return nil
}

// buckets are the latency histogram's upper bounds, in seconds.
var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// feed streams node i's cumulative mesh metrics every interval, as its
// proxy would: both its calls (reporter source) and the calls it
// receives (reporter destination), about 10 requests per second per edge
// with 1% 503s.
func (m *mesh) feed(ctx context.Context, xds string, i int, interval time.Duration) error {
	conn, err := grpc.NewClient(xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := metricsv3.NewMetricsServiceClient(conn).StreamMetrics(ctx)
	if err != nil {
		return fmt.Errorf("metrics stream of vn-%d: %w", i, err)
	}
	id := &metricsv3.StreamMetricsMessage_Identifier{Node: &corev3.Node{Id: fmt.Sprintf("mesh/bench/virtualNode/vn-%d", i), Cluster: fmt.Sprintf("vn-%d", i)}}
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 1; ; n++ {
		total := uint64(n) * uint64(10*interval.Seconds())
		msg := &metricsv3.StreamMetricsMessage{EnvoyMetrics: m.families(i, total)}
		if n == 1 {
			msg.Identifier = id
		}
		if err := stream.Send(msg); err != nil {
			return fmt.Errorf("metrics of vn-%d: %w", i, err)
		}
		select {
		case <-ctx.Done():
			stream.CloseAndRecv()
			return nil
		case <-t.C:
		}
	}
}

func (m *mesh) families(i int, total uint64) []*dto.MetricFamily {
	reqs := &dto.MetricFamily{Name: proto.String("meshlens_requests_total"), Type: dto.MetricType_COUNTER.Enum()}
	dur := &dto.MetricFamily{Name: proto.String("meshlens_request_duration_seconds"), Type: dto.MetricType_HISTOGRAM.Enum()}
	add := func(reporter string, from, to int) {
		labels := func(code string) []*dto.LabelPair {
			kv := [][2]string{{"reporter", reporter}, {"source_mesh", "bench"}, {"source_kind", "virtualNode"}, {"source_workload", fmt.Sprintf("vn-%d", from)},
				{"destination_mesh", "bench"}, {"destination_service", fmt.Sprintf("svc-%d.bench.local", to)}, {"destination_workload", fmt.Sprintf("vn-%d", to)},
				{"route", "default"}, {"protocol", "http"}}
			if code != "" {
				kv = append(kv, [2]string{"response_code", code})
			}
			out := make([]*dto.LabelPair, len(kv))
			for j, p := range kv {
				out[j] = &dto.LabelPair{Name: proto.String(p[0]), Value: proto.String(p[1])}
			}
			return out
		}
		errs := total / 100
		reqs.Metric = append(reqs.Metric,
			&dto.Metric{Label: labels("200"), Counter: &dto.Counter{Value: proto.Float64(float64(total - errs))}},
			&dto.Metric{Label: labels("503"), Counter: &dto.Counter{Value: proto.Float64(float64(errs))}})
		h := &dto.Histogram{SampleCount: proto.Uint64(total), SampleSum: proto.Float64(float64(total) * 0.02)}
		// 40% under 10ms, 90% under 25ms, 99% under 100ms.
		for _, ub := range buckets {
			var c uint64
			switch {
			case ub < 0.01:
				c = total * 10 / 100
			case ub < 0.025:
				c = total * 40 / 100
			case ub < 0.05:
				c = total * 90 / 100
			case ub < 0.25:
				c = total * 99 / 100
			default:
				c = total
			}
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(c)})
		}
		dur.Metric = append(dur.Metric, &dto.Metric{Label: labels(""), Histogram: h})
	}
	for _, to := range m.calls[i] {
		add("source", i, to)
	}
	for _, from := range m.in[i] {
		add("destination", from, i)
	}
	return []*dto.MetricFamily{reqs, dur}
}

// waitTraffic waits until the console's graph shows edges edges with a
// non-zero rate.
func waitTraffic(ctx context.Context, api string, edges int, feedErr <-chan error) error {
	deadline := time.Now().Add(2 * time.Minute)
	last := 0
	for {
		select {
		case err := <-feedErr:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		busy, err := busyEdges(ctx, api)
		if err != nil {
			return err
		}
		if busy >= edges {
			slog.Info("synthetic traffic in the graph", "edges", busy)
			return nil
		}
		last = busy
		if time.Now().After(deadline) {
			return fmt.Errorf("the graph shows %d edges with traffic after 2m, want %d", last, edges)
		}
	}
}

func busyEdges(ctx context.Context, api string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/v1/console/graph?mesh=bench", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var g struct {
		Edges []struct {
			Source string   `json:"source"`
			RPS    *float64 `json:"rps"`
		} `json:"edges"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
		return 0, fmt.Errorf("GET /v1/console/graph: %w", err)
	}
	n := 0
	for _, e := range g.Edges {
		if e.RPS != nil && *e.RPS > 0 && strings.HasPrefix(e.Source, "bench/virtualNode/") {
			n++
		}
	}
	return n, nil
}

// results are what perf.mjs measured, in milliseconds.
type results struct {
	Runs []struct {
		FirstPaint float64   `json:"firstPaint"`
		Updates    []float64 `json:"updates"`
	} `json:"runs"`
	Nodes      int `json:"nodes"`
	Edges      int `json:"edges"`
	DrawnNodes int `json:"drawnNodes"`
}

func (r *results) firstPaint() []float64 {
	var out []float64
	for _, x := range r.Runs {
		out = append(out, x.FirstPaint)
	}
	return out
}

func (r *results) update() []float64 {
	var out []float64
	for _, x := range r.Runs {
		out = append(out, x.Updates...)
	}
	return out
}

func browse(ctx context.Context, repo string, o options, api string) (*results, error) {
	web := filepath.Join(repo, "web", "console")
	if _, err := os.Stat(filepath.Join(web, "node_modules", "playwright-core")); err != nil {
		npm := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		npm.Dir = web
		if out, err := npm.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("npm ci in %s: %v\n%s", web, err, out)
		}
	}
	cmd := exec.CommandContext(ctx, "node", filepath.Join(web, "e2e", "perf.mjs"))
	cmd.Dir = web
	cmd.Env = append(os.Environ(), "MESHLENS_CONSOLE_URL="+api, "CHROMIUM="+o.chromium,
		"MESHLENS_PERF_RUNS="+strconv.Itoa(o.runs), "MESHLENS_PERF_UPDATES="+strconv.Itoa(o.updates))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&stdout, os.Stderr), &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("perf.mjs: %v\n%s", err, stderr.Bytes())
	}
	out := stdout.Bytes()
	var r results
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return nil, fmt.Errorf("perf.mjs output: %w\n%s", err, out)
	}
	if len(r.Runs) != o.runs {
		return nil, fmt.Errorf("perf.mjs measured %d runs, want %d", len(r.Runs), o.runs)
	}
	return &r, nil
}

// updateMarkdown replaces what is between `<!-- BEGIN generated: name -->`
// and `<!-- END generated: name -->` in the file at path.
func updateMarkdown(path, name, body string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := "<!-- BEGIN generated: "+name+" -->", "<!-- END generated: "+name+" -->"
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q ... %q section", path, begin, end)
	}
	doc = doc[:i+len(begin)] + "\n" + body + doc[j:]
	return os.WriteFile(path, []byte(doc), 0o644)
}
