package metricshistory_test

import (
	"context"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/meshlens/meshlens/internal/metricshistory"
)

// TestReceiverAuthorize: a stream Authorize refuses for the node its
// first message names ends with that error, and the node is not recorded.
func TestReceiverAuthorize(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recv := metricshistory.NewReceiver(metricshistory.New(metricshistory.Options{Resolution: time.Second, Retention: time.Minute}))
	recv.Authorize = func(_ context.Context, id string) error {
		if id == "mesh/demo/virtualNode/front" {
			return nil
		}
		return status.Error(codes.PermissionDenied, "not this node")
	}
	g := grpc.NewServer()
	recv.Register(g)
	go g.Serve(ln)
	defer g.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		node string
		want codes.Code
	}{
		{"mesh/demo/virtualNode/other", codes.PermissionDenied},
		{"mesh/demo/virtualNode/front", codes.OK},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stream, err := metricsv3.NewMetricsServiceClient(conn).StreamMetrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		msg := &metricsv3.StreamMetricsMessage{Identifier: &metricsv3.StreamMetricsMessage_Identifier{Node: &corev3.Node{Id: tc.node}}}
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
		_, err = stream.CloseAndRecv()
		cancel()
		if status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.node, err, tc.want)
		}
	}
	nodes := recv.Nodes()
	if len(nodes) != 1 || nodes[0].ID != "mesh/demo/virtualNode/front" {
		t.Fatalf("recorded nodes %+v, want only the authorized one", nodes)
	}
}
