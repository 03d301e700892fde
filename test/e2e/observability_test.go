package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// demoProc is a running `meshlens demo` with known ports.
type demoProc struct {
	cmd      *exec.Cmd
	dataDir  string
	api      int
	gateway  int
	admins   map[string]string // process -> admin host:port
	exited   chan struct{}
	out, log *syncBuffer
}

// startDemo runs the demo without background load, with env added to the
// environment of every process it starts.
func startDemo(t *testing.T, env ...string) *demoProc {
	t.Helper()
	base := demoPortBase()
	d := &demoProc{dataDir: t.TempDir(), api: base, gateway: base + 2, exited: make(chan struct{}), out: &syncBuffer{}, log: &syncBuffer{}}
	p := base + 3 // the demo's --port-base: app, ingress, egress, admin per instance, then the gateway's admin
	d.admins = map[string]string{
		"greeter-1":     fmt.Sprintf("127.0.0.1:%d", p+3),
		"greeting-v1-1": fmt.Sprintf("127.0.0.1:%d", p+7),
		"greeting-v2-1": fmt.Sprintf("127.0.0.1:%d", p+11),
		"name-1":        fmt.Sprintf("127.0.0.1:%d", p+15),
		"gateway":       fmt.Sprintf("127.0.0.1:%d", p+16),
	}
	d.cmd = exec.Command(binary, "demo", "--api-port", fmt.Sprint(base), "--xds-port", fmt.Sprint(base+1),
		"--gateway-port", fmt.Sprint(d.gateway), "--port-base", fmt.Sprint(p), "--rps", "0", "--data-dir", d.dataDir)
	d.cmd.Env = append(os.Environ(), env...)
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		var once sync.Once
		for sc.Scan() {
			d.out.Write([]byte(sc.Text() + "\n"))
			if strings.Contains(sc.Text(), "meshlens demo is running") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-d.exited:
		t.Fatalf("demo exited: %s\n%s\n%s", d.cmd.ProcessState, d.out.String(), d.log.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("demo not ready\n%s\n%s", d.out.String(), d.log.String())
	}
	return d
}

// killOutright kills the demo with SIGKILL, so that it stops nothing
// itself, and expects every process it started (control plane, apps,
// sidecars, gateway) gone within 20 s: each holds a lifeline to the
// demo (internal/lifeline) and stops when it ends.
func (d *demoProc) killOutright(t *testing.T) {
	t.Helper()
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(d.cmd.Process.Pid)).Output()
	kids := strings.Fields(string(out))
	if len(kids) < 5 {
		t.Fatalf("the demo runs %d processes (%v), want its control plane, apps, sidecars and gateway", len(kids), kids)
	}
	d.cmd.Process.Kill()
	<-d.exited
	eventually(t, 20*time.Second, "every process of the killed demo gone", func() error {
		var left []string
		for _, pid := range kids {
			// Gone, or a zombie its new parent has yet to reap.
			if st, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil && !bytes.Contains(st, []byte(") Z ")) {
				left = append(left, pid)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("still running: %v", left)
		}
		return nil
	})
}

// adminGet fetches an admin path of one of the demo's proxies.
func adminGet(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s%s: %s %s", addr, path, resp.Status, b)
	}
	return string(b)
}

// statSum adds up the counters of /stats whose names match re.
func statSum(t *testing.T, addr string, re string) int64 {
	t.Helper()
	rx := regexp.MustCompile(`^(` + re + `): (\d+)$`)
	var sum int64
	for _, line := range strings.Split(adminGet(t, addr, "/stats"), "\n") {
		if m := rx.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			sum += n
		}
	}
	return sum
}

// promSample reads one sample of a Prometheus text exposition.
func promSum(text, metric string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// Counts are exact on both sides of each hop of the demo after N requests
// of known outcome; histogram counts equal request counts; promtool
// accepts every proxy's Prometheus output; access log lines are written.
func TestStatsExactThroughDemo(t *testing.T) {
	t.Parallel()
	d := startDemo(t, "ENVOY_STATS_FLUSH_INTERVAL=1s")
	withoutGreeterHealthCheck(t, d)
	for name, addr := range d.admins {
		resp, err := http.Post("http://"+addr+"/reset_counters", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("reset_counters on %s: %s", name, resp.Status)
		}
	}
	// Histograms are not reset (as in Envoy): count from a baseline taken
	// once the demo's own startup requests have been flushed.
	gwAdmin := d.admins["gateway"]
	time.Sleep(1500 * time.Millisecond)
	histCounts := func() [3]float64 {
		prom := adminGet(t, gwAdmin, "/stats/prometheus")
		a, _ := promSum(prom, "envoy_cluster_upstream_rq_time_count", `greeter`)
		b, _ := promSum(prom, "envoy_http_downstream_rq_time_count")
		c, _ := promSum(prom, "meshlens_request_duration_seconds_count", `reporter="source"`)
		return [3]float64{a, b, c}
	}
	base := histCounts()
	const n = 40
	for i := 0; i < n; i++ {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", d.gateway))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
	gw, greeter := d.admins["gateway"], d.admins["greeter-1"]
	checks := []struct {
		what, addr, re string
		want           int64
	}{
		{"gateway: downstream 2xx", gw, `http\.[^:]*\.downstream_rq_2xx`, n},
		{"gateway: downstream total", gw, `http\.[^:]*\.downstream_rq_total`, n},
		{"gateway: upstream 200 to greeter", gw, `cluster\.[^:]*greeter[^:]*\.upstream_rq_200`, n},
		{"gateway: upstream 2xx to greeter", gw, `cluster\.[^:]*greeter[^:]*\.upstream_rq_2xx`, n},
		{"greeter sidecar: inbound 2xx", greeter, `http\.ingress[^:]*\.downstream_rq_2xx`, n},
		{"greeter sidecar: egress 2xx", greeter, `http\.egress[^:]*\.downstream_rq_2xx`, 2 * n},
		{"greeter sidecar: upstream to greeting-v1 and v2", greeter, `cluster\.[^:]*greeting-v[12][^:]*\.upstream_rq_2xx`, n},
		{"greeter sidecar: upstream to name", greeter, `cluster\.cds_egress[^:]*_name_[^:]*\.upstream_rq_2xx`, n},
		{"name sidecar: inbound", d.admins["name-1"], `http\.ingress[^:]*\.downstream_rq_2xx`, n},
	}
	for _, c := range checks {
		if got := statSum(t, c.addr, c.re); got != c.want {
			t.Errorf("%s: %d, want %d", c.what, got, c.want)
		}
	}
	v1 := statSum(t, d.admins["greeting-v1-1"], `http\.ingress[^:]*\.downstream_rq_2xx`)
	v2 := statSum(t, d.admins["greeting-v2-1"], `http\.ingress[^:]*\.downstream_rq_2xx`)
	if v1+v2 != n {
		t.Errorf("greeting v1 %d + v2 %d inbound requests, want %d", v1, v2, n)
	}

	// Histogram counts equal request counts, in the Prometheus output, once
	// the flush (1s here) has merged them, as in Envoy.
	eventually(t, 10*time.Second, "histogram counts", func() error {
		got := histCounts()
		for i, what := range []string{"gateway upstream_rq_time", "gateway downstream_rq_time", "gateway meshlens_request_duration_seconds"} {
			if got[i]-base[i] != n {
				return fmt.Errorf("%s count grew by %v, want %d", what, got[i]-base[i], n)
			}
		}
		return nil
	})
	prom := adminGet(t, gw, "/stats/prometheus")
	if v, ok := promSum(prom, "envoy_cluster_upstream_rq", `envoy_response_code="200"`, `greeter`); !ok || v != n {
		t.Errorf("envoy_cluster_upstream_rq{envoy_response_code=\"200\"} = %v, want %d", v, n)
	}
	// Mesh metrics: both sides of the gateway -> greeter hop.
	if v, ok := promSum(prom, "meshlens_requests_total", `reporter="source"`, `destination_service="greeter.demo.local"`, `response_code="200"`); !ok || v != n {
		t.Errorf("gateway meshlens_requests_total to greeter.demo.local = %v (found %v), want %d", v, ok, n)
	}
	gprom := adminGet(t, greeter, "/stats/prometheus")
	if v, ok := promSum(gprom, "meshlens_requests_total", `reporter="destination"`, `source_workload="ingress"`); !ok || v != n {
		t.Errorf("greeter meshlens_requests_total from ingress (destination side) = %v (found %v), want %d", v, ok, n)
	}
	for name, addr := range d.admins {
		if problems := promtoolProblems(t, adminGet(t, addr, "/stats/prometheus")); len(problems) > 0 {
			t.Errorf("promtool check metrics on %s:\n%s", name, strings.Join(problems, "\n"))
		}
	}
	// The greeter node logs to /dev/stdout in Envoy's default format.
	logFile := filepath.Join(d.dataDir, "logs", "greeter-1-sidecar.log")
	eventually(t, 10*time.Second, "access log lines", func() error {
		b, err := os.ReadFile(logFile)
		if err != nil {
			return err
		}
		re := regexp.MustCompile(`(?m)^\[\d{4}-\d\d-\d\dT[^\]]+\] "GET / HTTP/1\.1" 200 - \d+ \d+ \d+ `)
		if got := len(re.FindAll(b, -1)); got < n {
			return fmt.Errorf("%d access log lines of inbound requests, want at least %d", got, n)
		}
		return nil
	})
}

// withoutGreeterHealthCheck takes the health check off the demo's greeter
// listener and waits until the gateway has stopped checking. The gateway
// checks greeter through greeter's sidecar, so its checks are inbound
// requests there too, at times a test does not choose; counting tests
// take them out.
func withoutGreeterHealthCheck(t *testing.T, d *demoProc) {
	t.Helper()
	b, err := os.ReadFile("../../examples/greeter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var node string
	for _, doc := range strings.Split(string(b), "\n---\n") {
		if strings.Contains(doc, "kind: VirtualNode\n") && strings.Contains(doc, "\nname: greeter\n") {
			node = regexp.MustCompile(`(?s)\n      healthCheck:.*?timeoutMillis: \d+`).ReplaceAllString(doc, "")
		}
	}
	if node == "" || strings.Contains(node, "healthCheck") {
		t.Fatalf("no greeter VirtualNode with its health check taken out in examples/greeter.yaml:\n%s", node)
	}
	cmd := exec.Command(binary, "apply", "-f", "-", "--server", fmt.Sprintf("http://127.0.0.1:%d", d.api))
	cmd.Stdin = strings.NewReader(node)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apply greeter without its health check: %v\n%s", err, out)
	}
	eventually(t, 20*time.Second, "the gateway stops health-checking greeter", func() error {
		if strings.Contains(adminGet(t, d.admins["gateway"], "/config_dump"), "health_checks") {
			return fmt.Errorf("the gateway's clusters still have health_checks")
		}
		return nil
	})
}

// startPrometheus runs a real Prometheus server scraping targets every
// second; it returns its base URL.
func startPrometheus(t *testing.T, jobs map[string][]string) string {
	t.Helper()
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Skip("prometheus is not installed (make test-deps installs it)")
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for path, targets := range jobs {
		job := strings.Trim(strings.ReplaceAll(path, "/", "_"), "_")
		fmt.Fprintf(&cfg, "  - job_name: %s\n    metrics_path: %s\n    static_configs:\n      - targets: [%s]\n", job, path, strings.Join(targets, ", "))
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Port 0: Prometheus logs the address it was given by the system, so
	// no other process can take a port picked for it before it binds.
	cmd := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:0")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	var addr string
	eventually(t, 30*time.Second, "prometheus ready", func() error {
		if addr = logAddr(logs.String(), "Listening on", "address"); addr == "" {
			return fmt.Errorf("not listening yet: %s", logs.String())
		}
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
	return "http://" + addr
}

type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func promQuery(t *testing.T, base, q string) ([]promResult, error) {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, out.Error)
	}
	return out.Data.Result, nil
}

func (r promResult) float() float64 {
	s, _ := r.Value[1].(string)
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// A real Prometheus scrapes the sidecars, the gateway and the control
// plane; PromQL gives request rate by destination, p99 from histogram
// buckets and the 5xx ratio; every query of the starter Grafana dashboard
// returns data. A real statsd_exporter receives the DogStatsD stream with
// App Mesh's tags, and its counters match /stats.
func TestPrometheusAndStatsd(t *testing.T) {
	t.Parallel()
	statsdBin := filepath.Join(goBin(), "statsd_exporter")
	if _, err := os.Stat(statsdBin); err != nil {
		t.Skip("statsd_exporter is not installed (make test-deps installs it)")
	}
	udp := freeUDPAddr(t)
	exporterWeb := toolAddr(t)
	exp := exec.Command(statsdBin, "--statsd.listen-udp="+udp, "--statsd.listen-tcp=", "--web.listen-address="+exporterWeb)
	exp.Stdout, exp.Stderr = io.Discard, io.Discard
	if err := exp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exp.Process.Kill(); exp.Wait() })
	_, udpPort, _ := net.SplitHostPort(udp)

	d := startDemo(t, "ENABLE_ENVOY_STATS_TAGS=1", "ENABLE_ENVOY_DOG_STATSD=1", "STATSD_ADDRESS=127.0.0.1", "STATSD_PORT="+udpPort, "ENVOY_STATS_FLUSH_INTERVAL=1s")
	var admins []string
	for _, a := range d.admins {
		admins = append(admins, a)
	}
	prom := startPrometheus(t, map[string][]string{
		"/stats/prometheus": admins,
		"/metrics":          {fmt.Sprintf("127.0.0.1:%d", d.api)},
	})

	// Steady traffic for a while.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", d.gateway)); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var stopOnce sync.Once
	stopLoad := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	defer stopLoad()

	eventually(t, 60*time.Second, "request rate by destination service", func() error {
		res, err := promQuery(t, prom, `sum by (destination_service) (rate(meshlens_requests_total{reporter="source"}[1m]))`)
		if err != nil {
			return err
		}
		got := map[string]float64{}
		for _, r := range res {
			got[r.Metric["destination_service"]] = r.float()
		}
		for _, svc := range []string{"greeter.demo.local", "greeting.demo.local", "name.demo.local"} {
			if got[svc] <= 0 {
				return fmt.Errorf("rates %v: no rate to %s", got, svc)
			}
		}
		return nil
	})
	res, err := promQuery(t, prom, `histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket[1m])))`)
	if err != nil || len(res) != 1 || !(res[0].float() > 0) {
		t.Errorf("p99 from buckets: %+v %v", res, err)
	}
	res, err = promQuery(t, prom, `(sum(rate(envoy_cluster_upstream_rq_xx{envoy_response_code_class="5"}[1m])) or vector(0)) / sum(rate(envoy_cluster_upstream_rq_xx[1m]))`)
	if err != nil || len(res) != 1 || res[0].float() != 0 {
		t.Errorf("5xx ratio: %+v %v (want 0: every request succeeds)", res, err)
	}
	res, err = promQuery(t, prom, `envoy_server_live{appmesh_mesh="demo",appmesh_virtual_node="greeter"}`)
	if err != nil || len(res) != 1 {
		t.Errorf("App Mesh tags as Prometheus labels: %+v %v", res, err)
	}

	// Every query of the starter dashboard returns data.
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err := os.ReadFile("../../docs/observability/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			eventually(t, 20*time.Second, "dashboard panel "+p.Title, func() error {
				res, err := promQuery(t, prom, tg.Expr)
				if err != nil {
					return err
				}
				if len(res) == 0 {
					return fmt.Errorf("%s: no data", tg.Expr)
				}
				return nil
			})
		}
	}

	// statsd_exporter: App Mesh's tags arrive, and counts match /stats.
	gw := d.admins["gateway"]
	stopLoad()
	eventually(t, 20*time.Second, "statsd_exporter matches /stats", func() error {
		want := statSum(t, gw, `cluster\.[^:]*greeter[^:]*\.upstream_rq_total`)
		resp, err := http.Get("http://" + exporterWeb + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		got, ok := promSum(buf.String(), "envoy_cluster_upstream_rq_total", `appmesh_mesh="demo"`, `appmesh_virtual_gateway="ingress"`, `greeter`)
		if !ok || int64(got) != want {
			return fmt.Errorf("statsd_exporter has %v (found %v), /stats has %d", got, ok, want)
		}
		return nil
	})
}

func goBin() string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin")
}

func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// envoyNamingLints are promtool's style remarks that Envoy's own metric
// names draw (counters without _total, App Mesh's CamelCase tags, no HELP
// text). Dashboards and alarms depend on exactly those names, so they are
// kept; anything else promtool reports is a problem.
var envoyNamingLints = []string{
	`counter metrics should have "_total" suffix`,
	`non-counter metrics should not have "_total" suffix`,
	"metric names should be written in 'snake_case' not 'camelCase'",
	"label names should be written in 'snake_case' not 'camelCase'",
	"metric names should not contain abbreviated units",
	"no help text",
}

// promtoolProblems runs `promtool check metrics` on text and returns what
// it reports beyond envoyNamingLints. A parse error is always a problem.
func promtoolProblems(t *testing.T, text string) []string {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool is not installed (make test-deps installs it)")
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		allowed := false
		for _, a := range envoyNamingLints {
			if strings.Contains(line, a) {
				allowed = true
			}
		}
		if !allowed && line != "" {
			problems = append(problems, line)
		}
	}
	return problems
}
