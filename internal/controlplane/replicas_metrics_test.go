package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/meshlens/meshlens/internal/console"
	"github.com/meshlens/meshlens/internal/etcdtest"
	"github.com/meshlens/meshlens/internal/metricshistory"
)

// reportTraffic sends a proxy's mesh metrics to a replica over the
// metrics service, as a sidecar does: a baseline of zero, then n
// requests of route front->greeter, all with latency at most le.
func reportTraffic(t *testing.T, xdsAddr, node string, n uint64, le float64) {
	t.Helper()
	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := metricsv3.NewMetricsServiceClient(conn).StreamMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lp := func(k, v string) *dto.LabelPair { return &dto.LabelPair{Name: proto.String(k), Value: proto.String(v)} }
	labels := []*dto.LabelPair{lp("reporter", "source"), lp("source_mesh", "m"), lp("source_kind", "virtualNode"),
		lp("source_workload", "front"), lp("destination_mesh", "m"), lp("destination_service", "greeter.m.local"),
		lp("destination_workload", "greeter"), lp("route", "r/r1"), lp("protocol", "http"), lp("response_code", "200")}
	families := func(count uint64) []*dto.MetricFamily {
		var buckets []*dto.Bucket
		for _, ub := range metricshistory.Buckets {
			c := uint64(0)
			if ub >= le {
				c = count
			}
			buckets = append(buckets, &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(c)})
		}
		return []*dto.MetricFamily{
			{Name: proto.String(metricshistory.RequestsTotal), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{Label: labels, Counter: &dto.Counter{Value: proto.Float64(float64(count))}}}},
			{Name: proto.String(metricshistory.RequestDuration), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Label: labels,
				Histogram: &dto.Histogram{SampleCount: proto.Uint64(count), Bucket: buckets}}}},
		}
	}
	id := &metricsv3.StreamMetricsMessage_Identifier{Node: &corev3.Node{Id: node, Cluster: "m/front"}}
	for i, c := range []uint64{0, n} {
		msg := &metricsv3.StreamMetricsMessage{EnvoyMetrics: families(c)}
		if i == 0 {
			msg.Identifier = id
		}
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

// TestReplicasAnswerTrafficForTheWholeMesh: two proxies of one virtual
// node report the same edge's traffic, one to replica a (90 fast
// requests), one to replica b (10 slow ones). The console's graph, top
// routes and metrics series on either replica count all 100 requests,
// and the edge's quantiles are those of the merged histograms (p50
// among the fast requests, p99 among the slow), not an average of each
// replica's.
func TestReplicasAnswerTrafficForTheWholeMesh(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c, "a")
	b := startReplica(t, c, "b")
	a.apply(t, `
kind: Mesh
name: m
---
kind: VirtualNode
mesh: m
name: front
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: db.example}}
`)
	reportTraffic(t, a.s.XDSAddr(), "mesh/m/virtualNode/front/1", 90, 0.001)
	reportTraffic(t, b.s.XDSAddr(), "mesh/m/virtualNode/front/2", 10, 1)
	wantP50 := 0.0005 + 0.0005*50/90
	// The answers carry 6 significant digits.
	near := func(got console.Num, want float64) bool { return math.Abs(float64(got)-want) <= 1e-5*want }
	eventually(t, 15*time.Second, func() string {
		for _, r := range []*replicaCP{a, b} {
			var g console.Graph
			base := "http://" + r.s.APIAddr()
			if code := getJSON(t, base+"/v1/console/graph?mesh=m&window=1m", &g); code != http.StatusOK {
				return fmt.Sprintf("replica %s: graph: %d", r.s.cluster.self.ID, code)
			}
			var edge *console.Edge
			for i := range g.Edges {
				if g.Edges[i].ID == "m/virtualNode/front->m/virtualService/greeter.m.local" {
					edge = &g.Edges[i]
				}
			}
			if edge == nil {
				return fmt.Sprintf("replica %s: no edge front->greeter in %+v", r.s.cluster.self.ID, g.Edges)
			}
			if !near(edge.RPS*60, 100) || !near(edge.P50, wantP50) || !near(edge.P99, 0.95) {
				return fmt.Sprintf("replica %s: edge rps %v (x60 = %v), p50 %v, p99 %v; want 100 requests, p50 %v, p99 0.95",
					r.s.cluster.self.ID, edge.RPS, edge.RPS*60, edge.P50, edge.P99, wantP50)
			}
			var top console.TopResponse
			getJSON(t, base+"/v1/console/top?mesh=m&window=1m", &top)
			if len(top.Slowest) != 1 || !near(top.Slowest[0].RPS*60, 100) || !near(top.Slowest[0].P99, 0.95) {
				return fmt.Sprintf("replica %s: top %+v", r.s.cluster.self.ID, top)
			}
			var m console.MetricsResponse
			getJSON(t, base+"/v1/console/metrics?kind=route&mesh=m&name=r/r1&range=5m&step=10s", &m)
			var total float64
			for _, p := range m.Points {
				total += float64(p.RPS) * 10
			}
			if math.Abs(total-100) > 1e-3 {
				return fmt.Sprintf("replica %s: route series counts %v requests, want 100", r.s.cluster.self.ID, total)
			}
		}
		return ""
	})
}
