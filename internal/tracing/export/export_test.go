package export

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openzipkin/zipkin-go/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
	"github.com/meshlens/meshlens/internal/tracing/sampling"
	"github.com/meshlens/meshlens/internal/tracing/xrayschema"
)

type counter struct{ atomic.Uint64 }

func (c *counter) Add(n uint64) { c.Uint64.Add(n) }

type counters struct{ sent, dropped, failed counter }

func (c *counters) stats() Stats { return Stats{Sent: &c.sent, Dropped: &c.dropped, Failed: &c.failed} }

var t0 = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

// record makes one traced request through a real Tracer: a server span
// under a remote parent, a failed first attempt with a retry event, and a
// second attempt that succeeds. It returns the server's context.
func record(t *testing.T, exps ...tracing.Exporter) (server tracing.Request) {
	t.Helper()
	smp, err := sampling.New(sampling.Config{Percent: 100})
	if err != nil {
		t.Fatal(err)
	}
	tr := tracing.New(tracing.Config{
		Resource: tracing.Resource{ServiceName: "greeter", Mesh: "demo", VirtualNode: "greeter"},
		Sampler:  smp, Exporters: exps,
	})
	parent, _ := propagation.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	r := tr.Begin(parent, "greet", t0)
	s := r.Span
	s.SetHTTPRequest("GET", "/greet?name=x", "curl/8")
	s.SetHTTPRoute("/greet")
	s.SetServerAddress("greeter.demo.local", 8080)
	s.SetPeer(netip.MustParseAddrPort("10.1.2.3:40000"))
	s.SetVirtualService("greeter.demo.local")
	c1 := s.StartClient(1, t0.Add(time.Millisecond))
	c1.SetUpstreamCluster("cds_name")
	c1.SetPeer(netip.MustParseAddrPort("10.9.9.9:8080"))
	c1.SetStatusCode(503)
	c1.End(t0.Add(2 * time.Millisecond))
	s.AddEvent(tracing.EventRetry, t0.Add(2*time.Millisecond), tracing.Int(tracing.KeyAttempt, 2))
	c2 := s.StartClient(2, t0.Add(3*time.Millisecond))
	c2.SetStatusCode(200)
	c2.End(t0.Add(4 * time.Millisecond))
	s.SetRetryCount(1)
	s.SetStatusCode(200)
	s.End(t0.Add(5 * time.Millisecond))
	return r
}

func shutdown(t *testing.T, b interface{ Shutdown(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// traceServer is a real OTLP TraceService on loopback.
type traceServer struct {
	coltracepb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	reqs     []*coltracepb.ExportTraceServiceRequest
	failures int // answer Unavailable this many times first
	calls    int
	code     codes.Code // answer this error, when set
	rejected int64      // report this many spans rejected
}

func (s *traceServer) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.code != codes.OK {
		return nil, status.Error(s.code, "no")
	}
	if s.rejected > 0 {
		return &coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: s.rejected}}, nil
	}
	if s.failures > 0 {
		s.failures--
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	s.reqs = append(s.reqs, req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func startTraceServer(t *testing.T, ts *traceServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, ts)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = v.IntValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = v.BoolValue
		}
	}
	return m
}

// checkOTLP checks the three spans of record() as a collector got them.
func checkOTLP(t *testing.T, reqs []*coltracepb.ExportTraceServiceRequest, r tracing.Request) {
	t.Helper()
	var spans []*tracepb.Span
	for _, req := range reqs {
		for _, rs := range req.ResourceSpans {
			res := attrMap(rs.Resource.Attributes)
			if res["service.name"] != "greeter" || res["meshlens.mesh"] != "demo" || res["meshlens.virtual_node"] != "greeter" {
				t.Errorf("resource %v", res)
			}
			for _, ss := range rs.ScopeSpans {
				if ss.Scope.GetName() != ScopeName {
					t.Errorf("scope %q", ss.Scope.GetName())
				}
				spans = append(spans, ss.Spans...)
			}
		}
	}
	if len(spans) != 3 {
		t.Fatalf("got %d spans", len(spans))
	}
	c1, c2, srv := spans[0], spans[1], spans[2]
	if hex.EncodeToString(srv.TraceId) != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		hex.EncodeToString(srv.ParentSpanId) != "00f067aa0ba902b7" ||
		[8]byte(srv.SpanId) != r.Ctx.SpanID || srv.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("server span ids/kind: %v", srv)
	}
	if srv.Name != "GET /greet" || srv.StartTimeUnixNano != uint64(t0.UnixNano()) || srv.EndTimeUnixNano != uint64(t0.Add(5*time.Millisecond).UnixNano()) {
		t.Errorf("server name/times: %q %d %d", srv.Name, srv.StartTimeUnixNano, srv.EndTimeUnixNano)
	}
	a := attrMap(srv.Attributes)
	for k, v := range map[string]any{
		"http.request.method": "GET", "url.path": "/greet", "http.route": "/greet",
		"http.response.status_code": int64(200), "server.address": "greeter.demo.local", "server.port": int64(8080),
		"network.peer.address": "10.1.2.3", "network.peer.port": int64(40000), "user_agent.original": "curl/8",
		"meshlens.mesh": "demo", "meshlens.virtual_node": "greeter", "meshlens.virtual_service": "greeter.demo.local",
		"meshlens.route": "greet", "meshlens.retry_count": int64(1),
	} {
		if a[k] != v {
			t.Errorf("server %s = %v (%T), want %v", k, a[k], a[k], v)
		}
	}
	if len(srv.Events) != 1 || srv.Events[0].Name != "retry" || attrMap(srv.Events[0].Attributes)["meshlens.attempt"] != int64(2) {
		t.Errorf("events %v", srv.Events)
	}
	for i, c := range []*tracepb.Span{c1, c2} {
		if c.Kind != tracepb.Span_SPAN_KIND_CLIENT || !proto.Equal(&tracepb.Span{SpanId: c.ParentSpanId}, &tracepb.Span{SpanId: srv.SpanId}) ||
			attrMap(c.Attributes)["meshlens.attempt"] != int64(i+1) {
			t.Errorf("client %d: %v", i, c)
		}
	}
	if srv.Flags != 0x301 || c1.Flags != 0x101 {
		t.Errorf("flags: server %#x (want remote parent 0x301), client %#x (want 0x101)", srv.Flags, c1.Flags)
	}
	if c1.Status.Code != tracepb.Status_STATUS_CODE_ERROR || c2.Status.Code != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("client statuses %v %v", c1.Status, c2.Status)
	}
}

func TestOTLPGRPC(t *testing.T) {
	t.Parallel()
	ts := &traceServer{failures: 1} // the first export is retried
	addr := startTraceServer(t, ts)
	var c counters
	exp, err := NewOTLPGRPC(OTLPGRPCConfig{Endpoint: addr, Options: Options{
		FlushInterval: 10 * time.Millisecond, InitialBackoff: time.Millisecond, Stats: c.stats()}})
	if err != nil {
		t.Fatal(err)
	}
	r := record(t, exp)
	shutdown(t, exp)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	checkOTLP(t, ts.reqs, r)
	if c.sent.Load() != 3 || c.dropped.Load() != 0 || c.failed.Load() != 0 || ts.calls < 2 {
		t.Errorf("sent %d dropped %d failed %d calls %d", c.sent.Load(), c.dropped.Load(), c.failed.Load(), ts.calls)
	}
}

func TestOTLPHTTP(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var reqs []*coltracepb.ExportTraceServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("X-Tenant") != "t1" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		reqs = append(reqs, req)
		mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	defer srv.Close()
	var c counters
	exp, err := NewOTLPHTTP(OTLPHTTPConfig{URL: srv.URL + "/v1/traces", Headers: map[string]string{"X-Tenant": "t1"},
		Options: Options{FlushInterval: 10 * time.Millisecond, Stats: c.stats()}})
	if err != nil {
		t.Fatal(err)
	}
	r := record(t, exp)
	shutdown(t, exp)
	mu.Lock()
	defer mu.Unlock()
	checkOTLP(t, reqs, r)
	if c.sent.Load() != 3 {
		t.Errorf("sent %d failed %d", c.sent.Load(), c.failed.Load())
	}
}

func TestHTTPPermanentErrorNotRetried(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer srv.Close()
	var c counters
	exp, err := NewOTLPHTTP(OTLPHTTPConfig{URL: srv.URL + "/v1/traces", Options: Options{
		FlushInterval: 10 * time.Millisecond, InitialBackoff: time.Millisecond, Stats: c.stats()}})
	if err != nil {
		t.Fatal(err)
	}
	record(t, exp)
	shutdown(t, exp)
	if calls.Load() != 1 || c.failed.Load() != 3 || c.sent.Load() != 0 {
		t.Errorf("calls %d failed %d sent %d", calls.Load(), c.failed.Load(), c.sent.Load())
	}
}

func TestOTLPGRPCRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		ts           *traceServer
		calls        int
		sent, failed uint64
	}{
		{"invalid argument is not retried", &traceServer{code: codes.InvalidArgument}, 1, 0, 3},
		{"partial success counts the rejects", &traceServer{rejected: 1}, 1, 2, 1},
	}
	for _, tt := range tests {
		addr := startTraceServer(t, tt.ts)
		var c counters
		exp, err := NewOTLPGRPC(OTLPGRPCConfig{Endpoint: addr, Options: Options{
			FlushInterval: 10 * time.Millisecond, InitialBackoff: time.Millisecond, Stats: c.stats(),
			Logger: slog.New(slog.DiscardHandler)}})
		if err != nil {
			t.Fatal(err)
		}
		record(t, exp)
		shutdown(t, exp)
		tt.ts.mu.Lock()
		calls := tt.ts.calls
		tt.ts.mu.Unlock()
		if calls != tt.calls || c.sent.Load() != tt.sent || c.failed.Load() != tt.failed {
			t.Errorf("%s: calls %d sent %d failed %d", tt.name, calls, c.sent.Load(), c.failed.Load())
		}
	}
}

// logCount counts log records.
type logCount struct {
	slog.Handler
	n *atomic.Int32
}

func (h logCount) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h logCount) Enabled(context.Context, slog.Level) bool  { return true }

func TestFailureLogThrottled(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	b := newBatcher("test", nil, nil, Options{Logger: slog.New(logCount{n: &n})})
	defer shutdown(t, b)
	for range 5 {
		b.logFailure(1, 1, io.EOF)
	}
	if n.Load() != 1 {
		t.Fatalf("%d log lines for 5 failures within a minute", n.Load())
	}
}

func TestXRayStatusFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code                    int
		errorF, throttle, fault bool
	}{
		{200, false, false, false},
		{404, true, false, false},
		{429, true, true, false},
		{503, false, false, true},
	}
	for _, tt := range tests {
		d := tracing.SpanData{Kind: tracing.KindServer, HTTP: tracing.HTTP{Method: "GET", StatusCode: tt.code}}
		s := XRaySegment(&d)
		if s.Error != tt.errorF || s.Throttle != tt.throttle || s.Fault != tt.fault {
			t.Errorf("%d: error %v throttle %v fault %v", tt.code, s.Error, s.Throttle, s.Fault)
		}
	}
}

func TestZipkin(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/spans" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	var c counters
	exp, err := NewZipkin(ZipkinConfig{URL: srv.URL + "/api/v2/spans", Options: Options{FlushInterval: 10 * time.Millisecond, Stats: c.stats()}})
	if err != nil {
		t.Fatal(err)
	}
	r := record(t, exp)
	shutdown(t, exp)
	mu.Lock()
	defer mu.Unlock()
	var raw []map[string]any
	var spans []model.SpanModel
	for _, b := range bodies {
		var rs []map[string]any
		var ms []model.SpanModel
		if err := json.Unmarshal(b, &rs); err != nil {
			t.Fatalf("not a JSON array: %v: %s", err, b)
		}
		if err := json.Unmarshal(b, &ms); err != nil {
			t.Fatalf("not Zipkin v2 spans: %v", err)
		}
		raw, spans = append(raw, rs...), append(spans, ms...)
	}
	if len(raw) != 3 || c.sent.Load() != 3 {
		t.Fatalf("got %d spans, sent %d", len(raw), c.sent.Load())
	}
	srvRaw, c1Raw := raw[2], raw[0]
	// The v2 wire form: lower-hex ids, microsecond timestamps.
	want := map[string]any{
		"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "parentId": "00f067aa0ba902b7",
		"id": hex.EncodeToString(r.Ctx.SpanID[:]), "kind": "SERVER", "name": "get /greet", // Zipkin lower-cases names
		"timestamp": float64(t0.UnixMicro()), "duration": float64(5000),
	}
	for k, v := range want {
		if srvRaw[k] != v {
			t.Errorf("server %s = %v, want %v", k, srvRaw[k], v)
		}
	}
	if ep, _ := srvRaw["localEndpoint"].(map[string]any); ep["serviceName"] != "greeter" {
		t.Errorf("localEndpoint %v", srvRaw["localEndpoint"])
	}
	if ep, _ := srvRaw["remoteEndpoint"].(map[string]any); ep["ipv4"] != "10.1.2.3" || ep["port"] != float64(40000) {
		t.Errorf("remoteEndpoint %v", srvRaw["remoteEndpoint"])
	}
	tags, _ := srvRaw["tags"].(map[string]any)
	if tags["http.route"] != "/greet" || tags["meshlens.route"] != "greet" || tags["meshlens.retry_count"] != "1" {
		t.Errorf("tags %v", tags)
	}
	if c1Raw["kind"] != "CLIENT" || c1Raw["parentId"] != hex.EncodeToString(r.Ctx.SpanID[:]) {
		t.Errorf("client %v", c1Raw)
	}
	if tags1, _ := c1Raw["tags"].(map[string]any); tags1["error"] != "true" || tags1["meshlens.attempt"] != "1" {
		t.Errorf("client tags %v", c1Raw["tags"])
	}
	if ann := spans[2].Annotations; len(ann) != 1 || ann[0].Value != "retry meshlens.attempt=2" {
		t.Errorf("annotations %v", ann)
	}
}

func TestXRay(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var c counters
	exp, err := NewXRay(XRayConfig{Address: pc.LocalAddr().String(), Options: Options{FlushInterval: 10 * time.Millisecond, Stats: c.stats()}})
	if err != nil {
		t.Fatal(err)
	}
	r := record(t, exp)
	shutdown(t, exp)
	var docs []map[string]any
	buf := make([]byte, 65536)
	for len(docs) < 3 {
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read: %v (got %d documents)", err, len(docs))
		}
		doc, err := xrayschema.Datagram(buf[:n])
		if err != nil {
			t.Errorf("segment document %s: %v", buf[:n], err)
		}
		docs = append(docs, doc)
	}
	if c.sent.Load() != 3 {
		t.Errorf("sent %d", c.sent.Load())
	}
	c1, seg := docs[0], docs[2]
	wantTrace := "1-4bf92f35-77b34da6a3ce929d0e0e4736"
	if seg["trace_id"] != wantTrace || seg["parent_id"] != "00f067aa0ba902b7" || seg["id"] != hex.EncodeToString(r.Ctx.SpanID[:]) ||
		seg["name"] != "demo/greeter" || seg["origin"] != "AWS::AppMesh::Proxy" || seg["type"] != nil {
		t.Errorf("segment %v", seg)
	}
	h := seg["http"].(map[string]any)
	req := h["request"].(map[string]any)
	if req["method"] != "GET" || req["url"] != "http://greeter.demo.local:8080/greet" && req["url"] != "http://greeter.demo.local/greet" || req["client_ip"] != "10.1.2.3" || req["user_agent"] != "curl/8" {
		t.Errorf("http.request %v", req)
	}
	if h["response"].(map[string]any)["status"] != float64(200) {
		t.Errorf("http.response %v", h["response"])
	}
	am := seg["aws"].(map[string]any)["app_mesh"].(map[string]any)
	if am["mesh_name"] != "demo" || am["virtual_node_name"] != "greeter" {
		t.Errorf("aws.app_mesh %v", am)
	}
	ann := seg["annotations"].(map[string]any)
	if ann["meshlens_route"] != "greet" || ann["meshlens_retry_count"] != float64(1) || ann["meshlens_virtual_service"] != "greeter.demo.local" {
		t.Errorf("annotations %v", ann)
	}
	if c1["type"] != "subsegment" || c1["parent_id"] != seg["id"] || c1["trace_id"] != wantTrace || c1["namespace"] != "remote" ||
		c1["name"] != "greeter.demo.local" || c1["fault"] != true {
		t.Errorf("subsegment %v", c1)
	}
}

// TestCollectorDown: with nothing listening, Export never blocks, a full
// queue drops and counts, and what was queued is counted as failed.
func TestCollectorDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	opts := func(c *counters) Options {
		return Options{QueueSize: 8, BatchSize: 4, FlushInterval: time.Millisecond, MaxRetries: 2,
			InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Timeout: time.Second, Stats: c.stats(),
			Logger: slog.New(slog.DiscardHandler)}
	}
	var cg, ch, cz counters
	g, err := NewOTLPGRPC(OTLPGRPCConfig{Endpoint: closed, Options: opts(&cg)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewOTLPHTTP(OTLPHTTPConfig{URL: "http://" + closed + "/v1/traces", Options: opts(&ch)})
	if err != nil {
		t.Fatal(err)
	}
	z, err := NewZipkin(ZipkinConfig{URL: "http://" + closed + "/api/v2/spans", Options: opts(&cz)})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	d := tracing.SpanData{Kind: tracing.KindServer, TraceID: [16]byte{1}, SpanID: [8]byte{2}, Start: t0, End: t0}
	for range n {
		g.Export(d)
		h.Export(d)
		z.Export(d)
	}
	for _, b := range []interface{ Shutdown(context.Context) error }{g, h, z} {
		shutdown(t, b)
	}
	for name, c := range map[string]*counters{"otlp-grpc": &cg, "otlp-http": &ch, "zipkin": &cz} {
		if c.sent.Load() != 0 || c.dropped.Load() == 0 || c.failed.Load() == 0 || c.dropped.Load()+c.failed.Load() != n {
			t.Errorf("%s: sent %d dropped %d failed %d, want dropped+failed = %d", name, c.sent.Load(), c.dropped.Load(), c.failed.Load(), n)
		}
	}
}

// TestShutdownAbandonsRetries: a collector that never recovers does not
// hold Shutdown past its context.
func TestShutdownAbandonsRetries(t *testing.T) {
	t.Parallel()
	ts := &traceServer{failures: 1 << 30}
	addr := startTraceServer(t, ts)
	var c counters
	exp, err := NewOTLPGRPC(OTLPGRPCConfig{Endpoint: addr, Options: Options{
		FlushInterval: time.Millisecond, MaxRetries: 1000, InitialBackoff: time.Hour, MaxBackoff: time.Hour, Stats: c.stats()}})
	if err != nil {
		t.Fatal(err)
	}
	exp.Export(tracing.SpanData{TraceID: [16]byte{1}, SpanID: [8]byte{1}})
	// Wait until the first try has failed, so the worker is in its backoff.
	for {
		ts.mu.Lock()
		calls := ts.calls
		ts.mu.Unlock()
		if calls > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := exp.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v", err)
	}
	if c.failed.Load() != 1 {
		t.Errorf("failed %d", c.failed.Load())
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	if _, err := NewOTLPGRPC(OTLPGRPCConfig{}); err == nil || err.Error() != "otlp grpc exporter: endpoint: empty" {
		t.Errorf("grpc: %v", err)
	}
	if _, err := NewOTLPHTTP(OTLPHTTPConfig{URL: "collector:4318"}); err == nil || err.Error() != `otlp http exporter: url "collector:4318": not an http(s) URL` {
		t.Errorf("http: %v", err)
	}
	if _, err := NewZipkin(ZipkinConfig{}); err == nil || err.Error() != "zipkin exporter: url: empty" {
		t.Errorf("zipkin: %v", err)
	}
	if _, err := NewXRay(XRayConfig{Address: "no-port"}); err == nil {
		t.Error("xray: no error")
	}
}

// TestExportAllocatesNothing: queueing a span costs the request path no
// allocation of its own (the span is copied into the queue by value; the
// queue's slice grows by doubling, so its few growths round to none per
// span).
func TestExportAllocatesNothing(t *testing.T) {
	discard := func(context.Context, []tracing.SpanData) (int, error) { return 0, nil }
	b := newBatcher("test", discard, nil, Options{QueueSize: 4096, BatchSize: 4096, FlushInterval: time.Hour})
	defer shutdown(t, b)
	d := tracing.SpanData{Kind: tracing.KindServer, TraceID: [16]byte{1}, SpanID: [8]byte{2}, Name: "x"}
	if n := testing.AllocsPerRun(1000, func() { b.Export(d) }); n != 0 {
		t.Fatalf("Export: %v allocs", n)
	}
}

// TestNewBatcherHoldsNoQueue: a batcher allocates its queue as spans
// arrive, not at its full size when made (a channel of QueueSize spans
// was about 1 MB held by every idle sidecar with tracing on), and lets a
// batch's slice go after a flush of few spans.
func TestNewBatcherHoldsNoQueue(t *testing.T) {
	sent := make(chan int, 10)
	send := func(_ context.Context, batch []tracing.SpanData) (int, error) { sent <- len(batch); return 0, nil }
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b := newBatcher("test", send, nil, Options{FlushInterval: 10 * time.Millisecond})
	runtime.ReadMemStats(&after)
	defer shutdown(t, b)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Errorf("newBatcher allocated %d bytes; want the queue allocated as spans arrive", grew)
	}
	b.Export(tracing.SpanData{Name: "a"})
	b.Export(tracing.SpanData{Name: "b"})
	if n := <-sent; n != 2 {
		t.Fatalf("sent %d spans, want 2", n)
	}
	// The next flush finds nothing: the queue is the empty spare, or
	// nil once a flush of few spans let its slice go.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		c := cap(b.pending)
		b.mu.Unlock()
		if c == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle batcher still holds a queue of capacity %d", c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBatchesNoLargerThanBatchSize: spans that piled up while a send was
// under way go out in batches of at most BatchSize.
func TestBatchesNoLargerThanBatchSize(t *testing.T) {
	release := make(chan struct{})
	sizes := make(chan int, 100)
	send := func(_ context.Context, batch []tracing.SpanData) (int, error) {
		sizes <- len(batch)
		<-release
		return 0, nil
	}
	b := newBatcher("test", send, nil, Options{QueueSize: 100, BatchSize: 4, FlushInterval: time.Hour})
	for range 4 {
		b.Export(tracing.SpanData{Name: "first"})
	}
	if n := <-sizes; n != 4 {
		t.Fatalf("first batch %d spans, want 4", n)
	}
	for range 10 { // queued while the first batch is being sent
		b.Export(tracing.SpanData{Name: "more"})
	}
	close(release)
	shutdown(t, b)
	close(sizes)
	total := 0
	for n := range sizes {
		if n > 4 {
			t.Errorf("batch of %d spans, want at most 4", n)
		}
		total += n
	}
	if total != 10 {
		t.Errorf("sent %d more spans, want 10", total)
	}
}

func BenchmarkExport(b *testing.B) {
	discard := func(context.Context, []tracing.SpanData) (int, error) { return 0, nil }
	var c counters
	bt := newBatcher("bench", discard, nil, Options{Stats: c.stats()})
	defer bt.Shutdown(context.Background())
	d := tracing.SpanData{Kind: tracing.KindServer, TraceID: [16]byte{1}, SpanID: [8]byte{2}, Name: "x"}
	b.ReportAllocs()
	for b.Loop() {
		bt.Export(d)
	}
}
