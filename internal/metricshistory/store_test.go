package metricshistory

import (
	"context"
	"math"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

var t0 = time.Unix(1_700_000_000, 0) // a multiple of 10 s

func edge(src, dst string) Labels {
	return Labels{Reporter: "source", SourceMesh: "demo", SourceKind: "virtualNode", SourceWorkload: src,
		DestinationMesh: "demo", DestinationService: dst + ".demo.local", DestinationWorkload: dst, Protocol: "http"}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 || (math.IsNaN(a) && math.IsNaN(b)) }

func TestQuantileFromBuckets(t *testing.T) {
	// 50 samples in (5ms,10ms], 40 in (10ms,25ms], 10 in (25ms,50ms].
	var c [numBuckets]uint64
	c[3], c[4], c[5] = 50, 40, 10
	for _, tc := range []struct{ q, want float64 }{
		{0.25, 0.0075}, // rank 25 of 50 in (0.005, 0.01]
		{0.5, 0.01},
		{0.9, 0.025},
		{0.99, 0.0475}, // rank 99: 9 of 10 in (0.025, 0.05]
	} {
		if got := quantile(tc.q, &c); !near(got, tc.want) {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	var inf [numBuckets]uint64
	inf[numBuckets-1] = 3
	if got := quantile(0.5, &inf); got != 3600 {
		t.Errorf("quantile in +Inf = %v, want the largest bound 3600", got)
	}
	var none [numBuckets]uint64
	if got := quantile(0.5, &none); !math.IsNaN(got) {
		t.Errorf("quantile without samples = %v, want NaN", got)
	}
}

func TestStatsRatesErrorsAndGroups(t *testing.T) {
	now := t0
	s := New(Options{Now: func() time.Time { return now }})
	a, b := edge("front", "greeter"), edge("front", "billing")
	var h [numBuckets]uint64
	h[3], h[4], h[5] = 50, 40, 10
	// Three slots of 10 s: 100, 200, 300 requests to greeter, 30 of them
	// 503 in the last; billing gets 60 with 6 404s.
	s.Add(t0.Add(-20*time.Second), []Sample{{Labels: a, Requests: 100, Buckets: &h}})
	s.Add(t0.Add(-10*time.Second), []Sample{{Labels: a, Requests: 200}})
	s.Add(t0, []Sample{{Labels: a, Requests: 300, Errors: 30, Codes: map[string]uint64{"503": 30}},
		{Labels: b, Requests: 60, Codes: map[string]uint64{"404": 6}}})

	got, err := s.Stats(context.Background(), Query{Window: 30 * time.Second, GroupBy: []string{LabelDestinationService}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d groups, want 2: %+v", len(got), got)
	}
	bill, greet := got[0], got[1]
	if bill.Labels != (Labels{DestinationService: "billing.demo.local"}) || greet.Labels.DestinationService != "greeter.demo.local" {
		t.Fatalf("groups = %+v", got)
	}
	if !near(greet.RPS, 600.0/30) || !near(greet.ErrorRatio, 30.0/600) || !near(greet.ErrorsByCode["503"], 1) {
		t.Errorf("greeter = %+v, want 20 rps, error ratio 0.05, 1 503/s", greet)
	}
	if !near(greet.P50, 0.01) || !near(greet.P90, 0.025) || !near(greet.P99, 0.0475) {
		t.Errorf("greeter quantiles = %v %v %v", greet.P50, greet.P90, greet.P99)
	}
	if !near(bill.RPS, 2) || bill.ErrorRatio != 0 || !near(bill.ErrorsByCode["404"], 0.2) || !math.IsNaN(bill.P50) {
		t.Errorf("billing = %+v, want 2 rps, no 5xx, 0.2 404/s, no latency", bill)
	}

	// A 10 s window sees only the last slot.
	last, _ := s.Stats(context.Background(), Query{Window: 10 * time.Second, Selector: Labels{DestinationWorkload: "greeter"}})
	if len(last) != 1 || !near(last[0].RPS, 30) || !near(last[0].ErrorRatio, 0.1) {
		t.Errorf("last slot = %+v, want 30 rps, error ratio 0.1", last)
	}

	rs, err := s.Range(context.Background(), RangeQuery{Selector: Labels{DestinationWorkload: "greeter"}, Start: t0.Add(-20 * time.Second), End: t0, Step: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || len(rs[0].Points) != 3 {
		t.Fatalf("range = %+v", rs)
	}
	for i, want := range []float64{10, 20, 30} {
		if p := rs[0].Points[i]; !near(p.RPS, want) {
			t.Errorf("point %d rps = %v, want %v", i, p.RPS, want)
		}
	}
}

func TestIdleSeriesEvictedAndSlotsReused(t *testing.T) {
	now := t0
	s := New(Options{Retention: time.Minute, Now: func() time.Time { return now }})
	s.Add(t0, []Sample{{Labels: edge("a", "b"), Requests: 5}})
	s.Add(t0.Add(50*time.Second), []Sample{{Labels: edge("a", "c"), Requests: 7}})
	// The ring of 6 slots wraps: t0+60s is t0's slot, which must not
	// count t0's requests.
	s.Add(t0.Add(60*time.Second), []Sample{{Labels: edge("a", "c"), Requests: 1}})
	if s.Len() != 1 {
		t.Errorf("after a minute idle, %d series kept, want 1", s.Len())
	}
	now = t0.Add(60 * time.Second)
	got, _ := s.Stats(context.Background(), Query{Window: time.Hour})
	if len(got) != 1 || !near(got[0].RPS, 8.0/60) {
		t.Errorf("stats = %+v, want 8 requests over the 60 s kept", got)
	}
	now = t0.Add(200 * time.Second)
	s.Evict()
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Errorf("after eviction: %d series, %d bytes", s.Len(), s.Bytes())
	}
}

func TestCapsDropLeastRecentlyActive(t *testing.T) {
	s := New(Options{MaxSeries: 2})
	s.Add(t0, []Sample{{Labels: edge("a", "old"), Requests: 1}})
	s.Add(t0.Add(10*time.Second), []Sample{{Labels: edge("a", "mid"), Requests: 1}})
	s.Add(t0.Add(20*time.Second), []Sample{{Labels: edge("a", "new"), Requests: 1}})
	got, _ := s.Stats(context.Background(), Query{Window: time.Hour, At: t0.Add(20 * time.Second), GroupBy: []string{LabelDestinationWorkload}})
	if len(got) != 2 || got[0].Labels.DestinationWorkload != "mid" || got[1].Labels.DestinationWorkload != "new" {
		t.Errorf("kept %+v, want mid and new", got)
	}

	one := New(Options{})
	per := one.baseBytes() + one.histBytes()
	s = New(Options{MaxBytes: 2*per + 1})
	var h [numBuckets]uint64
	h[0] = 1
	for i, n := range []string{"a", "b", "c"} {
		s.Add(t0.Add(time.Duration(i)*10*time.Second), []Sample{{Labels: edge("x", n), Requests: 1, Buckets: &h}})
	}
	if s.Len() != 2 || s.Bytes() > 2*per+1 {
		t.Errorf("byte cap %d: %d series, %d bytes", 2*per+1, s.Len(), s.Bytes())
	}
}

func family(name string, typ dto.MetricType, ms ...*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum(), Metric: ms}
}

func metricLabels(l Labels, code string) []*dto.LabelPair {
	var out []*dto.LabelPair
	for _, n := range labelNames {
		if v := l.Get(n); v != "" {
			out = append(out, &dto.LabelPair{Name: proto.String(n), Value: proto.String(v)})
		}
	}
	return append(out, &dto.LabelPair{Name: proto.String(LabelResponseCode), Value: proto.String(code)})
}

func counter(l Labels, code string, v float64) *dto.Metric {
	return &dto.Metric{Label: metricLabels(l, code), Counter: &dto.Counter{Value: proto.Float64(v)}}
}

func histogram(l Labels, code string, cum map[float64]uint64, count uint64) *dto.Metric {
	h := &dto.Histogram{SampleCount: proto.Uint64(count)}
	for _, ub := range Buckets {
		var c uint64
		for le, n := range cum {
			if le <= ub {
				c = max(c, n)
			}
		}
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(c)})
	}
	return &dto.Metric{Label: metricLabels(l, code), Histogram: h}
}

func TestStreamTurnsCumulativeIntoDeltas(t *testing.T) {
	now := t0.Add(20 * time.Second)
	s := New(Options{Now: func() time.Time { return now }})
	st := s.NewStream()
	e := edge("front", "greeter")
	push := func(at time.Time, ok, fail float64, hist map[float64]uint64, count uint64) {
		st.Push(at, []*dto.MetricFamily{
			family(RequestsTotal, dto.MetricType_COUNTER, counter(e, "200", ok), counter(e, "503", fail)),
			family(RequestDuration, dto.MetricType_HISTOGRAM, histogram(e, "200", hist, count)),
		})
	}
	// The baseline (1000 requests before the stream) is not counted.
	push(t0, 1000, 10, map[float64]uint64{0.01: 1000}, 1000)
	// 100 more, 10 failed, all between 10 and 25 ms.
	push(t0.Add(10*time.Second), 1090, 20, map[float64]uint64{0.01: 1000, 0.025: 1090}, 1090)
	// The proxy restarted: counters start again from zero.
	push(t0.Add(20*time.Second), 5, 0, map[float64]uint64{0.005: 5}, 5)

	got, err := s.Stats(context.Background(), Query{Window: 20 * time.Second})
	if err != nil || len(got) != 1 {
		t.Fatalf("stats = %+v, %v", got, err)
	}
	if g := got[0]; !near(g.RPS, 105.0/20) || !near(g.ErrorRatio, 10.0/105) {
		t.Errorf("stats = %+v, want 105 requests, 10 errors over 20 s", g)
	}
	last, _ := s.Stats(context.Background(), Query{Window: 10 * time.Second, At: t0.Add(10 * time.Second)})
	// 90 samples in (10ms, 25ms]: p50 at rank 45.
	if len(last) != 1 || !near(last[0].P50, 0.01+0.015*45/90) {
		t.Errorf("p50 = %+v, want %v", last, 0.01+0.015*45/90)
	}
}

// FuzzStreamPush: whatever counter values and bucket bounds a proxy
// sends, the history records no more requests than the counters grew by,
// and nothing panics.
func FuzzStreamPush(f *testing.F) {
	f.Add(10.0, 20.0, 0.01, uint64(5), uint64(7), 0.025)
	f.Add(-1.0, 1e300, -3.0, uint64(9), uint64(1), 1e9)
	f.Fuzz(func(t *testing.T, a, b, le float64, c1, c2 uint64, le2 float64) {
		s := New(Options{Now: func() time.Time { return t0 }})
		st := s.NewStream()
		e := edge("x", "y")
		hist := func(n, m uint64) *dto.Metric {
			return &dto.Metric{Label: metricLabels(e, "200"), Histogram: &dto.Histogram{SampleCount: proto.Uint64(m), Bucket: []*dto.Bucket{
				{UpperBound: proto.Float64(le), CumulativeCount: proto.Uint64(n)}, {UpperBound: proto.Float64(le2), CumulativeCount: proto.Uint64(m)}}}}
		}
		st.Push(t0.Add(-10*time.Second), []*dto.MetricFamily{family(RequestsTotal, dto.MetricType_COUNTER, counter(e, "200", a)),
			family(RequestDuration, dto.MetricType_HISTOGRAM, hist(c1, c2))})
		st.Push(t0, []*dto.MetricFamily{family(RequestsTotal, dto.MetricType_COUNTER, counter(e, "503", b), counter(e, "200", a)),
			family(RequestDuration, dto.MetricType_HISTOGRAM, hist(c2, c1))})
		got, err := s.Stats(context.Background(), Query{Window: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			if g.RPS < 0 || g.ErrorRatio < 0 || g.ErrorRatio > 1 || g.P99 < 0 {
				t.Fatalf("stat %+v", g)
			}
		}
	})
}
