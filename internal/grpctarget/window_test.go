package grpctarget

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshlens/meshlens/internal/pingcount"
)

// countingListener wraps each accepted connection in a ping counter.
type countingListener struct {
	net.Listener
	c *pingcount.Counter
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.c.Wrap(conn, true), nil
}

// pingsFor makes calls unary calls with the dial options opts to a gRPC
// server and returns how many PING frames the client sent.
func pingsFor(t *testing.T, calls int, opts ...grpc.DialOption) int64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counter := &pingcount.Counter{}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(countingListener{ln, counter})
	conn, err := grpc.NewClient(ln.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
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
		// Let each response's PING (if any) go out before the next call.
		time.Sleep(5 * time.Millisecond)
	}
	conn.Close()
	srv.Stop()
	return counter.Pings()
}

// TestDialSendsNoBandwidthPings shows that a proxy's control-plane
// connection answers data with no PING of its own: with gRPC's default
// windows the same calls do.
func TestDialSendsNoBandwidthPings(t *testing.T) {
	t.Parallel()
	const calls = 20
	if n := pingsFor(t, calls); n == 0 {
		t.Fatalf("with gRPC's default windows, %d calls sent no PING: the test no longer shows what Dial's windows turn off", calls)
	}
	_, opts, err := Dial("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if n := pingsFor(t, calls, opts...); n != 0 {
		t.Errorf("with Dial's options, %d calls sent %d PINGs, want 0", calls, n)
	}
}
