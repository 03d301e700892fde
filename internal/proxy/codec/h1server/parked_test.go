package h1server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/workers"
	"github.com/meshlens/meshlens/internal/proxy/idlewait"
)

// serveParked serves s's connections detached, each wrapped so that its
// wait for a request parks it (idlewait); ended counts the connections
// that ended.
func serveParked(t *testing.T, s *Server, ended *atomic.Int64) string {
	t.Helper()
	if !idlewait.Supported() {
		t.Skip("connections are not parked on this platform")
	}
	return serveWith(t, s, func(c net.Conn) {
		_ = s.ServeConnDetached(&idlewait.Conn{Conn: c}, func() { ended.Add(1) })
	})
}

// Keep-alive connections waiting for their next request past the
// attached waits are parked: they hold no goroutine, and each is served
// again when its next request comes.
func TestParkedConnectionsHoldNoGoroutine(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 300 connections")
	}
	var ended atomic.Int64
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}), attached: workers.Waits{Max: -1}}
	addr := serveParked(t, s, &ended)
	parked0 := idlewait.Parked()
	before := runtime.NumGoroutine()
	const n = 300
	conns := openIdle(t, addr, n)
	waitUntil(t, "every connection parked", func() bool { return idlewait.Parked()-parked0 >= n })
	if d := runtime.NumGoroutine() - before; d > n/10 {
		t.Errorf("%d idle connections hold %d goroutines, want none each", n, d)
	}
	for _, c := range conns {
		roundTrip(t, c, bufio.NewReader(c))
	}
	for _, c := range conns {
		c.Close()
	}
	waitUntil(t, "every connection ended", func() bool { return ended.Load() == n })
}

// A parked connection ends at its idle timeout, as one waiting on a
// goroutine does: the client reads EOF and the server's done is called.
func TestParkedConnectionIdleTimeout(t *testing.T) {
	var ended atomic.Int64
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		attached: workers.Waits{Max: -1}, IdleTimeout: 300 * time.Millisecond}
	addr := serveParked(t, s, &ended)
	c := openIdle(t, addr, 1)[0]
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read on a parked connection past the idle timeout: %d bytes, %v; want EOF", n, err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", el)
	}
	waitUntil(t, "the connection's end", func() bool { return ended.Load() == 1 })
}

// Shutdown ends parked connections (it sets a past read deadline, which
// wakes them) and returns once they have ended.
func TestShutdownEndsParkedConnections(t *testing.T) {
	var ended atomic.Int64
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		attached: workers.Waits{Max: -1}}
	addr := serveParked(t, s, &ended)
	conns := openIdle(t, addr, 5)
	waitUntil(t, "parked connections", func() bool { return idlewait.Parked() >= 5 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("connection %d after Shutdown: %d bytes, %v; want EOF", i, n, err)
		}
	}
	waitUntil(t, "every connection's end", func() bool { return ended.Load() == 5 })
}

// Close ends parked connections too.
func TestCloseEndsParkedConnections(t *testing.T) {
	var ended atomic.Int64
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		attached: workers.Waits{Max: -1}}
	addr := serveParked(t, s, &ended)
	openIdle(t, addr, 3)
	waitUntil(t, "parked connections", func() bool { return idlewait.Parked() >= 3 })
	s.Close()
	waitUntil(t, "every connection's end", func() bool { return ended.Load() == 3 })
}

// A parked connection holds no buffer, no last request and no response
// header map: the map, grown by the last response's fields, went back to
// the pool with the buffers.
func TestParkedConnectionHoldsNoBuffers(t *testing.T) {
	var ended atomic.Int64
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 12 {
			w.Header().Set(fmt.Sprintf("X-Field-%d", i), "v")
		}
		io.WriteString(w, "ok")
	}), attached: workers.Waits{Max: -1}}
	addr := serveParked(t, s, &ended)
	parked0 := idlewait.Parked()
	const n = 10
	openIdle(t, addr, n)
	waitUntil(t, "every connection parked", func() bool { return idlewait.Parked()-parked0 >= n })
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.bufs != nil || c.w.hdr != nil || c.w.req != nil {
			t.Errorf("a parked connection holds buffers %v, header map %v, request %v", c.bufs != nil, c.w.hdr != nil, c.w.req != nil)
		}
	}
}
