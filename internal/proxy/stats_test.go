package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	accesslogv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/accesslog/v3"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	filev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// meta is filter_metadata["meshlens"] as the control plane sends it.
func meta(kv ...string) *corev3.Metadata {
	f := map[string]*structpb.Value{}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i]] = structpb.NewStringValue(kv[i+1])
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"meshlens": {Fields: f}}}
}

// withFileLog adds a file access log with a text format to an HCM.
func withFileLog(path, format string) func(*hcmv3.HttpConnectionManager) {
	return func(h *hcmv3.HttpConnectionManager) {
		h.AccessLog = append(h.AccessLog, &accesslogv3.AccessLog{
			Name:       "envoy.access_loggers.file",
			ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&filev3.FileAccessLog{Path: path, AccessLogFormat: &filev3.FileAccessLog_Format{Format: format}})},
		})
	}
}

// statValue reads one stat from /stats text output; -1 when absent.
func statValue(t *testing.T, p *Proxy, name string) int64 {
	t.Helper()
	_, body := adminGet(t, p, "/stats?filter="+url.QueryEscape("^"+regexp.QuoteMeta(name)+"$"))
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", name, v)
			}
			return n
		}
	}
	return -1
}

// promValue sums the samples of a Prometheus family whose line contains
// every label fragment.
func promValue(text, family string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, family+"{") {
			continue
		}
		ok := true
		for _, lb := range labels {
			ok = ok && strings.Contains(l, lb)
		}
		if !ok {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// Two hops, client sidecar -> server sidecar -> app, with known outcomes:
// every counter on both sides equals what happened, histograms count
// every request once flushed, the mesh metrics name both ends of the
// edge, the app never sees the source header, access log lines follow
// the format, and /reset_counters zeroes counters.
func TestStatsExactTwoHops(t *testing.T) {
	t.Parallel()
	app := startUpstream(t, "app", func(w http.ResponseWriter, r *http.Request) {
		if _, seen := r.Header[meshmetrics.SourceHeader]; seen {
			w.WriteHeader(http.StatusTeapot) // must never happen
			return
		}
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "hello")
	})
	logPath := filepath.Join(t.TempDir(), "access.log")

	server := startProxy(t, Config{NodeID: "mesh/demo/virtualNode/server", StatsFlushInterval: 50 * time.Millisecond})
	inCluster := xCluster("cds_ingress_demo_server_http_9080", app.Addr())
	inCluster.Metadata = meta("mesh", "demo", "virtualNode", "server")
	mustApply(t, server, xds{
		listeners: []*listenerv3.Listener{xListener("lds_ingress_0.0.0.0_15000", "0.0.0.0:15000",
			xChain("ingress_http_9080", 0, xHCM("ingress.http.9080", "rds_ingress_http_9080",
				withFileLog(logPath, "%RESPONSE_CODE% %REQ(:PATH)% %UPSTREAM_CLUSTER% %RESPONSE_FLAGS%\n"))))},
		routes: []*routev3.RouteConfiguration{xRouteConfig("rds_ingress_http_9080",
			xVHost("ingress", []string{"*"}, xRoute("/", to(inCluster.Name))))},
		clusters: []*clusterv3.Cluster{inCluster},
	}.snap(t))
	serverAddr := addrOf(t, server, "lds_ingress_0.0.0.0_15000", 0)

	client := startProxy(t, Config{NodeID: "mesh/demo/virtualNode/client", StatsFlushInterval: 50 * time.Millisecond})
	outCluster := xCluster("cds_egress_demo_server_http_9080", serverAddr)
	outCluster.Metadata = meta("mesh", "demo", "virtualNode", "server")
	vh := xVHost("server.demo.local:9080", []string{"server.demo.local", "server.demo.local:9080"}, xRoute("/", to(outCluster.Name)))
	vh.Metadata = meta("virtualService", "server.demo.local")
	mustApply(t, client, egressRoutes([]*routev3.VirtualHost{vh}, outCluster).snap(t))
	proxyURL, _ := url.Parse("http://" + addrOf(t, client, egressName, 0))
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}

	const ok, failed = 5, 2
	for i := range ok + failed {
		path := "/ok"
		if i >= ok {
			path = "/fail"
		}
		resp, body := get(t, hc, "http://server.demo.local:9080"+path, "", nil)
		want := 200
		if i >= ok {
			want = 503
		}
		if resp.StatusCode != want {
			t.Fatalf("%s: %d %q, want %d", path, resp.StatusCode, body, want)
		}
	}
	hc.CloseIdleConnections()

	const total = ok + failed
	for _, c := range []struct {
		p    *Proxy
		name string
		want int64
	}{
		{client, "http.egress.downstream_rq_total", total},
		{client, "http.egress.downstream_rq_completed", total},
		{client, "http.egress.downstream_rq_2xx", ok},
		{client, "http.egress.downstream_rq_5xx", failed},
		{client, "http.egress.downstream_rq_http1_total", total},
		{client, "http.egress.downstream_rq_active", 0},
		{client, "cluster.cds_egress_demo_server_http_9080.upstream_rq_total", total},
		{client, "cluster.cds_egress_demo_server_http_9080.upstream_rq_completed", total},
		{client, "cluster.cds_egress_demo_server_http_9080.upstream_rq_200", ok},
		{client, "cluster.cds_egress_demo_server_http_9080.upstream_rq_2xx", ok},
		{client, "cluster.cds_egress_demo_server_http_9080.upstream_rq_503", failed},
		{client, "cluster.cds_egress_demo_server_http_9080.upstream_rq_5xx", failed},
		{client, "cluster.cds_egress_demo_server_http_9080.upstream_rq_active", 0},
		{client, "cluster.cds_egress_demo_server_http_9080.upstream_cx_total", 1},
		{client, "cluster.cds_egress_demo_server_http_9080.upstream_cx_http1_total", 1},
		{client, "cluster.cds_egress_demo_server_http_9080.membership_total", 1},
		{client, "cluster.cds_egress_demo_server_http_9080.membership_healthy", 1},
		{server, "http.ingress.http.9080.downstream_rq_total", total},
		{server, "http.ingress.http.9080.downstream_rq_2xx", ok},
		{server, "http.ingress.http.9080.downstream_rq_5xx", failed},
		{server, "http.ingress.http.9080.downstream_cx_total", 1},
		{server, "cluster.cds_ingress_demo_server_http_9080.upstream_rq_200", ok},
		{server, "cluster.cds_ingress_demo_server_http_9080.upstream_rq_503", failed},
		{server, "listener.0.0.0.0_15000.downstream_cx_total", 1},
		{server, "server.live", 1},
	} {
		if got := statValue(t, c.p, c.name); got != c.want {
			t.Errorf("%s on %s: %d, want %d", c.name, c.p.cfg.NodeID, got, c.want)
		}
	}
	if rx := statValue(t, client, "cluster.cds_egress_demo_server_http_9080.upstream_cx_rx_bytes_total"); rx <= 0 {
		t.Errorf("upstream_cx_rx_bytes_total %d", rx)
	}
	if tx := statValue(t, server, "http.ingress.http.9080.downstream_cx_tx_bytes_total"); tx <= 0 {
		t.Errorf("downstream_cx_tx_bytes_total %d", tx)
	}

	// Histograms count every request once merged by the flush.
	waitFor(t, "histogram counts", func() bool {
		_, cp := adminGet(t, client, "/stats/prometheus")
		_, sp := adminGet(t, server, "/stats/prometheus")
		c1, _ := promValue(cp, "envoy_http_downstream_rq_time_count")
		c2, _ := promValue(cp, "envoy_cluster_upstream_rq_time_count")
		c3, _ := promValue(sp, "envoy_http_downstream_rq_time_count")
		m1, _ := promValue(cp, "meshlens_request_duration_seconds_count", `reporter="source"`)
		m2, _ := promValue(sp, "meshlens_request_duration_seconds_count", `reporter="destination"`)
		if !(c1 == total && c2 == total && c3 == total && m1 == total && m2 == total) {
			t.Logf("histogram counts: %v %v %v %v %v", c1, c2, c3, m1, m2)
			return false
		}
		return true
	})

	// Mesh metrics, both sides of the edge client -> server.demo.local.
	_, cp := adminGet(t, client, "/stats/prometheus")
	_, sp := adminGet(t, server, "/stats/prometheus")
	edge := []string{`source_mesh="demo"`, `source_workload="client"`, `source_kind="virtualNode"`,
		`destination_mesh="demo"`, `destination_service="server.demo.local"`, `destination_workload="server"`, `protocol="http"`}
	for _, c := range []struct {
		side, text, code string
		want             float64
	}{
		{"source", cp, "200", ok}, {"source", cp, "503", failed},
		{"destination", sp, "200", ok}, {"destination", sp, "503", failed},
	} {
		labels := append([]string{`reporter="` + c.side + `"`, `response_code="` + c.code + `"`}, edge...)
		if got, _ := promValue(c.text, "meshlens_requests_total", labels...); got != c.want {
			t.Errorf("meshlens_requests_total %s %s = %v, want %v", c.side, c.code, got, c.want)
		}
	}
	if got, _ := promValue(sp, "meshlens_response_bytes_total", `reporter="destination"`, `response_code="200"`); got != float64(ok*len("hello")) {
		t.Errorf("meshlens_response_bytes_total = %v, want %d", got, ok*len("hello"))
	}
	if problems := promtoolProblems(t, cp); len(problems) > 0 {
		t.Errorf("promtool: %v", problems)
	}

	// The access log, in the given format.
	waitFor(t, "access log lines", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "\n") == total
	})
	if got := statValue(t, server, "access_log.written"); got != total {
		t.Errorf("access_log.written %d, want %d", got, total)
	}
	if got := statValue(t, server, "access_log.dropped"); got != 0 {
		t.Errorf("access_log.dropped %d, want 0", got)
	}
	b, _ := os.ReadFile(logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "200 /ok cds_ingress_demo_server_http_9080 -" || lines[total-1] != "503 /fail cds_ingress_demo_server_http_9080 -" {
		t.Errorf("access log:\n%s", b)
	}

	// A health check reaches the application and Envoy's stats, not the
	// mesh metrics.
	req, _ := http.NewRequest(http.MethodGet, "http://"+serverAddr+"/health", nil)
	req.Header.Set("User-Agent", cluster.HealthCheckUserAgent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health check: %s", resp.Status)
	}
	if got := statValue(t, server, "http.ingress.http.9080.downstream_rq_2xx"); got != ok+1 {
		t.Errorf("downstream_rq_2xx after a health check: %d, want %d", got, ok+1)
	}
	_, sp = adminGet(t, server, "/stats/prometheus")
	if got, _ := promValue(sp, "meshlens_requests_total", `reporter="destination"`); got != total {
		t.Errorf("meshlens_requests_total after a health check: %v, want %d", got, total)
	}

	// POST /reset_counters zeroes counters, not gauges.
	if code, _ := adminDo(t, client, http.MethodPost, "/reset_counters"); code != 200 {
		t.Fatalf("reset_counters: %d", code)
	}
	if got := statValue(t, client, "http.egress.downstream_rq_total"); got != 0 {
		t.Errorf("after reset: downstream_rq_total %d", got)
	}
	if got := statValue(t, client, "cluster.cds_egress_demo_server_http_9080.membership_total"); got != 1 {
		t.Errorf("after reset: membership_total %d (a gauge, kept)", got)
	}
}

// A request with no route counts as no_route and a 4xx; a bad filter is a
// 400 naming the parameter; ?format=json parses.
func TestStatsLocalRepliesAndQueries(t *testing.T) {
	t.Parallel()
	p := startProxy(t, Config{})
	mustApply(t, p, outbound(xCluster("cds_app", "127.0.0.1:1")).snap(t))
	proxyURL, _ := url.Parse("http://" + addrOf(t, p, egressName, 0))
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}
	resp, _ := get(t, hc, "http://elsewhere.example:80/", "", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("no route: %d", resp.StatusCode)
	}
	resp, _ = get(t, hc, "http://greeting.demo.local:9080/", "", nil)
	if resp.StatusCode != 503 {
		t.Fatalf("connect failure: %d", resp.StatusCode)
	}
	for name, want := range map[string]int64{
		"http.egress.no_route":                     1,
		"http.egress.downstream_rq_4xx":            1,
		"http.egress.downstream_rq_5xx":            1,
		"cluster.cds_app.upstream_cx_connect_fail": 1,
	} {
		if got := statValue(t, p, name); got != want {
			t.Errorf("%s: %d, want %d", name, got, want)
		}
	}
	if code, body := adminGet(t, p, "/stats?filter=("); code != 400 || !strings.Contains(body, "filter") {
		t.Errorf("bad filter: %d %q", code, body)
	}
	if code, body := adminGet(t, p, "/stats?format=json"); code != 200 || !strings.HasPrefix(body, `{"stats":[`) {
		t.Errorf("json: %d %.80q", code, body)
	}
	if code, _ := adminGet(t, p, "/reset_counters"); code != 405 {
		t.Errorf("GET /reset_counters: %d, want 405", code)
	}
}

// DisableStats leaves the data path without stats; server.* stays.
func TestStatsDisabled(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	p := startProxy(t, Config{DisableStats: true})
	mustApply(t, p, outbound(xCluster("cds_app", up.Addr())).snap(t))
	proxyURL, _ := url.Parse("http://" + addrOf(t, p, egressName, 0))
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}
	if resp, _ := get(t, hc, "http://greeting.demo.local:9080/", "", nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_, body := adminGet(t, p, "/stats")
	if strings.Contains(body, "cluster.") || strings.Contains(body, "http.egress") || !strings.Contains(body, "server.live: 1") {
		t.Errorf("/stats with stats disabled:\n%s", body)
	}
	_, prom := adminGet(t, p, "/stats/prometheus")
	if strings.Contains(prom, "meshlens_") {
		t.Errorf("mesh metrics with stats disabled")
	}
}

// promtoolProblems runs `promtool check metrics` and returns its remarks
// other than the naming lints Envoy's own names draw on purpose.
func promtoolProblems(t *testing.T, text string) []string {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Log("promtool not installed; skipping the exposition check")
		return nil
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, _ := cmd.CombinedOutput()
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" || strings.Contains(l, `should have "_total" suffix`) || strings.Contains(l, "no help text") ||
			strings.Contains(l, `should not have "_total" suffix`) || strings.Contains(l, "abbreviated units") ||
			// Envoy's server.days_until_first_cert_expiring keeps its
			// name (and unit) for the dashboards and alarms built on it.
			strings.Contains(l, `envoy_server_days_until_first_cert_expiring use base unit`) {
			continue
		}
		problems = append(problems, l)
	}
	return problems
}

// The stats of a cluster that leaves the configuration disappear; those
// of a cluster that stays keep counting across snapshots.
func TestStatsFollowConfiguration(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	p := startProxy(t, Config{})
	mustApply(t, p, outbound(xCluster("cds_app", up.Addr()), xCluster("cds_gone", up.Addr())).snap(t))
	proxyURL, _ := url.Parse("http://" + addrOf(t, p, egressName, 0))
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}
	if resp, _ := get(t, hc, "http://greeting.demo.local:9080/", "", nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if statValue(t, p, "cluster.cds_gone.membership_total") != 1 {
		t.Fatalf("cds_gone has no stats")
	}
	// A new snapshot with a different endpoint set for cds_app.
	mustApply(t, p, outbound(xCluster("cds_app", up.Addr(), "127.0.0.1:1")).snap(t))
	if resp, _ := get(t, hc, "http://greeting.demo.local:9080/", "", nil); resp.StatusCode != 200 && resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := statValue(t, p, "cluster.cds_app.upstream_rq_total"); got != 2 {
		t.Errorf("cds_app upstream_rq_total %d across snapshots, want 2", got)
	}
	if got := statValue(t, p, "cluster.cds_app.membership_total"); got != 2 {
		t.Errorf("cds_app membership_total %d, want 2", got)
	}
	// Its upstream is released once in-flight requests had their drain.
	waitFor(t, "cds_gone's stats to go", func() bool { return statValue(t, p, "cluster.cds_gone.membership_total") == -1 })
}
