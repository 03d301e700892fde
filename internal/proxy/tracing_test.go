package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	tracev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/trace/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingtypev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/tracing/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
)

// zipkinSpan is what the test collector reads of a Zipkin v2 span.
type zipkinSpan struct {
	TraceID  string            `json:"traceId"`
	ID       string            `json:"id"`
	ParentID string            `json:"parentId"`
	Kind     string            `json:"kind"`
	Name     string            `json:"name"`
	Tags     map[string]string `json:"tags"`
	Notes    []struct {
		Value string `json:"value"`
	} `json:"annotations"`
	Local struct {
		ServiceName string `json:"serviceName"`
	} `json:"localEndpoint"`
}

// zipkinCollector is a Zipkin v2 intake on loopback that keeps the spans.
type zipkinCollector struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []zipkinSpan
}

func startZipkin(t testing.TB) *zipkinCollector {
	z := &zipkinCollector{}
	z.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []zipkinSpan
		if r.URL.Path != "/api/v2/spans" || json.NewDecoder(r.Body).Decode(&batch) != nil {
			http.Error(w, "bad", 400)
			return
		}
		z.mu.Lock()
		z.spans = append(z.spans, batch...)
		z.mu.Unlock()
		w.WriteHeader(202)
	}))
	t.Cleanup(z.srv.Close)
	return z
}

func (z *zipkinCollector) trace(id string) []zipkinSpan {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []zipkinSpan
	for _, s := range z.spans {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	return out
}

func (z *zipkinCollector) count() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return len(z.spans)
}

// withZipkinTracing sets an HCM's tracing to the Zipkin collector cluster
// cds_zipkin at percent, as the control plane does for a node web of
// mesh m.
func withZipkinTracing(percent float64) func(*hcmv3.HttpConnectionManager) {
	return func(h *hcmv3.HttpConnectionManager) {
		h.Tracing = &hcmv3.HttpConnectionManager_Tracing{
			RandomSampling: &typev3.Percent{Value: percent},
			Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.ZipkinConfig{
				CollectorCluster: "cds_zipkin", CollectorEndpoint: "/api/v2/spans", CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON, TraceId_128Bit: true,
			})}},
			CustomTags: []*tracingtypev3.CustomTag{
				{Tag: "meshlens.mesh", Type: &tracingtypev3.CustomTag_Literal_{Literal: &tracingtypev3.CustomTag_Literal{Value: "m"}}},
				{Tag: "meshlens.virtual_node", Type: &tracingtypev3.CustomTag_Literal_{Literal: &tracingtypev3.CustomTag_Literal{Value: "web"}}},
				{Tag: "team", Type: &tracingtypev3.CustomTag_Literal_{Literal: &tracingtypev3.CustomTag_Literal{Value: "payments"}}},
				{Tag: "tenant", Type: &tracingtypev3.CustomTag_RequestHeader{RequestHeader: &tracingtypev3.CustomTag_Header{Name: "x-tenant"}}},
			},
		}
	}
}

func tracedEgress(vhs []*routev3.VirtualHost, mods ...func(*hcmv3.HttpConnectionManager)) xds {
	x := egressRoutes(vhs)
	x.listeners = []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001", xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001", mods...)))}
	return x
}

// TestTracingSpansAndPropagation: a traced request on a sidecar's egress
// continues the trace that arrived (b3) with a client span per attempt,
// child of the caller's span (a retry is a span of its own with its
// attempt number), writes the attempt's context upstream in W3C and B3,
// prints the ids in the access log and counts the spans sent.
func TestTracingSpansAndPropagation(t *testing.T) {
	t.Parallel()
	z := startZipkin(t)
	var n atomic.Int64
	var mu sync.Mutex
	var seen []http.Header
	up := startUpstream(t, "up", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		if n.Add(1) == 1 {
			w.WriteHeader(503)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, Config{})
	x := tracedEgress([]*routev3.VirtualHost{xVHost("v", []string{"*"},
		withRetry(xRoute("/api", to("cds_up")), "5xx", 1, 0),
		withRouteSampling(xRoute("/quiet", to("cds_up")), 0),
	)}, withZipkinTracing(100), withFileLog(logPath, "%TRACE_ID% %SPAN_ID%\n"))
	x.clusters = append(x.clusters, withOutlier(xCluster("cds_up", up.Addr()), 1, time.Second, time.Second, 100), xCluster("cds_zipkin", strings.TrimPrefix(z.srv.URL, "http://")))
	mustApply(t, p, x.snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)

	const trace, parent = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
	resp, body := get(t, testClient(), base+"/api/x", "svc", map[string]string{"b3": trace + "-" + parent + "-1", "x-tenant": "acme"})
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	waitFor(t, "2 spans of the trace", func() bool { return len(z.trace(trace)) >= 2 })
	spans := z.trace(trace)
	if len(spans) != 2 {
		t.Fatalf("spans %+v, want the 2 attempts' client spans (an egress makes no server span)", spans)
	}
	attempts := map[string]zipkinSpan{}
	for _, c := range spans {
		if c.Kind != "CLIENT" || c.ParentID != parent || c.Local.ServiceName != "m/web" || c.Tags["meshlens.route"] != "r/api" ||
			c.Tags["meshlens.upstream_cluster"] != "cds_up" || c.Tags["team"] != "payments" || c.Tags["tenant"] != "acme" || c.Tags["http.route"] != "/api" {
			t.Errorf("client span %+v, want a child of the caller's span %s with the request's attributes", c, parent)
		}
		attempts[c.Tags["meshlens.attempt"]] = c
	}
	if attempts["1"].Tags["http.response.status_code"] != "503" || attempts["2"].Tags["http.response.status_code"] != "200" {
		t.Errorf("attempts %+v", attempts)
	}
	if !hasNote(attempts["1"], "retry") || !hasNote(attempts["1"], "ejection") || hasNote(attempts["2"], "retry") {
		t.Errorf("attempt events %+v, %+v: want retry and ejection on the first", attempts["1"].Notes, attempts["2"].Notes)
	}
	mu.Lock()
	for i, h := range seen {
		c := attempts[string(rune('1'+i))]
		if h.Get("X-B3-Traceid") != trace || h.Get("X-B3-Spanid") != c.ID || h.Get("Traceparent") != "00-"+trace+"-"+c.ID+"-01" {
			t.Errorf("attempt %d headers %v, want the context of span %s", i+1, h, c.ID)
		}
	}
	mu.Unlock()
	waitFor(t, "the access log line", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), trace+" "+attempts["2"].ID)
	})
	waitFor(t, "spans_sent", func() bool { return statValue(t, p, "tracing.zipkin.spans_sent") >= 2 })

	// A route sampled at 0 %: no span; the request's own trace headers
	// pass unchanged and none are added.
	before := z.count()
	mu.Lock()
	seen = nil
	mu.Unlock()
	const unsampled = "00-" + trace + "-" + parent + "-00"
	for _, hdr := range []map[string]string{nil, {"traceparent": unsampled}} {
		if resp, _ := get(t, testClient(), base+"/quiet", "svc", hdr); resp.StatusCode != 200 {
			t.Fatalf("quiet: %d", resp.StatusCode)
		}
	}
	mu.Lock()
	if tp, b3 := seen[0].Get("Traceparent"), seen[0].Get("X-B3-Traceid"); tp != "" || b3 != "" {
		t.Errorf("unsampled request without a context got trace headers %q %q", tp, b3)
	}
	if tp := seen[1].Get("Traceparent"); tp != unsampled {
		t.Errorf("unsampled traceparent %q, want %q passed on", tp, unsampled)
	}
	mu.Unlock()
	if got := z.count(); got != before {
		t.Errorf("an unsampled route made %d spans", got-before)
	}
}

// hasNote reports whether a span has an event (annotation) named name.
func hasNote(s zipkinSpan, name string) bool {
	for _, n := range s.Notes {
		if n.Value == name || strings.HasPrefix(n.Value, name+" ") {
			return true
		}
	}
	return false
}

func withRouteSampling(r *routev3.Route, percent uint32) *routev3.Route {
	r.Tracing = &routev3.Tracing{RandomSampling: &typev3.FractionalPercent{Numerator: percent}}
	return r
}

// TestTracingExportersKeptAcrossUpdates: an unchanged provider keeps its
// exporter across snapshots; one no connection manager names any more is
// shut down.
func TestTracingExportersKeptAcrossUpdates(t *testing.T) {
	t.Parallel()
	z := startZipkin(t)
	up := startUpstream(t, "up", nil)
	p := startProxy(t, Config{})
	x := tracedEgress([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_up")))}, withZipkinTracing(100))
	x.clusters = append(x.clusters, xCluster("cds_up", up.Addr()), xCluster("cds_zipkin", strings.TrimPrefix(z.srv.URL, "http://")))
	mustApply(t, p, x.snap(t))
	exporters := func() map[string]*exporterRT {
		p.mu.Lock()
		defer p.mu.Unlock()
		out := map[string]*exporterRT{}
		for k, v := range p.exporters {
			out[k] = v
		}
		return out
	}
	first := exporters()
	if len(first) != 1 {
		t.Fatalf("exporters %v, want 1", first)
	}
	mustApply(t, p, x.snap(t))
	second := exporters()
	for k, e := range first {
		if second[k] != e {
			t.Errorf("exporter %s replaced on an unchanged snapshot", k)
		}
	}
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_up")))}, xCluster("cds_up", up.Addr())).snap(t))
	if got := exporters(); len(got) != 0 {
		t.Errorf("exporters %v after tracing was removed", got)
	}
}

// TestTracingInboundServerSpan: where a request enters a sidecar it is a
// server span, child of the caller's span, with the retry as an event and
// the retry count; the application gets the server span's context; the
// latency histogram's exemplar names the trace in OpenMetrics.
func TestTracingInboundServerSpan(t *testing.T) {
	t.Parallel()
	z := startZipkin(t)
	var n atomic.Int64
	var mu sync.Mutex
	var seen []http.Header
	app := startUpstream(t, "app", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		if n.Add(1) == 1 {
			w.WriteHeader(503)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	p := startProxy(t, Config{})
	x := tracedEgress([]*routev3.VirtualHost{xVHost("v", []string{"*"}, withRetry(xRoute("/", to("cds_app")), "5xx", 1, 0))}, withZipkinTracing(100))
	x.listeners = []*listenerv3.Listener{xListener(ingressName, "0.0.0.0:15000", xChain("ingress_http", 0, xHCM("ingress", "rds_egress_http_15001", withZipkinTracing(100))))}
	x.clusters = append(x.clusters, xCluster("cds_app", app.Addr()), xCluster("cds_zipkin", strings.TrimPrefix(z.srv.URL, "http://")))
	mustApply(t, p, x.snap(t))
	const trace, parent = "5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8"
	resp, _ := get(t, testClient(), "http://"+addrOf(t, p, ingressName, 0)+"/hello", "svc", map[string]string{
		"traceparent": "00-" + trace + "-" + parent + "-01"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	waitFor(t, "the server span", func() bool { return len(z.trace(trace)) >= 1 })
	spans := z.trace(trace)
	if len(spans) != 1 {
		t.Fatalf("spans %+v, want one server span", spans)
	}
	s := spans[0]
	if s.Kind != "SERVER" || s.ParentID != parent || s.Tags["meshlens.retry_count"] != "1" || s.Tags["http.response.status_code"] != "200" {
		t.Errorf("server span %+v", s)
	}
	mu.Lock()
	for i, h := range seen {
		if want := "00-" + trace + "-" + s.ID + "-01"; h.Get("Traceparent") != want || h.Get("X-B3-Spanid") != s.ID {
			t.Errorf("attempt %d: traceparent %q b3 span %q, want the server span's %q", i+1, h.Get("Traceparent"), h.Get("X-B3-Spanid"), want)
		}
	}
	mu.Unlock()
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.AdminAddr().String()+"/stats/prometheus", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	mresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(mresp.Header.Get("Content-Type"), "application/openmetrics-text") ||
		!strings.Contains(string(body), `envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="ingress"`) ||
		!strings.Contains(string(body), `# {trace_id="`+trace+`"}`) || !strings.HasSuffix(string(body), "# EOF\n") {
		t.Errorf("OpenMetrics %s without the trace's exemplar:\n%s", mresp.Header.Get("Content-Type"), body)
	}
}

// TestTracingCollectorDown: with the collector unreachable, traffic is
// answered as without tracing, and the spans that could not be sent are
// counted.
func TestTracingCollectorDown(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "up", nil)
	p := startProxy(t, Config{})
	otlp := func(h *hcmv3.HttpConnectionManager) {
		withZipkinTracing(100)(h)
		h.Tracing.Provider = &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.OpenTelemetryConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "cds_otlp"}}},
			ServiceName: "m/web",
		})}}
	}
	x := tracedEgress([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_up")))}, otlp)
	x.clusters = append(x.clusters, xCluster("cds_up", up.Addr()), xCluster("cds_otlp", closedAddr(t)))
	mustApply(t, p, x.snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)
	for range 20 {
		if resp, body := get(t, testClient(), base+"/x", "svc", nil); resp.StatusCode != 200 || body != "up" {
			t.Fatalf("with the collector down: %d %q", resp.StatusCode, body)
		}
	}
	waitFor(t, "20 spans counted as failed", func() bool {
		return statValue(t, p, "tracing.opentelemetry.spans_failed")+statValue(t, p, "tracing.opentelemetry.spans_dropped") >= 20
	})
	if sent := statValue(t, p, "tracing.opentelemetry.spans_sent"); sent > 0 {
		t.Errorf("spans_sent %d with the collector down", sent)
	}
}

// TestTracingTailKeptToStore: on an inbound listener, a request head
// sampling dropped that failed still reaches the built-in store (the
// collector cluster cds_tracing_meshlens) as a tail-kept server span; one
// that succeeded does not.
func TestTracingTailKeptToStore(t *testing.T) {
	t.Parallel()
	z := startZipkin(t)
	app := startUpstream(t, "app", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(500)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	store := func(h *hcmv3.HttpConnectionManager) {
		withZipkinTracing(0)(h)
		h.Tracing.Provider = &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.ZipkinConfig{
			CollectorCluster: BuiltinTraceCluster, CollectorEndpoint: "/api/v2/spans", CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON,
		})}}
	}
	p := startProxy(t, Config{})
	x := tracedEgress([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_app")))})
	x.listeners = []*listenerv3.Listener{xListener(ingressName, "0.0.0.0:15000", xChain("ingress_http", 0, xHCM("ingress", "rds_egress_http_15001", store)))}
	x.clusters = append(x.clusters, xCluster("cds_app", app.Addr()), xCluster(BuiltinTraceCluster, strings.TrimPrefix(z.srv.URL, "http://")))
	mustApply(t, p, x.snap(t))
	base := "http://" + addrOf(t, p, ingressName, 0)
	if resp, _ := get(t, testClient(), base+"/ok", "svc", nil); resp.StatusCode != 200 {
		t.Fatalf("ok: %d", resp.StatusCode)
	}
	if resp, _ := get(t, testClient(), base+"/fail", "svc", nil); resp.StatusCode != 500 {
		t.Fatalf("fail: %d", resp.StatusCode)
	}
	waitFor(t, "the failed request's span", func() bool { return z.count() >= 1 })
	waitFor(t, "the exporter's count", func() bool { return statValue(t, p, "tracing.zipkin.spans_sent") >= 1 })
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(z.spans) != 1 || z.spans[0].Tags["meshlens.tail_kept"] != "true" || z.spans[0].Tags["url.path"] != "/fail" || z.spans[0].Kind != "SERVER" {
		t.Errorf("store got %+v, want the failed request's tail-kept server span only", z.spans)
	}
}
