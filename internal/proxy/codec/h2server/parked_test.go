package h2server

import (
	"context"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/meshlens/meshlens/internal/proxy/codec/workers"
	"github.com/meshlens/meshlens/internal/proxy/idlewait"
)

// serveParked serves s detached on a loopback listener, each connection
// wrapped so that its reader parks when it waits for the client
// (idlewait), as the proxy's listener connections do; ended counts the
// connections that ended. s waits on no goroutine of its own
// (attached.Max -1), so every wait parks.
func serveParked(t *testing.T, s *Server, ended *atomic.Int64) string {
	t.Helper()
	if !idlewait.Supported() {
		t.Skip("connections are not parked on this platform")
	}
	s.attached = workers.Waits{Max: -1}
	return serveWrapped(t, s, func(c net.Conn) net.Conn { return &idlewait.Conn{Conn: c} }, func() { ended.Add(1) })
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// Idle HTTP/2 connections are parked: they hold no goroutine, and each
// is served again when its next stream comes.
func TestParkedConnectionsHoldNoGoroutine(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 200 connections")
	}
	var ended atomic.Int64
	addr := serveParked(t, &Server{Handler: echoHandler}, &ended)
	parked0 := idlewait.Parked()
	before := runtime.NumGoroutine()
	const n = 200
	var clients []*rawClient
	for range n {
		c := dialRaw(t, addr)
		c.get(1)
		if resp := c.await(1); resp.status != 200 {
			t.Fatalf("status %d", resp.status)
		}
		clients = append(clients, c)
	}
	waitFor(t, "every connection parked", func() bool { return idlewait.Parked()-parked0 >= n })
	if d := runtime.NumGoroutine() - before; d > n/10 {
		t.Errorf("%d idle HTTP/2 connections hold %d goroutines, want none each", n, d)
	}
	for i, c := range clients {
		c.get(3)
		if resp := c.await(3); resp.status != 200 || string(resp.body) != "hello from h2server\n" {
			t.Fatalf("connection %d, second stream: %d %q", i, resp.status, resp.body)
		}
	}
	for _, c := range clients {
		_ = c.c.Close()
	}
	waitFor(t, "every connection's end", func() bool { return ended.Load() == n })
}

// readToEnd reads frames until the connection ends, and returns the
// GOAWAY frame read, if any.
func readToEnd(c *rawClient) *http2.GoAwayFrame {
	var goaway *http2.GoAwayFrame
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return goaway
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goaway = g
		}
	}
}

// A parked connection's idle timeout sends GOAWAY and ends it, as for
// a connection whose reader waits on a goroutine.
func TestParkedConnectionIdleTimeout(t *testing.T) {
	var ended atomic.Int64
	addr := serveParked(t, &Server{Handler: echoHandler, IdleTimeout: 200 * time.Millisecond}, &ended)
	c := dialRaw(t, addr)
	c.get(1)
	c.await(1)
	if g := readToEnd(c); g == nil || g.ErrCode != http2.ErrCodeNo {
		t.Fatalf("GOAWAY %v, want NO_ERROR", g)
	}
	_ = c.c.Close()
	waitFor(t, "the connection's end", func() bool { return ended.Load() == 1 })
}

// Shutdown sends parked connections GOAWAY and returns once they have
// ended; Close ends them at once.
func TestShutdownAndCloseEndParkedConnections(t *testing.T) {
	for _, how := range []string{"shutdown", "close"} {
		t.Run(how, func(t *testing.T) {
			var ended atomic.Int64
			s := &Server{Handler: echoHandler}
			addr := serveParked(t, s, &ended)
			var clients []*rawClient
			for range 4 {
				c := dialRaw(t, addr)
				c.get(1)
				c.await(1)
				clients = append(clients, c)
			}
			// Each client reads what comes (GOAWAY) and closes at the
			// end, as an HTTP/2 client does.
			for _, c := range clients {
				go func() {
					readToEnd(c)
					_ = c.c.Close()
				}()
			}
			if how == "shutdown" {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := s.Shutdown(ctx); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			} else {
				s.Close()
			}
			waitFor(t, "every connection's end", func() bool { return ended.Load() == 4 })
		})
	}
}

// A parked connection has given its read buffer back to the pool, as
// one waiting on a goroutine gives it back before it waits, and holds no
// read framer and no storage for its empty stream map and control queue.
func TestParkedConnectionHoldsNoReadBuffer(t *testing.T) {
	var ended atomic.Int64
	s := &Server{Handler: echoHandler}
	addr := serveParked(t, s, &ended)
	parked0 := idlewait.Parked()
	// Parked after a request too long for the idle wait's small array,
	// which the read buffer held.
	const n = 20
	for range n {
		c := dialRaw(t, addr)
		c.get(1, "x-pad", strings.Repeat("p", 300))
		c.await(1)
	}
	waitFor(t, "every connection parked", func() bool { return idlewait.Parked()-parked0 >= n })
	s.mu.Lock()
	defer s.mu.Unlock()
	held := 0
	for c := range s.conns {
		if c.br.buf != nil {
			held++
		}
		c.mu.Lock()
		if c.fr != nil || c.streams != nil || c.ctrl != nil {
			t.Errorf("a parked connection holds its read framer %v, stream map %v, control queue %v", c.fr != nil, c.streams != nil, c.ctrl != nil)
		}
		c.mu.Unlock()
	}
	if held > 0 {
		t.Errorf("%d of %d parked connections hold a read buffer", held, len(s.conns))
	}
}

// A parked HTTP/2 connection holds what one waiting on a goroutine holds
// (TestIdleConnectionMemory) less the goroutine.
func TestParkedConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 300 connections")
	}
	if raceEnabled {
		t.Skip("the race detector changes the sizes measured")
	}
	if !idlewait.Supported() {
		t.Skip("connections are not parked on this platform")
	}
	heap, stack := idleConnBytes(t, 300, -1, true)
	t.Logf("per parked HTTP/2 connection: %.0f bytes of heap, %.0f of goroutine stacks (client side included)", heap, stack)
	if heap > 12<<10 {
		t.Errorf("a parked HTTP/2 connection holds %.0f bytes of heap, want at most %d: are its buffers released before it parks?", heap, 12<<10)
	}
	if stack > 512 {
		t.Errorf("parked HTTP/2 connections hold %.0f bytes of goroutine stack each, want none", stack)
	}
}
