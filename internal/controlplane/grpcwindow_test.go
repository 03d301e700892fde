package controlplane

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshlens/meshlens/internal/grpctarget"
	"github.com/meshlens/meshlens/internal/pingcount"
)

// serverPings makes calls unary calls to a gRPC server built with opts,
// from a client with a proxy's dial options, and returns how many PING
// frames the server sent.
func serverPings(t *testing.T, calls int, opts ...grpc.ServerOption) int64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	defer srv.Stop()
	counter := &pingcount.Counter{}
	target, dopts, err := grpctarget.Dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dopts = append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return counter.Wrap(c, false), nil
		}))
	conn, err := grpc.NewClient("passthrough:///"+target, dopts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := healthpb.NewHealthClient(conn)
	for i := range calls {
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	conn.Close()
	return counter.Pings()
}

// TestGRPCServerSendsNoBandwidthPings: the control plane's gRPC server
// answers the requests of proxies (xDS ACKs, span exports) with no PING of
// its own; with gRPC's default windows it does.
func TestGRPCServerSendsNoBandwidthPings(t *testing.T) {
	t.Parallel()
	const calls = 20
	if n := serverPings(t, calls); n == 0 {
		t.Fatalf("with gRPC's default windows, %d calls drew no PING: the test no longer shows what the server's windows turn off", calls)
	}
	if n := serverPings(t, calls, grpcServerOptions()...); n != 0 {
		t.Errorf("with the control plane's options, %d calls drew %d PINGs, want 0", calls, n)
	}
}
