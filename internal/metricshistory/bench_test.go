package metricshistory

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// synthetic records an hour (360 slots of 10 s) of traffic on a mesh of
// nodes nodes and edges edges, each edge counted by both reporters, with
// latencies and a 503 code.
func synthetic(s *Store, end time.Time, nodes, edges, slots int) {
	h := new([numBuckets]uint64)
	h[3], h[4], h[6] = 40, 50, 10
	labels := make([]Labels, 0, 2*edges)
	for e := range edges {
		from, to := fmt.Sprintf("n%d", e%nodes), fmt.Sprintf("n%d", (e*7+1)%nodes)
		for _, rep := range []string{"source", "destination"} {
			labels = append(labels, Labels{Reporter: rep, SourceMesh: "m", SourceKind: "virtualNode", SourceWorkload: from,
				DestinationMesh: "m", DestinationService: fmt.Sprintf("%s-e%d.m.local", to, e), DestinationWorkload: to, Route: "r", Protocol: "http"})
		}
	}
	batch := make([]Sample, len(labels))
	for sl := range slots {
		for i, l := range labels {
			batch[i] = Sample{Labels: l, Requests: 100, Errors: 1, Codes: map[string]uint64{"503": 1}, Buckets: h}
		}
		s.Add(end.Add(-time.Duration(slots-1-sl)*DefaultResolution), batch)
	}
}

// BenchmarkHistoryMemory reports the memory of one hour of history of a
// synthetic mesh of 200 nodes and 1000 edges (2000 series: both
// reporters): history-bytes as the store counts it for its cap, heap-bytes
// as the Go heap grew.
func BenchmarkHistoryMemory(b *testing.B) {
	end := time.Unix(1_700_000_000, 0)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := New(Options{Now: func() time.Time { return end }})
		synthetic(s, end, 200, 1000, 360)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(s.Bytes()), "history-bytes")
		b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "heap-bytes")
		b.ReportMetric(float64(s.Len()), "series")
		runtime.KeepAlive(s)
	}
}

// BenchmarkStatsOverHour is the graph's query: every edge's rate, error
// ratio and quantiles over the last minute, from a full hour.
func BenchmarkStatsOverHour(b *testing.B) {
	end := time.Unix(1_700_000_000, 0)
	s := New(Options{Now: func() time.Time { return end }})
	synthetic(s, end, 200, 1000, 360)
	q := Query{Selector: Labels{Reporter: "source"}, GroupBy: []string{LabelSourceWorkload, LabelDestinationService}, Window: time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Stats(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
}

// The synthetic hour fits the default caps whole.
func TestSyntheticHourFitsDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fills an hour of 2000 series")
	}
	end := time.Unix(1_700_000_000, 0)
	s := New(Options{Now: func() time.Time { return end }})
	synthetic(s, end, 200, 1000, 360)
	if s.Len() != 2000 {
		t.Fatalf("%d series kept, want 2000", s.Len())
	}
	st, err := s.Stats(context.Background(), Query{Window: time.Hour})
	if err != nil || len(st) != 1 || st[0].RPS != 2000*100/10.0 {
		t.Errorf("hour stats = %+v, %v; want 20000 rps", st, err)
	}
}
