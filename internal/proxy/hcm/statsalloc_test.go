package hcm

import (
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/allocstest"
	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/stats"
)

// testStatsSet is one request's worth of stat handles, resolved as Apply
// resolves them.
type testStatsSet struct {
	hcm     *Stats
	cluster *cluster.Stats
	out, in *meshmetrics.Edge
	mesh    *meshmetrics.Metrics
}

func newTestStatsSet(tb testing.TB) *testStatsSet {
	store, err := stats.NewStore(stats.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	meshStore, err := stats.NewStore(stats.Options{TagRules: []stats.TagRule{}, PrometheusPrefix: "meshlens_", PrometheusSeconds: true})
	if err != nil {
		tb.Fatal(err)
	}
	m := meshmetrics.New(meshStore, nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "greeter"})
	s := &testStatsSet{
		hcm:     NewStats(store.Scope("http.egress.")),
		cluster: cluster.NewStats(store.Scope("cluster.cds_egress_demo_greeting_http_9080.")),
		out:     m.Outbound("greeting.demo.local", "greeting-route", "demo", "greeting"),
		mesh:    m,
	}
	s.in = m.Inbound("demo/virtualNode/client/greeter.demo.local")
	s.record(200) // first use of a code creates its counters
	return s
}

// record is what the request path does for one forwarded request.
func (s *testStatsSet) record(code int) {
	h, c := s.hcm, s.cluster
	h.rqTotal.Inc()
	h.rqActive.Inc()
	h.rqHTTP1Total.Inc()
	c.RqTotal.Inc()
	c.RqActive.Inc()
	c.CountResponse(&cluster.EndpointStats{}, code)
	c.RqActive.Dec()
	c.RqTime.RecordDuration(3 * time.Millisecond)
	c.CxRxBytes.Add(1024)
	h.rqActive.Dec()
	h.codes.Class(code).Inc()
	h.rqCompleted.Inc()
	h.rqTime.RecordDuration(4 * time.Millisecond)
	s.out.Record(meshmetrics.HTTP, code, 4*time.Millisecond, 0, 1024)
	s.mesh.Inbound("demo/virtualNode/client/greeter.demo.local").Record(meshmetrics.HTTP, code, 3*time.Millisecond, 0, 1024)
}

// The stats of a request add no allocation once their handles exist.
func TestRequestStatsAllocateNothing(t *testing.T) {
	s := newTestStatsSet(t)
	if n := allocstest.Fewest(1000, func() { s.record(200) }); n != 0 {
		t.Errorf("recording a request's stats allocates %v times", n)
	}
}

// BenchmarkRequestStats is everything the proxy records for one
// forwarded request once its handles are resolved: connection manager,
// cluster and mesh metrics. It must not allocate.
func BenchmarkRequestStats(b *testing.B) {
	s := newTestStatsSet(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.record(200)
		}
	})
}
