package tracing

import (
	"net/http"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

// BenchmarkUnsampledRequest is what tracing costs a request that is not
// sampled: extract, decide, tail check.
func BenchmarkUnsampledRequest(b *testing.B) {
	tr := allocsTracer(0)
	h := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}}
	b.ReportAllocs()
	for b.Loop() {
		sc, _ := propagation.Extract(h)
		r := tr.Begin(sc, "r", t0)
		r.Span.SetHTTPRequest("GET", "/", "")
		r.Span.End(t0)
		_ = tr.KeepTail(200, -1, time.Millisecond)
	}
}

// BenchmarkSampledRequest records a server span and one client span.
func BenchmarkSampledRequest(b *testing.B) {
	tr := allocsTracer(100)
	b.ReportAllocs()
	for b.Loop() {
		r := tr.Begin(propagation.SpanContext{}, "r", t0)
		r.Span.SetHTTPRequest("GET", "/", "ua")
		c := r.Span.StartClient(1, t0)
		c.SetStatusCode(200)
		c.End(t0)
		r.Span.SetStatusCode(200)
		r.Span.End(t0)
	}
}

// BenchmarkSampledSpanWithEvent records a server span with one extra
// attribute and one event: the export copies those two slices.
func BenchmarkSampledSpanWithEvent(b *testing.B) {
	tr := allocsTracer(100)
	b.ReportAllocs()
	for b.Loop() {
		r := tr.Begin(propagation.SpanContext{}, "r", t0)
		r.Span.SetAttr(String("k", "v"))
		r.Span.AddEvent(EventRetry, t0, Int(KeyAttempt, 2))
		r.Span.End(t0)
	}
}
