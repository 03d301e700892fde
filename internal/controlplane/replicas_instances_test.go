package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
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

// seenEndpoint is one upstream endpoint as a reporting proxy sees it.
type seenEndpoint struct{ address, healthCheck string }

// reportEndpoints sends a proxy's view of the endpoints of virtual node
// m/back to a replica over the metrics service, as a sidecar does.
func reportEndpoints(t *testing.T, xdsAddr, node string, eps ...seenEndpoint) {
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
	var ms []*dto.Metric
	for _, e := range eps {
		ms = append(ms, &dto.Metric{Label: []*dto.LabelPair{lp("destination_mesh", "m"), lp("destination_workload", "back"),
			lp("cluster", "m/back"), lp("address", e.address), lp("health_check", e.healthCheck), lp("ejected", "false"),
			lp("eds_healthy", "true")}, Gauge: &dto.Gauge{Value: proto.Float64(1)}})
	}
	msg := &metricsv3.StreamMetricsMessage{
		Identifier:   &metricsv3.StreamMetricsMessage_Identifier{Node: &corev3.Node{Id: node, Cluster: "m/front"}},
		EnvoyMetrics: []*dto.MetricFamily{{Name: proto.String(metricshistory.EndpointHealthMetric), Type: dto.MetricType_GAUGE.Enum(), Metric: ms}},
	}
	if err := stream.Send(msg); err != nil {
		t.Fatal(err)
	}
}

// TestReplicasAnswerInstancesForTheWholeMesh: a proxy reporting to
// replica a sees back's 10.0.0.1 healthy, one reporting to replica b
// sees it failing its health check and sees 10.0.0.2 too. The console's
// instances view on either replica lists both instances, 10.0.0.1 with
// both observers and unhealthy (the worst view); a replica registered in
// the store that does not answer is named in unreachableReplicas and the
// answer is still a 200.
func TestReplicasAnswerInstancesForTheWholeMesh(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c, "a")
	b := startReplica(t, c, "b")
	reportEndpoints(t, a.s.XDSAddr(), "mesh/m/virtualNode/front/1", seenEndpoint{"10.0.0.1:8080", "healthy"})
	reportEndpoints(t, b.s.XDSAddr(), "mesh/m/virtualNode/front/2", seenEndpoint{"10.0.0.1:8080", "failed"}, seenEndpoint{"10.0.0.2:8080", "healthy"})

	// A replica that registered and then stopped answering: its address
	// refuses connections.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	l.Close()
	info, err := json.Marshal(peerInfo{ID: "gone", API: gone, Scheme: "http"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.s.cluster.client.Put(ctx, a.s.cluster.peerKey("gone"), string(info)); err != nil {
		t.Fatal(err)
	}

	want := "m/back/10.0.0.1:8080 unhealthy [mesh/m/virtualNode/front/1:healthy mesh/m/virtualNode/front/2:failed]; " +
		"m/back/10.0.0.2:8080 healthy [mesh/m/virtualNode/front/2:healthy]; unreachable [gone]"
	eventually(t, 15*time.Second, func() string {
		for _, r := range []*replicaCP{a, b} {
			var resp console.InstancesResponse
			if code := getJSON(t, "http://"+r.s.APIAddr()+"/v1/console/instances?mesh=m&node=back", &resp); code != http.StatusOK {
				return fmt.Sprintf("replica %s: status %d", r.s.cluster.self.ID, code)
			}
			got := ""
			for _, in := range resp.Instances {
				var obs []string
				for _, o := range in.Observers {
					obs = append(obs, o.Proxy+":"+o.HealthCheck)
				}
				got += fmt.Sprintf("%s/%s/%s %s %v; ", in.Mesh, in.VirtualNode, in.Address, in.Health, obs)
			}
			got += fmt.Sprintf("unreachable %v", resp.UnreachableReplicas)
			if got != want {
				return fmt.Sprintf("replica %s: got %s, want %s", r.s.cluster.self.ID, got, want)
			}
		}
		return ""
	})
}
