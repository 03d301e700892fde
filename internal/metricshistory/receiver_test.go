package metricshistory_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/meshlens/meshlens/internal/metricshistory"
	"github.com/meshlens/meshlens/internal/stats"
	"github.com/meshlens/meshlens/internal/stats/metricsservice"
)

// TestSinkToReceiverOverGRPC runs the proxy's metrics service sink
// against the control plane's receiver on loopback: the sink first finds
// the service away (its dials fail) and must reconnect with backoff; the
// requests recorded after its stream is up reach the history with their
// codes and latencies.
func TestSinkToReceiverOverGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hist := metricshistory.New(metricshistory.Options{Resolution: time.Second, Retention: time.Minute})
	recv := metricshistory.NewReceiver(hist)
	g := grpc.NewServer()
	recv.Register(g)
	go g.Serve(ln)
	defer g.Stop()

	meshStore, err := stats.NewStore(stats.Options{TagRules: []stats.TagRule{}, PrometheusPrefix: "meshlens_", PrometheusSeconds: true})
	if err != nil {
		t.Fatal(err)
	}
	sc := meshStore.ScopeWithTags("", []stats.Tag{
		{Name: "reporter", Value: "source"}, {Name: "source_mesh", Value: "demo"}, {Name: "source_workload", Value: "front"},
		{Name: "source_kind", Value: "virtualNode"}, {Name: "destination_mesh", Value: "demo"},
		{Name: "destination_service", Value: "greeter.demo.local"}, {Name: "destination_workload", Value: "greeter"},
		{Name: "route", Value: "greeter-router/r1"}, {Name: "response_code", Value: "503"}, {Name: "protocol", Value: "http"},
	})
	requests, duration := sc.Counter("requests_total"), sc.Histogram("request_duration_seconds", stats.Milliseconds)

	var dials atomic.Int32
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		if dials.Add(1) <= 2 {
			return nil, errors.New("control plane away")
		}
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	sink, err := metricsservice.New(metricsservice.Options{
		Addr: ln.Addr().String(), Node: &corev3.Node{Id: "mesh/demo/virtualNode/front", Cluster: "demo/front"},
		Stores: []*stats.Store{meshStore}, Extra: endpointHealth, Interval: 100 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dialer)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sink.Run(ctx) }()

	// Wait for the stream (the baseline message) before counting.
	deadline := time.Now().Add(10 * time.Second)
	for len(recv.Nodes()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no stream after %d dials", dials.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 7 {
		requests.Inc()
		duration.RecordDuration(20 * time.Millisecond)
	}
	var got []metricshistory.Stat
	for {
		got, err = hist.Stats(context.Background(), metricshistory.Query{Window: time.Minute, GroupBy: []string{metricshistory.LabelRoute}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 && got[0].RPS*60 >= 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history = %+v, want 7 requests on route greeter-router/r1", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := got[0]
	if st.Labels.Route != "greeter-router/r1" || st.ErrorRatio != 1 || st.ErrorsByCode["503"] == 0 || st.P50 < 0.01 || st.P50 > 0.025 {
		t.Errorf("stat = %+v, want route label, all 503, p50 in (10ms, 25ms]", st)
	}
	if d := dials.Load(); d < 3 {
		t.Errorf("%d dials, want the failed ones retried", d)
	}
	n := recv.Nodes()
	if len(n) != 1 || n[0].ID != "mesh/demo/virtualNode/front" || n[0].Cluster != "demo/front" || !n[0].Connected {
		t.Errorf("nodes = %+v", n)
	}
	want := metricshistory.EndpointView{Mesh: "demo", VirtualNode: "greeter", Cluster: "cds_greeter", Address: "10.0.0.1:8080", HealthCheck: "failed", Ejected: true}
	if len(n) == 1 && (len(n[0].Endpoints) != 1 || n[0].Endpoints[0] != want) {
		t.Errorf("endpoints = %+v, want %+v", n[0].Endpoints, want)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("sink did not stop with its context")
	}
}

func endpointHealth() []*dto.MetricFamily {
	lp := func(k, v string) *dto.LabelPair { return &dto.LabelPair{Name: proto.String(k), Value: proto.String(v)} }
	return []*dto.MetricFamily{{Name: proto.String(metricshistory.EndpointHealthMetric), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{
		Label: []*dto.LabelPair{lp("address", "10.0.0.1:8080"), lp("cluster", "cds_greeter"), lp("destination_mesh", "demo"),
			lp("destination_workload", "greeter"), lp("eds_healthy", "false"), lp("ejected", "true"), lp("health_check", "failed")},
		Gauge: &dto.Gauge{Value: proto.Float64(1)},
	}}}}
}

// stuckService accepts streams and never reads them.
type stuckService struct {
	metricsv3.UnimplementedMetricsServiceServer
	streams atomic.Int32
}

func (s *stuckService) StreamMetrics(stream metricsv3.MetricsService_StreamMetricsServer) error {
	s.streams.Add(1)
	<-stream.Context().Done()
	return nil
}

// A metrics service that stops reading costs the sink one stream: the
// send that makes no progress is abandoned after SendTimeout and the
// sink opens a new stream.
func TestSinkAbandonsStuckStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &stuckService{}
	g := grpc.NewServer(grpc.InitialWindowSize(64<<10), grpc.InitialConnWindowSize(64<<10))
	metricsv3.RegisterMetricsServiceServer(g, svc)
	go g.Serve(ln)
	defer g.Stop()

	// Enough series that a few messages fill the flow-control window.
	store, err := stats.NewStore(stats.Options{TagRules: []stats.TagRule{}, PrometheusPrefix: "meshlens_"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		store.ScopeWithTags("", []stats.Tag{{Name: "reporter", Value: "source"}, {Name: "n", Value: strconv.Itoa(i)}}).Counter("requests_total").Inc()
	}
	sink, err := metricsservice.New(metricsservice.Options{Addr: ln.Addr().String(), Node: &corev3.Node{Id: "n"}, Stores: []*stats.Store{store},
		Interval: 10 * time.Millisecond, SendTimeout: 200 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sink.Run(ctx)
	deadline := time.Now().Add(20 * time.Second)
	for svc.streams.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams: the stuck one was not abandoned", svc.streams.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
