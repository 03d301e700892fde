// Package pingcount counts the HTTP/2 PING frames one side of a gRPC
// connection sends, for tests of gRPC's flow-control settings: with fixed
// windows, gRPC's bandwidth estimation, which answers data with a PING, is
// off.
package pingcount

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

// Side is the side of a connection whose PINGs are counted.
type Side int

// The two sides.
const (
	Client Side = iota
	Server
)

// Calls serves gRPC's health service on loopback with serverOpts, makes
// calls unary calls from a client dialled with dialOpts (insecure
// credentials are added), and returns how many PING frames (not PING
// ACKs) side sent.
func Calls(t testing.TB, side Side, calls int, serverOpts []grpc.ServerOption, dialOpts []grpc.DialOption) int64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{}
	srv := grpc.NewServer(serverOpts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	if side == Client {
		go srv.Serve(listener{ln, c})
	} else {
		go srv.Serve(ln)
	}
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dialOpts...)
	if side == Server {
		dial = append(dial, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return c.wrap(conn, false), nil
		}))
	}
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), dial...)
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
		// Let the PING a response or request draws (if any) go out
		// before the next call.
		time.Sleep(5 * time.Millisecond)
	}
	conn.Close()
	srv.Stop()
	c.wg.Wait()
	return c.pings.Load()
}

// counter counts the PING frames read on the connections it wraps.
type counter struct {
	pings atomic.Int64
	wg    sync.WaitGroup
}

// wrap returns conn with what it reads also parsed as HTTP/2 frames.
// clientPreface: the peer is a client, whose bytes start with the
// connection preface.
func (c *counter) wrap(conn net.Conn, clientPreface bool) net.Conn {
	pr, pw := io.Pipe()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer pr.Close()
		if clientPreface {
			if _, err := io.ReadFull(pr, make([]byte, len(http2.ClientPreface))); err != nil {
				return
			}
		}
		fr := http2.NewFramer(nil, pr)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
				c.pings.Add(1)
			}
		}
	}()
	return &teeConn{Conn: conn, w: pw}
}

// listener wraps each accepted connection in a counter.
type listener struct {
	net.Listener
	c *counter
}

func (l listener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.c.wrap(conn, true), nil
}

// teeConn writes what it reads to w.
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
