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

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// zipkinSpan is what the test collector reads of a Zipkin v2 span.
type zipkinSpan struct {
	TraceID  string            `json:"traceId"`
	ID       string            `json:"id"`
	ParentID string            `json:"parentId"`
	Kind     string            `json:"kind"`
	Name     string            `json:"name"`
	Tags     map[string]string `json:"tags"`
	Local    struct {
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

// TestTracingSpansAndPropagation: a traced request continues the trace
// that arrived (b3), makes a server span and a client span per attempt
// (a retry is a span of its own with its attempt number), writes the
// attempt's context upstream in W3C and B3, prints the ids in the access
// log and counts the spans sent.
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
	x.clusters = append(x.clusters, xCluster("cds_up", up.Addr()), xCluster("cds_zipkin", strings.TrimPrefix(z.srv.URL, "http://")))
	mustApply(t, p, x.snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)

	const trace, parent = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
	resp, body := get(t, testClient(), base+"/api/x", "svc", map[string]string{"b3": trace + "-" + parent + "-1", "x-tenant": "acme"})
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	waitFor(t, "3 spans of the trace", func() bool { return len(z.trace(trace)) >= 3 })
	spans := z.trace(trace)
	var server zipkinSpan
	var clients []zipkinSpan
	for _, s := range spans {
		switch s.Kind {
		case "SERVER":
			server = s
		case "CLIENT":
			clients = append(clients, s)
		}
	}
	if server.ParentID != parent || server.Local.ServiceName != "m/web" || server.Tags["meshlens.route"] != "r/api" ||
		server.Tags["meshlens.retry_count"] != "1" || server.Tags["meshlens.upstream_cluster"] != "cds_up" ||
		server.Tags["team"] != "payments" || server.Tags["tenant"] != "acme" || server.Tags["http.response.status_code"] != "200" {
		t.Errorf("server span %+v", server)
	}
	if len(clients) != 2 {
		t.Fatalf("client spans %+v, want 2", clients)
	}
	attempts := map[string]zipkinSpan{}
	for _, c := range clients {
		if c.ParentID != server.ID {
			t.Errorf("client span %+v is not a child of the server span %s", c, server.ID)
		}
		attempts[c.Tags["meshlens.attempt"]] = c
	}
	if attempts["1"].Tags["http.response.status_code"] != "503" || attempts["2"].Tags["http.response.status_code"] != "200" {
		t.Errorf("attempts %+v", attempts)
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
		return strings.Contains(string(b), trace+" "+server.ID)
	})
	waitFor(t, "spans_sent", func() bool { return statValue(t, p, "tracing.zipkin.spans_sent") >= 3 })

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
