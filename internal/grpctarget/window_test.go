package grpctarget

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// pingCounter is a listener whose connections count the PING frames
// (not PING ACKs) their clients send.
type pingCounter struct {
	net.Listener
	pings atomic.Int64
	wg    sync.WaitGroup
}

func (l *pingCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer pr.Close()
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(pr, preface); err != nil {
			return
		}
		fr := http2.NewFramer(nil, pr)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
				l.pings.Add(1)
			}
		}
	}()
	return &teeConn{Conn: c, w: pw}, nil
}

type teeConn struct {
	net.Conn
	w *io.PipeWriter
}

func (c *teeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.w.Write(b[:n])
	}
	if err != nil {
		c.w.CloseWithError(err)
	}
	return n, err
}

func (c *teeConn) Close() error {
	c.w.Close()
	return c.Conn.Close()
}

// pingsFor makes calls unary calls with the dial options opts to a gRPC
// server and returns how many PING frames the client sent.
func pingsFor(t *testing.T, calls int, opts ...grpc.DialOption) int64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &pingCounter{Listener: ln}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	conn, err := grpc.NewClient(ln.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := healthpb.NewHealthClient(conn)
	for i := 0; i < calls; i++ {
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		// Let each response's PING (if any) go out before the next call.
		time.Sleep(5 * time.Millisecond)
	}
	conn.Close()
	srv.Stop()
	l.wg.Wait()
	return l.pings.Load()
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
