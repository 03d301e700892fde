package tracestore

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

var testNow = time.Unix(0, int64(base)).Add(time.Hour)

func TestEvictionUnderSpanCap(t *testing.T) {
	t.Parallel()
	s := New(Options{MaxSpans: 3, Now: func() time.Time { return testNow }})
	s.Add([]*tracepb.ResourceSpans{resource("old", span(1, 1, 0, "a", tracepb.Span_SPAN_KIND_SERVER, 0, 10))})
	s.Add([]*tracepb.ResourceSpans{resource("mid", span(2, 2, 0, "b", tracepb.Span_SPAN_KIND_SERVER, 1, 10), span(2, 3, 2, "c", tracepb.Span_SPAN_KIND_CLIENT, 2, 5))})
	if got := s.Services(); len(got) != 2 {
		t.Fatalf("services before eviction = %v", got)
	}
	s.Add([]*tracepb.ResourceSpans{resource("new", span(3, 4, 0, "d", tracepb.Span_SPAN_KIND_SERVER, 3, 10))})
	st := s.Stats()
	if st.Spans != 3 || st.Evicted != 1 || st.Traces != 2 || st.Received != 4 {
		t.Fatalf("stats = %+v, want 3 spans, 1 evicted, 2 traces, 4 received", st)
	}
	if got := s.Services(); len(got) != 2 || got[0] != "mid" || got[1] != "new" {
		t.Fatalf("services = %v, want [mid new]: the oldest span's service goes with it", got)
	}
	if s.Trace(traceID(tid(1))) != nil {
		t.Fatal("trace 1 is still there after its only span was evicted")
	}
	if ops := s.Operations("old", ""); len(ops) != 0 {
		t.Fatalf("operations of an evicted service = %v", ops)
	}
	// One more evicts the first span of trace 2 only.
	s.Add([]*tracepb.ResourceSpans{resource("new", span(3, 5, 4, "e", tracepb.Span_SPAN_KIND_CLIENT, 4, 1))})
	tr := s.Trace(traceID(tid(2)))
	if tr == nil || len(tr.Spans) != 1 || tr.Spans[0].SpanID != "0000000000000003" {
		t.Fatalf("trace 2 = %+v, want only span 3 left", tr)
	}
	if ops := s.Operations("mid", ""); len(ops) != 1 || ops[0].Name != "c" {
		t.Fatalf("operations of mid = %v, want only c", ops)
	}
}

func TestEvictionUnderByteCap(t *testing.T) {
	t.Parallel()
	sp := span(1, 1, 0, "a", tracepb.Span_SPAN_KIND_SERVER, 0, 10)
	one := int64(len(mustMarshal(t, sp))) + spanOverhead
	s := New(Options{MaxBytes: 2*one + one/2})
	for i := range uint64(5) {
		s.Add([]*tracepb.ResourceSpans{resource("svc", span(1, i+1, 0, "a", tracepb.Span_SPAN_KIND_SERVER, i, 10))})
	}
	st := s.Stats()
	if st.Spans != 2 || st.Bytes > st.MaxBytes || st.Evicted != 3 {
		t.Fatalf("stats = %+v, want 2 spans within %d bytes, 3 evicted", st, st.MaxBytes)
	}
	tr := s.Trace(traceID(tid(1)))
	if tr == nil || len(tr.Spans) != 2 || tr.Spans[0].SpanID != "0000000000000004" || tr.Spans[1].SpanID != "0000000000000005" {
		t.Fatalf("trace = %+v, want the two newest spans", tr)
	}
	// A span larger than the whole budget is refused, not stored.
	big := New(Options{MaxBytes: 10})
	n, why := big.Add([]*tracepb.ResourceSpans{resource("svc", sp)})
	if n != 1 || why == "" || big.Stats().Spans != 0 {
		t.Fatalf("oversized span: rejected %d (%q), kept %d", n, why, big.Stats().Spans)
	}
}

func TestRejectsBadIDsAndIgnoresDuplicates(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	bad := span(1, 1, 0, "a", tracepb.Span_SPAN_KIND_SERVER, 0, 10)
	bad.TraceId = bad.TraceId[:8]
	zero := span(1, 1, 0, "a", tracepb.Span_SPAN_KIND_SERVER, 0, 10)
	zero.SpanId = make([]byte, 8)
	good := span(1, 2, 0, "a", tracepb.Span_SPAN_KIND_SERVER, 0, 10)
	n, why := s.Add([]*tracepb.ResourceSpans{resource("svc", bad, zero, good, good)})
	if n != 2 || why == "" {
		t.Fatalf("rejected %d (%q), want 2 with a reason", n, why)
	}
	if st := s.Stats(); st.Spans != 1 || st.DuplicateSpans != 1 {
		t.Fatalf("stats = %+v, want 1 span kept and 1 duplicate", st)
	}
}

func TestFind(t *testing.T) {
	t.Parallel()
	s := New(Options{Now: func() time.Time { return testNow }})
	errSpan := span(2, 21, 0, "GET /fail", tracepb.Span_SPAN_KIND_SERVER, 1000, 900_000, i64("http.response.status_code", 503))
	errSpan.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "upstream reset"}
	s.Add([]*tracepb.ResourceSpans{
		resource("gateway",
			span(1, 11, 0, "GET /hello", tracepb.Span_SPAN_KIND_SERVER, 0, 2000, str("meshlens.route", "hello")),
			errSpan,
			span(3, 31, 0, "GET /hello", tracepb.Span_SPAN_KIND_SERVER, 2000, 50_000)),
		resource("greeter", span(1, 12, 11, "greet", tracepb.Span_SPAN_KIND_SERVER, 100, 1500)),
	})
	ids := func(ts []*Trace) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.TraceID)
		}
		return out
	}
	t1, t2, t3 := traceID(tid(1)).String(), traceID(tid(2)).String(), traceID(tid(3)).String()
	for _, tc := range []struct {
		name  string
		query string
		want  []string
	}{
		{"service, newest first", "service=gateway", []string{t3, t2, t1}},
		{"operation", "service=gateway&operation=GET+/hello", []string{t3, t1}},
		{"child service finds the whole trace", "service=greeter", []string{t1}},
		{"error tag (status)", "service=gateway&tags=" + url.QueryEscape(`{"error":"true"}`), []string{t2}},
		{"status code tag", "service=gateway&tag=otel.status_code:ERROR", []string{t2}},
		{"int tag as text", "service=gateway&tag=http.response.status_code:503", []string{t2}},
		{"process tag", "service=greeter&tag=meshlens.mesh:demo", []string{t1}},
		{"min duration", "service=gateway&minDuration=10ms", []string{t3, t2}},
		{"max duration", "service=gateway&maxDuration=10ms", []string{t1}},
		{"duration range", "service=gateway&minDuration=10ms&maxDuration=100ms", []string{t3}},
		{"limit", "service=gateway&limit=1", []string{t3}},
		{"time window", "service=gateway&start=" + micros(1000) + "&end=" + micros(1500), []string{t2}},
		{"lookback excludes old spans", "service=gateway&lookback=1m", nil},
		{"unknown service", "service=nobody", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.query)
			q, _, err := ParseQuery(v, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(s.Find(q)); !equal(got, tc.want) {
				t.Fatalf("Find(%s) = %v, want %v", tc.query, got, tc.want)
			}
		})
	}
}

// micros is the test base plus off microseconds, as a query parameter.
func micros(off uint64) string {
	return strconv.FormatUint(base/1000+off, 10)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
