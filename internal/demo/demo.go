// Package demo runs a whole mesh on one machine: a control plane with a
// fresh data dir, the greeter applications, a sidecar per instance, an
// ingress gateway and a light steady load, each a real process of the
// meshlens binary on loopback. It is what `meshlens demo` runs and what
// the end-to-end tests start.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshlens/meshlens/examples"
	"github.com/meshlens/meshlens/internal/apiclient"
	"github.com/meshlens/meshlens/internal/lifeline"
)

// Options configure a demo run. Zero values take the defaults.
type Options struct {
	Binary      string // the meshlens binary; default os.Executable()
	DataDir     string // default a fresh temporary directory, removed at exit
	Host        string // loopback address everything binds to; default 127.0.0.1
	APIPort     int    // default 7070, so the CLI works without --server
	XDSPort     int    // default 15010
	GatewayPort int    // default 8080
	// PortBase is the first of the ports the demo's apps, sidecars and
	// admin endpoints use (about 30 in a row); default 20000.
	PortBase int
	RPS      float64 // steady load through the gateway; 0 means the default 5, negative means none
	// PrometheusURL, when set, makes the demo's control plane read the
	// console's traffic from this Prometheus (which must scrape the
	// proxies' /stats/prometheus) instead of its built-in history.
	PrometheusURL string
	Out           io.Writer
	Log           *slog.Logger
	// Ready, when set, is called once the mesh answers through the gateway.
	Ready func(Info)
}

// Info tells where the demo's parts listen.
type Info struct {
	APIURL     string
	XDSAddr    string
	GatewayURL string
	Admin      map[string]string // process name -> admin URL
	DataDir    string
}

// instance is one application instance with its sidecar.
type instance struct {
	node, id, role string
	words          []string
}

var instances = []instance{
	{node: "greeter", id: "greeter-1", role: "greeter"},
	{node: "greeting-v1", id: "greeting-v1-1", role: "greeting", words: []string{"Hi", "Hello", "Greetings"}},
	{node: "greeting-v2", id: "greeting-v2-1", role: "greeting", words: []string{"Howdy", "Hey"}},
	{node: "name", id: "name-1", role: "name", words: []string{"Art", "Courtney", "Eduardo"}},
}

func (o *Options) defaults() error {
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the meshlens binary: %w", err)
		}
		o.Binary = exe
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.APIPort == 0 {
		o.APIPort = 7070
	}
	if o.XDSPort == 0 {
		o.XDSPort = 15010
	}
	if o.GatewayPort == 0 {
		o.GatewayPort = 8080
	}
	if o.PortBase == 0 {
		o.PortBase = 20000
	}
	if o.RPS == 0 {
		o.RPS = 5
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return nil
}

// proc is a child process of the demo.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
	// line stops the child if the demo dies however it dies
	// (internal/lifeline); held, never written, for the demo's life.
	line *lifeline.Line
}

type runner struct {
	opts  Options
	logs  string
	mu    sync.Mutex
	procs []*proc
}

func (r *runner) addr(port int) string { return net.JoinHostPort(r.opts.Host, strconv.Itoa(port)) }

func (r *runner) start(name string, args ...string) (*proc, error) {
	f, err := os.Create(filepath.Join(r.logs, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("log file for %s: %w", name, err)
	}
	cmd := exec.Command(r.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// A process group of its own: Ctrl-C in the terminal reaches only the
	// demo, which stops its processes in order, rather than all of them at
	// once (a process that exits first would read as a failure).
	// If the demo itself dies, however it dies, its lifeline to each
	// child ends (internal/lifeline) and the child stops as on SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	line, err := lifeline.Attach(cmd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	err = cmd.Start()
	line.Started()
	if err != nil {
		f.Close()
		line.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: f, line: line}
	go func() { cmd.Wait(); close(p.done) }()
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	return p, nil
}

// stopAll stops the children in reverse start order: gateway and
// sidecars drain before the control plane goes.
func (r *runner) stopAll() {
	r.mu.Lock()
	procs := append([]*proc(nil), r.procs...)
	r.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		p.log.Close()
		p.line.Close()
	}
}

// exited reports the first child that ended on its own.
func (r *runner) exited() <-chan *proc {
	out := make(chan *proc, 1)
	r.mu.Lock()
	procs := append([]*proc(nil), r.procs...)
	r.mu.Unlock()
	for _, p := range procs {
		go func(p *proc) {
			<-p.done
			select {
			case out <- p:
			default:
			}
		}(p)
	}
	return out
}

func waitHTTP(ctx context.Context, url string, ok func(*http.Response, []byte) error, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			if rerr != nil {
				last = fmt.Errorf("%s: %w", url, rerr)
			} else if last = ok(resp, body); last == nil {
				return nil
			}
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", url, errors.Join(last, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func status200(r *http.Response, _ []byte) error {
	if r.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", r.Request.URL, r.Status)
	}
	return nil
}

// everyClusterHasEndpoints accepts an admin /clusters?format=json answer
// whose clusters all have at least one endpoint. A sidecar gets its
// clusters before the endpoints of instances still starting, so one
// answer through the gateway does not mean every route target (the
// 10 % canary, say) can be reached yet.
func everyClusterHasEndpoints(r *http.Response, body []byte) error {
	if err := status200(r, body); err != nil {
		return err
	}
	var doc struct {
		ClusterStatuses []struct {
			Name         string            `json:"name"`
			HostStatuses []json.RawMessage `json:"host_statuses"`
		} `json:"cluster_statuses"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("%s: %w", r.Request.URL, err)
	}
	if len(doc.ClusterStatuses) == 0 {
		return fmt.Errorf("%s: no clusters yet", r.Request.URL)
	}
	for _, c := range doc.ClusterStatuses {
		if len(c.HostStatuses) == 0 {
			return fmt.Errorf("%s: cluster %s has no endpoints yet", r.Request.URL, c.Name)
		}
	}
	return nil
}

// Run starts the demo and keeps it running until ctx ends.
func Run(ctx context.Context, opts Options) (err error) {
	if err := opts.defaults(); err != nil {
		return err
	}
	r := &runner{opts: opts}
	if opts.DataDir == "" {
		dir, err := os.MkdirTemp("", "meshlens-demo-")
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		defer os.RemoveAll(dir)
		opts.DataDir = dir
		r.opts.DataDir = dir
	}
	r.logs = filepath.Join(opts.DataDir, "logs")
	if err := os.MkdirAll(r.logs, 0o755); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	defer r.stopAll()

	api, xds := r.addr(opts.APIPort), r.addr(opts.XDSPort)
	apiURL := "http://" + api
	cpArgs := []string{"server", "--data-dir", filepath.Join(opts.DataDir, "store"), "--api-addr", api, "--xds-addr", xds}
	if opts.PrometheusURL != "" {
		cpArgs = append(cpArgs, "--prometheus-url", opts.PrometheusURL)
	}
	if _, err := r.start("control-plane", cpArgs...); err != nil {
		return err
	}
	if err := waitHTTP(ctx, apiURL+"/healthz", status200, 15*time.Second); err != nil {
		return fmt.Errorf("control plane (log: %s): %w", filepath.Join(r.logs, "control-plane.log"), err)
	}
	client, err := apiclient.New(apiURL, nil)
	if err != nil {
		return err
	}
	if _, err := client.Apply(ctx, examples.Greeter, false); err != nil {
		return fmt.Errorf("apply the demo mesh: %w", err)
	}

	info := Info{APIURL: apiURL, XDSAddr: xds, GatewayURL: "http://" + r.addr(opts.GatewayPort), Admin: map[string]string{}, DataDir: opts.DataDir}
	port := opts.PortBase
	next := func() int { port++; return port - 1 }
	for _, in := range instances {
		appPort, ingressPort, egressPort, adminPort := next(), next(), next(), next()
		appArgs := []string{"demo-app", "--role", in.role, "--instance", in.id, "--listen", r.addr(appPort)}
		for _, w := range in.words {
			appArgs = append(appArgs, "--word", w)
		}
		if in.role == "greeter" {
			appArgs = append(appArgs, "--proxy", "http://"+r.addr(egressPort))
		}
		if _, err := r.start(in.id, appArgs...); err != nil {
			return err
		}
		admin := r.addr(adminPort)
		info.Admin[in.id+" sidecar"] = "http://" + admin
		if _, err := r.start(in.id+"-sidecar", "proxy",
			"--node", "mesh/demo/virtualNode/"+in.node,
			"--xds-addr", xds, "--server", apiURL,
			"--admin-addr", admin,
			"--ingress-addr", r.addr(ingressPort),
			"--egress-addr", r.addr(egressPort),
			"--app", "9080="+r.addr(appPort),
			"--instance-id", in.id,
		); err != nil {
			return err
		}
	}
	gwAdmin := r.addr(next())
	info.Admin["ingress gateway"] = "http://" + gwAdmin
	if _, err := r.start("ingress-gateway", "proxy",
		"--node", "mesh/demo/virtualGateway/ingress",
		"--xds-addr", xds, "--server", apiURL,
		"--admin-addr", gwAdmin,
		"--listen", fmt.Sprintf("8080=%s", r.addr(opts.GatewayPort)),
	); err != nil {
		return err
	}
	for name, admin := range info.Admin {
		if err := waitHTTP(ctx, admin+"/clusters?format=json", everyClusterHasEndpoints, 30*time.Second); err != nil {
			return fmt.Errorf("the %s did not get its endpoints (logs in %s): %w", name, r.logs, err)
		}
	}
	if err := waitHTTP(ctx, info.GatewayURL+"/", status200, 30*time.Second); err != nil {
		return fmt.Errorf("the mesh did not answer through the gateway (logs in %s): %w", r.logs, err)
	}
	printInfo(opts.Out, info, r.logs)
	if opts.Ready != nil {
		opts.Ready(info)
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	if opts.RPS > 0 {
		go runLoad(loadCtx, info.GatewayURL+"/", opts.RPS, opts.Out)
	}

	select {
	case <-ctx.Done():
		fmt.Fprintln(opts.Out, "\nstopping the demo...")
		return nil
	case p := <-r.exited():
		return fmt.Errorf("%s exited unexpectedly (%v); its log: %s", p.name, p.cmd.ProcessState, p.log.Name())
	}
}

func printInfo(w io.Writer, info Info, logs string) {
	fmt.Fprintf(w, `
meshlens demo is running.

  console:        %s/ui/
  gateway:        %s/
  control plane:  %s   (xDS at %s)
  logs:           %s
`, info.APIURL, info.GatewayURL, info.APIURL, info.XDSAddr, logs)
	fmt.Fprintln(w, "  admin endpoints:")
	for _, name := range []string{"greeter-1 sidecar", "greeting-v1-1 sidecar", "greeting-v2-1 sidecar", "name-1 sidecar", "ingress gateway"} {
		if u, ok := info.Admin[name]; ok {
			fmt.Fprintf(w, "    %-22s %s/server_info\n", name, u)
		}
	}
	serverHint := ""
	if info.APIURL != "http://127.0.0.1:7070" {
		serverHint = "  export MESHLENS_SERVER=" + info.APIURL + "\n"
	}
	fmt.Fprintf(w, `
Try:
%s  curl %s/
  meshlens get virtualnodes --mesh demo
  meshlens describe route split --mesh demo --virtual-router greeting
  # send half the greetings to v2:
  meshlens get route split --mesh demo -o yaml | sed 's/weight: 90/weight: 50/; s/weight: 10/weight: 50/' | meshlens apply -f -
  # every request is traced into the control plane's trace store, which
  # answers Jaeger's API (a Grafana Jaeger data source takes %s):
  curl '%s/api/traces?service=demo/ingress&limit=1'

Unless started with --rps 0, a steady load of requests goes through the
gateway and a summary prints every 10s. Press Ctrl-C to stop everything.

`, serverHint, info.GatewayURL, info.APIURL, info.APIURL)
}

// runLoad sends rps requests per second to url and prints a summary of
// the answers every 10 seconds.
func runLoad(ctx context.Context, url string, rps float64, out io.Writer) {
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rps))
	defer tick.Stop()
	const every = 10 * time.Second
	report := time.NewTicker(every)
	defer report.Stop()
	var mu sync.Mutex
	var w loadWindow
	for {
		select {
		case <-ctx.Done():
			return
		case <-report.C:
			mu.Lock()
			fmt.Fprintln(out, w.summary(every))
			w = loadWindow{}
			mu.Unlock()
		case <-tick.C:
			go func() {
				start := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil && ctx.Err() != nil {
					return
				}
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					status = resp.StatusCode
				}
				took := time.Since(start)
				mu.Lock()
				w.add(status, took)
				mu.Unlock()
			}()
		}
	}
}

// maxLoadSamples bounds the latencies a window keeps (10 s at 6500 rps);
// percentiles over more are taken from the first ones.
const maxLoadSamples = 1 << 16

// loadWindow is what the demo's load saw in one reporting period.
type loadWindow struct {
	byStatus  map[int]int     // answers by status code
	errors    int             // requests that got no answer (refused, reset, timed out)
	latencies []time.Duration // of the answered requests, at most maxLoadSamples
}

// add records one request: status 0 means it got no answer.
func (w *loadWindow) add(status int, took time.Duration) {
	if status == 0 {
		w.errors++
		return
	}
	if w.byStatus == nil {
		w.byStatus = map[int]int{}
	}
	w.byStatus[status]++
	if len(w.latencies) < maxLoadSamples {
		w.latencies = append(w.latencies, took)
	}
}

// summary is the line a person reads every period, e.g.
//
//	load, last 10s through the gateway: 50 requests (5.0/s); by status: 200=49 503=1; errors: 0; latency p50 3.1ms p99 12ms
func (w *loadWindow) summary(period time.Duration) string {
	answered := 0
	codes := make([]int, 0, len(w.byStatus))
	for code, n := range w.byStatus {
		answered += n
		codes = append(codes, code)
	}
	total := answered + w.errors
	head := fmt.Sprintf("load, last %s through the gateway: ", period)
	if total == 0 {
		return head + "no requests completed"
	}
	var b strings.Builder
	b.WriteString(head)
	fmt.Fprintf(&b, "%d requests (%.1f/s); by status:", total, float64(total)/period.Seconds())
	if len(codes) == 0 {
		b.WriteString(" none")
	}
	slices.Sort(codes)
	for _, code := range codes {
		fmt.Fprintf(&b, " %d=%d", code, w.byStatus[code])
	}
	fmt.Fprintf(&b, "; errors: %d", w.errors)
	if len(w.latencies) > 0 {
		lat := slices.Clone(w.latencies)
		slices.Sort(lat)
		fmt.Fprintf(&b, "; latency p50 %s p99 %s", roundLatency(percentile(lat, 50)), roundLatency(percentile(lat, 99)))
	}
	return b.String()
}

// percentile is the nearest-rank percentile p of sorted, non-empty d.
func percentile(d []time.Duration, p int) time.Duration {
	i := (len(d)*p + 99) / 100 // ceil(len*p/100), the nearest rank
	return d[max(i, 1)-1]
}

// roundLatency keeps two or three significant digits: 850µs, 3.1ms, 12ms.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
