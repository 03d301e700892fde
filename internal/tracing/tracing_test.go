package tracing

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/tracing/propagation"
	"github.com/meshlens/meshlens/internal/tracing/sampling"
)

// collect is an Exporter that keeps what it gets.
type collect struct {
	mu    sync.Mutex
	spans []SpanData
}

func (c *collect) Export(d SpanData) {
	c.mu.Lock()
	c.spans = append(c.spans, d)
	c.mu.Unlock()
}

func newTracer(t testing.TB, pct float64, tail sampling.Tail) (*Tracer, *collect, *collect) {
	t.Helper()
	s, err := sampling.New(sampling.Config{Percent: pct, Tail: tail})
	if err != nil {
		t.Fatal(err)
	}
	exp, store := &collect{}, &collect{}
	tr := New(Config{
		Resource: Resource{ServiceName: "greeter", Mesh: "demo", VirtualNode: "greeter"},
		Sampler:  s, Exporters: []Exporter{exp}, Store: store, MaxExtraAttrs: 2, MaxEvents: 1,
	})
	return tr, exp, store
}

var t0 = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

func TestServerAndClientSpans(t *testing.T) {
	t.Parallel()
	tr, exp, store := newTracer(t, 100, sampling.Tail{})
	parent, ok := propagation.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if !ok {
		t.Fatal("parse")
	}
	r := tr.Begin(parent, "r1", t0)
	if r.Span == nil || r.Ctx.TraceID != parent.TraceID || r.Parent != parent.SpanID || r.Ctx.SpanID == parent.SpanID {
		t.Fatalf("Begin = %+v", r)
	}
	s := r.Span
	s.SetHTTPRequest("GET", "/hello?x=1", "curl/8")
	s.SetHTTPRoute("/hello")
	s.SetServerAddress("greeter.demo.local", 8080)
	s.SetPeer(netip.MustParseAddrPort("10.0.0.1:5555"))
	s.SetVirtualService("greeter.demo.local")
	s.SetUpstreamCluster("cds_greeter")
	s.SetAttr(String("a", "1"))
	s.SetAttr(Int("b", 2))
	s.SetAttr(Bool("c", true)) // over MaxExtraAttrs
	c1 := s.StartClient(1, t0.Add(time.Millisecond))
	c1.SetStatusCode(503)
	c1.SetResponseFlags("UF")
	c1ctx := c1.Context()
	c1.End(t0.Add(2 * time.Millisecond))
	s.AddEvent(EventRetry, t0.Add(2*time.Millisecond), Int(KeyAttempt, 2))
	s.AddEvent(EventTimeout, t0.Add(2*time.Millisecond)) // over MaxEvents
	c2 := s.StartClient(2, t0.Add(3*time.Millisecond))
	if c2.Context().SpanID == c1ctx.SpanID {
		t.Fatal("retry reused the span id")
	}
	c2.SetStatusCode(200)
	c2.End(t0.Add(4 * time.Millisecond))
	s.SetRetryCount(1)
	s.SetStatusCode(200)
	s.End(t0.Add(5 * time.Millisecond))

	if len(exp.spans) != 3 || len(store.spans) != 3 {
		t.Fatalf("exported %d, stored %d", len(exp.spans), len(store.spans))
	}
	first, second, server := exp.spans[0], exp.spans[1], exp.spans[2]
	if server.Kind != KindServer || server.ParentID != parent.SpanID || server.TraceID != parent.TraceID {
		t.Errorf("server span ids: %+v", server)
	}
	for i, c := range []SpanData{first, second} {
		if c.Kind != KindClient || c.ParentID != server.SpanID || c.TraceID != server.TraceID || c.Mesh.Attempt != i+1 {
			t.Errorf("client %d: kind %v parent %x attempt %d", i, c.Kind, c.ParentID, c.Mesh.Attempt)
		}
	}
	if first.Status != StatusError || second.Status != StatusUnset || server.Status != StatusUnset {
		t.Errorf("statuses %v %v %v", first.Status, second.Status, server.Status)
	}
	if server.DisplayName() != "GET /hello" || server.HTTP.Path != "/hello" {
		t.Errorf("name %q path %q", server.DisplayName(), server.HTTP.Path)
	}
	if len(server.Extra) != 2 || server.DroppedAttrs != 1 || len(server.Events) != 1 || server.DroppedEvents != 1 {
		t.Errorf("extras %v dropped %d events %v dropped %d", server.Extra, server.DroppedAttrs, server.Events, server.DroppedEvents)
	}
	if ev := server.Events[0]; ev.Name != EventRetry || len(ev.Attrs()) != 1 || ev.Attrs()[0].Int != 2 {
		t.Errorf("event %+v", ev)
	}
	got := map[string]string{}
	for _, a := range server.Attributes(nil) {
		got[a.Key] = a.Value()
	}
	want := map[string]string{
		KeyHTTPRequestMethod: "GET", KeyURLPath: "/hello", KeyHTTPRoute: "/hello",
		KeyHTTPResponseStatusCode: "200", KeyServerAddress: "greeter.demo.local", KeyServerPort: "8080",
		KeyNetworkPeerAddress: "10.0.0.1", KeyNetworkPeerPort: "5555", KeyUserAgentOriginal: "curl/8",
		KeyMesh: "demo", KeyVirtualNode: "greeter", KeyVirtualService: "greeter.demo.local",
		KeyRoute: "r1", KeyUpstreamCluster: "cds_greeter", KeyRetryCount: "1", "a": "1", "b": "2",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("attributes %v, want %v", got, want)
	}
	fa := map[string]string{}
	for _, a := range first.Attributes(nil) {
		fa[a.Key] = a.Value()
	}
	if fa[KeyAttempt] != "1" || fa[KeyResponseFlags] != "UF" || fa[KeyHTTPResponseStatusCode] != "503" {
		t.Errorf("client attributes %v", fa)
	}
}

func TestGRPCStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind Kind
		code int
		want Status
	}{
		{KindServer, 0, StatusUnset},
		{KindServer, 5, StatusUnset},
		{KindServer, 14, StatusError},
		{KindClient, 5, StatusError},
	}
	for _, tt := range tests {
		d := SpanData{Kind: tt.kind, HTTP: HTTP{Method: "POST", StatusCode: 200}, RPC: RPC{Service: "s", Method: "m", GRPCStatus: tt.code, HasGRPCStatus: true}}
		if got := derivedStatus(&d); got != tt.want {
			t.Errorf("%v grpc %d: %v", tt.kind, tt.code, got)
		}
		if d.DisplayName() != "s/m" {
			t.Errorf("name %q", d.DisplayName())
		}
	}
}

func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind Kind
		code int
		want Status
	}{
		{KindServer, 200, StatusUnset},
		{KindServer, 404, StatusUnset},
		{KindServer, 503, StatusError},
		{KindServer, 0, StatusError}, // no response
		{KindClient, 404, StatusError},
		{KindClient, 302, StatusUnset},
		{KindClient, 0, StatusError},
	}
	for _, tt := range tests {
		d := SpanData{Kind: tt.kind, HTTP: HTTP{Method: "GET", StatusCode: tt.code}}
		if got := derivedStatus(&d); got != tt.want {
			t.Errorf("%v %d: %v, want %v", tt.kind, tt.code, got, tt.want)
		}
	}
}

func TestUnsampledAndNil(t *testing.T) {
	t.Parallel()
	tr, exp, store := newTracer(t, 0, sampling.Tail{})
	r := tr.Begin(propagation.SpanContext{}, "", t0)
	if r.Span != nil || r.Ctx.Sampled || !r.Ctx.SampledKnown || !r.Ctx.IsValid() {
		t.Fatalf("unsampled fresh request: %+v", r)
	}
	if secs := uint32(r.Ctx.TraceID[0])<<24 | uint32(r.Ctx.TraceID[1])<<16 | uint32(r.Ctx.TraceID[2])<<8 | uint32(r.Ctx.TraceID[3]); int64(secs) != t0.Unix() {
		t.Errorf("trace id %x does not start with the epoch seconds of %v (X-Ray)", r.Ctx.TraceID, t0)
	}
	// Every method of a nil span is a no-op.
	var s *Span
	s.SetHTTPRequest("GET", "/", "")
	s.SetAttr(String("k", "v"))
	s.AddEvent(EventOverflow, t0)
	s.SetError("x")
	if c := s.StartClient(1, t0); c != nil {
		t.Fatal("child of nil span")
	}
	s.End(t0)
	if s.Context().IsValid() || s.Recording() {
		t.Fatal("nil span has a context")
	}
	// An incoming sampled=1 beats 0%.
	r = tr.Begin(propagation.SpanContext{TraceID: [16]byte{1}, SpanID: [8]byte{2}, Sampled: true, SampledKnown: true}, "", t0)
	if r.Span == nil {
		t.Fatal("incoming sampled=1 not honoured")
	}
	r.Span.End(t0)
	// A nil tracer traces nothing and passes the context on.
	var nt *Tracer
	in := propagation.SpanContext{SampledKnown: true}
	if r := nt.Begin(in, "", t0); r.Span != nil || r.Ctx != in {
		t.Fatal("nil tracer")
	}
	if nt.KeepTail(500, -1, time.Hour) || nt.Materialize(&Request{}) != nil {
		t.Fatal("nil tracer keeps")
	}
	if len(exp.spans) != 1 || len(store.spans) != 1 {
		t.Fatalf("exported %d stored %d", len(exp.spans), len(store.spans))
	}
}

func TestTailKeptGoesToStoreOnly(t *testing.T) {
	t.Parallel()
	tr, exp, store := newTracer(t, 0, sampling.Tail{Errors: true, Latency: time.Second})
	parent := propagation.SpanContext{TraceID: [16]byte{9}, SpanID: [8]byte{8}, SampledKnown: true}
	ok := tr.Begin(parent, "r", t0)
	if ok.Span != nil || tr.KeepTail(200, -1, time.Millisecond) {
		t.Fatal("fast 200 kept")
	}
	slow := tr.Begin(parent, "r", t0)
	if !tr.KeepTail(200, -1, 2*time.Second) {
		t.Fatal("slow request not kept")
	}
	s := tr.Materialize(&slow)
	s.SetHTTPRequest("GET", "/slow", "")
	s.SetStatusCode(200)
	s.End(t0.Add(2 * time.Second))
	failed := tr.Begin(parent, "r", t0)
	if !tr.KeepTail(503, -1, time.Millisecond) {
		t.Fatal("503 not kept")
	}
	tr.Materialize(&failed)
	failed.Span.SetStatusCode(503)
	failed.Span.End(t0.Add(time.Millisecond))
	if len(exp.spans) != 0 {
		t.Fatalf("collectors got tail-kept spans: %d", len(exp.spans))
	}
	if len(store.spans) != 2 {
		t.Fatalf("store got %d", len(store.spans))
	}
	d := store.spans[0]
	if !d.TailKept || d.TraceID != parent.TraceID || d.ParentID != parent.SpanID || d.SpanID != slow.Ctx.SpanID || d.Start != t0 {
		t.Errorf("tail-kept span %+v", d)
	}
	if store.spans[1].Status != StatusError {
		t.Errorf("503 status %v", store.spans[1].Status)
	}
	// Without a store, nothing is kept.
	noStore := New(Config{})
	if noStore.KeepTail(503, -1, time.Hour) {
		t.Fatal("kept without a store")
	}
}

// TestSpanReuseIsolated: a span's data, once exported, is not changed by
// the pooled Span's next use.
func TestSpanReuseIsolated(t *testing.T) {
	t.Parallel()
	tr, exp, _ := newTracer(t, 100, sampling.Tail{})
	for i := range 3 {
		s := tr.StartServer(propagation.SpanContext{}, "", t0)
		s.SetAttr(Int("i", int64(i)))
		s.AddEvent(EventRetry, t0, Int("i", int64(i)))
		s.End(t0)
	}
	for i, d := range exp.spans {
		if len(d.Extra) != 1 || d.Extra[0].Int != int64(i) || d.Events[0].Attrs()[0].Int != int64(i) {
			t.Errorf("span %d: %+v %+v", i, d.Extra, d.Events)
		}
	}
}

type discard struct{}

func (discard) Export(SpanData) {}

func allocsTracer(pct float64) *Tracer {
	s, _ := sampling.New(sampling.Config{Percent: pct, Tail: sampling.Tail{Errors: true, Latency: time.Second}})
	return New(Config{Sampler: s, Exporters: []Exporter{discard{}}, Store: discard{}})
}

// TestUnsampledAllocatesNothing: extract + decide + tail check for an
// unsampled request cost no allocation.
func TestUnsampledAllocatesNothing(t *testing.T) {
	tr := allocsTracer(0)
	h := map[string][]string{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}}
	n := testing.AllocsPerRun(200, func() {
		sc, _ := propagation.Extract(httpHeader(h))
		r := tr.Begin(sc, "r", t0)
		r.Span.SetHTTPRequest("GET", "/", "")
		r.Span.End(t0)
		_ = tr.KeepTail(200, -1, time.Millisecond)
	})
	if n != 0 {
		t.Fatalf("unsampled request: %v allocs", n)
	}
}

// TestSampledSpanAllocs: a sampled request's server and client spans
// allocate nothing beyond the export copy of extras and events.
func TestSampledSpanAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	tr := allocsTracer(100)
	n := testing.AllocsPerRun(200, func() {
		r := tr.Begin(propagation.SpanContext{}, "r", t0)
		r.Span.SetHTTPRequest("GET", "/", "ua")
		c := r.Span.StartClient(1, t0)
		c.SetStatusCode(200)
		c.End(t0)
		r.Span.SetStatusCode(200)
		r.Span.End(t0)
	})
	if n != 0 {
		t.Fatalf("sampled request without extras: %v allocs", n)
	}
	n = testing.AllocsPerRun(200, func() {
		r := tr.Begin(propagation.SpanContext{}, "r", t0)
		r.Span.SetAttr(String("k", "v"))
		r.Span.AddEvent(EventRetry, t0)
		r.Span.End(t0)
	})
	if n != 2 {
		t.Fatalf("sampled span with an extra and an event: %v allocs, want 2 (the export copies)", n)
	}
}

type httpHeader map[string][]string

func (h httpHeader) Get(k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}
