package stats

import (
	"testing"
)

// The request path's costs: every benchmark must report 0 allocs/op.

func BenchmarkCounterInc(b *testing.B) {
	s := newTestStore(b, Options{})
	c := s.Scope("cluster.c.").Counter("upstream_rq_total")
	b.ReportAllocs()
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkCounterIncParallel(b *testing.B) {
	s := newTestStore(b, Options{})
	c := s.Scope("cluster.c.").Counter("upstream_rq_total")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

func BenchmarkGaugeIncDec(b *testing.B) {
	s := newTestStore(b, Options{})
	g := s.Scope("cluster.c.").Gauge("upstream_rq_active")
	b.ReportAllocs()
	for b.Loop() {
		g.Inc()
		g.Dec()
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	s := newTestStore(b, Options{})
	h := s.Scope("cluster.c.").Histogram("upstream_rq_time", Milliseconds)
	b.ReportAllocs()
	v := uint64(0)
	for b.Loop() {
		h.Record(v % 2000)
		v += 7
	}
}

func BenchmarkHistogramRecordParallel(b *testing.B) {
	s := newTestStore(b, Options{})
	h := s.Scope("cluster.c.").Histogram("upstream_rq_time", Milliseconds)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		v := uint64(0)
		for pb.Next() {
			h.Record(v % 2000)
			v += 7
		}
	})
}

func BenchmarkCounterByCode(b *testing.B) {
	s := newTestStore(b, Options{})
	sc := s.Scope("cluster.c.")
	codes := [...]int{200, 201, 404, 503}
	for _, c := range codes {
		sc.CounterByCode("upstream_rq", c) // first use creates
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sc.CounterByCode("upstream_rq", codes[i&3]).Inc()
		i++
	}
}

func BenchmarkCodeCountersInc(b *testing.B) {
	s := newTestStore(b, Options{})
	cc := s.Scope("cluster.c.").CodeCounters("upstream_rq")
	codes := [...]int{200, 201, 404, 503}
	for _, c := range codes {
		cc.Inc(c)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		cc.Inc(codes[i&3])
		i++
	}
}

func BenchmarkCounterByCodeParallel(b *testing.B) {
	s := newTestStore(b, Options{})
	sc := s.Scope("cluster.c.")
	codes := [...]int{200, 201, 404, 503}
	for _, c := range codes {
		sc.CounterByCode("upstream_rq", c)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			sc.CounterByCode("upstream_rq", codes[i&3]).Inc()
			i++
		}
	})
}

// BenchmarkMerge is the flush-time cost of one busy histogram.
func BenchmarkMerge(b *testing.B) {
	s := newTestStore(b, Options{})
	h := s.Scope("cluster.c.").Histogram("upstream_rq_time", Milliseconds)
	for v := range uint64(100000) {
		h.Record(v)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.merge()
	}
}

// TestRequestPathDoesNotAllocate pins 0 allocations outside benchmarks.
func TestRequestPathDoesNotAllocate(t *testing.T) {
	s := newTestStore(t, Options{})
	sc := s.Scope("cluster.c.")
	c := sc.Counter("upstream_rq_total")
	g := sc.Gauge("upstream_rq_active")
	h := sc.Histogram("upstream_rq_time", Milliseconds)
	cc := sc.CodeCounters("upstream_rq")
	warm := func() {
		c.Inc()
		g.Inc()
		g.Dec()
		for v := uint64(0); v < 1e7; v = v*3 + 1 {
			h.Record(v)
		}
		cc.Inc(200)
		sc.CounterByCode("upstream_rq", 200).Inc()
	}
	for range 300 { // every shard sees every decade
		warm()
	}
	if n := testing.AllocsPerRun(100, warm); n != 0 {
		t.Errorf("request path allocates %v times", n)
	}
}
