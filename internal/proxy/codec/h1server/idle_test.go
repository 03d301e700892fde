package h1server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/workers"
	"github.com/meshlens/meshlens/internal/proxy/codec/workers/workerstest"
)

// idleConnBytes opens n keep-alive connections to a server, sends one
// request on each and reads its response, and returns the heap and
// goroutine stack memory per connection that the idle connections hold
// (client and server side together: the client side is a socket and its
// descriptor, a few hundred bytes).
func idleConnBytes(t testing.TB, n int) float64 {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	})}
	addr := serve(t, s)
	before := inUse()
	conns := openIdle(t, addr, n)
	after := inUse()
	runtime.KeepAlive(conns)
	return float64(after-before) / float64(n)
}

// openIdle opens n keep-alive connections to addr, each after one
// answered request, closed when the test ends.
func openIdle(t testing.TB, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 64), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	return conns
}

// inUse is the heap and goroutine stack memory in use after a collection.
func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// TestIdleConnectionHoldsNoBuffers checks that a keep-alive connection
// waiting for its next request holds no read or write buffer, nor its
// last request: its cost is the goroutine's stack and the socket, under
// 10 KiB with the client's side. With its buffers (4 KiB each way) and
// last request it held 12.5 to 16.5 KiB.
func TestIdleConnectionHoldsNoBuffers(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 500 connections")
	}
	if raceEnabled {
		t.Skip("the race detector changes the sizes measured")
	}
	per := idleConnBytes(t, 500)
	t.Logf("%.0f bytes per idle keep-alive connection (heap and stacks, client side included)", per)
	if per > 10<<10 {
		t.Errorf("an idle keep-alive connection holds %.0f bytes, want at most %d: are its buffers released between requests?", per, 10<<10)
	}
}

// BenchmarkIdleConnections reports the heap and stack memory per idle
// keep-alive connection, over 5000 connections.
func BenchmarkIdleConnections(b *testing.B) {
	for range b.N {
		b.ReportMetric(idleConnBytes(b, 5000), "B/idle-conn")
	}
}

// serveOne serves one connection with s, wrapped by wrap, and returns
// the client's end and a channel closed when ServeConn has returned.
func serveOne(t *testing.T, s *Server, wrap func(net.Conn) net.Conn) (net.Conn, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = s.ServeConn(wrap(c))
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c, done
}

// deadlineConn counts the read deadlines set on a connection.
type deadlineConn struct {
	net.Conn
	n *atomic.Int64
}

func (d deadlineConn) SetReadDeadline(t time.Time) error {
	d.n.Add(1)
	return d.Conn.SetReadDeadline(t)
}

// TestOneDeadlinePerRequest checks that a kept-alive request without a
// body whose head arrives whole costs one read deadline (the wait for it),
// not three (the wait, the head, and clearing it for the handler): each
// is a runtime timer update.
func TestOneDeadlinePerRequest(t *testing.T) {
	var n atomic.Int64
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	})}
	c, done := serveOne(t, s, func(c net.Conn) net.Conn { return deadlineConn{c, &n} })
	br := bufio.NewReader(c)
	const requests = 20
	for range requests {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	c.Close()
	<-done
	// The first request: its wait and clearing it; then one per request,
	// and one for the wait that ends with the close.
	if got, want := n.Load(), int64(2+requests); got > want {
		t.Errorf("%d read deadlines set for %d requests, want at most %d", got, requests, want)
	}
}

// readConn counts the reads of a connection that returned bytes.
type readConn struct {
	net.Conn
	n *atomic.Int64
}

func (r readConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if n > 0 {
		r.n.Add(1)
	}
	return n, err
}

// TestOneReadPerRequestHead checks that a kept-alive request whose head
// (here 400 bytes, a mesh call's size with its trace context) arrives
// whole is read with one read of the connection, though the connection
// held no buffer while it waited; and that a head longer than the idle
// wait's array is read whole too.
func TestOneReadPerRequestHead(t *testing.T) {
	var n atomic.Int64
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(r.Header.Get("X-Pad"))))
		io.WriteString(w, r.Header.Get("X-Pad"))
	})}
	c, done := serveOne(t, s, func(c net.Conn) net.Conn { return readConn{c, &n} })
	br := bufio.NewReader(c)
	exchange := func(pad string) {
		t.Helper()
		head := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad + "\r\n\r\n"
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != pad {
			t.Fatalf("response %q, %v; want the %d-byte X-Pad back", b, err, len(pad))
		}
	}
	const requests = 20
	pad := strings.Repeat("p", 400-len("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n"))
	for range requests {
		exchange(pad)
	}
	if got := n.Load(); got > requests {
		t.Errorf("%d reads for %d requests of 400-byte heads, want one each", got, requests)
	}
	// Longer than firstRead: read in more than one piece, answered whole.
	for _, size := range []int{firstRead - 1, firstRead, firstRead + 1, 3 * firstRead} {
		exchange(strings.Repeat("q", size))
	}
	c.Close()
	<-done
}

// deepStack uses about depth * 256 bytes of stack, as the proxy's request
// path does (connection manager, filters, router, upstream client).
//
//go:noinline
func deepStack(depth int) byte {
	var pad [256]byte
	pad[depth%len(pad)] = byte(depth)
	if depth == 0 {
		return pad[0]
	}
	return deepStack(depth-1) + pad[depth%len(pad)]
}

// idleStackBytes opens n keep-alive connections, served by serveConn
// from a goroutine that is itself some frames deep (as the listener's
// per-connection goroutine is), sends one request on each, whose handler
// grows its goroutine's stack past 8 KiB, and returns the goroutine
// stack memory per idle connection after two collections.
func idleStackBytes(t *testing.T, n int, maxAttached int32, serveConn func(*Server, net.Conn, func())) float64 {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deepStack(48) // 12 KiB
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}), attached: workers.Waits{Max: maxAttached}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() {
		ln.Close()
		s.Close()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				// The accept path's frames: 1.5 KiB.
				var pad [1536]byte
				pad[0] = 1
				serveConn(s, c, wg.Done)
				runtime.KeepAlive(pad)
			}()
		}
	}()
	stacks := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.StackInuse
	}
	before := stacks()
	conns := openIdle(t, ln.Addr().String(), n)
	after := stacks()
	runtime.KeepAlive(conns)
	return float64(after-before) / float64(n)
}

// TestIdleConnectionWaitsOnSmallStack checks that a detached connection
// waiting for its next request does so on a goroutine with the runtime's
// smallest stack (2 KiB), not on the one that served its last request,
// whose stack grew with the request path and is not shrunk while its
// idle frames use more than a quarter of it: 8 KiB per connection here
// with ServeConn.
func TestIdleConnectionWaitsOnSmallStack(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 300 connections")
	}
	if raceEnabled {
		t.Skip("the race detector changes the sizes measured")
	}
	// Without attached waits: every connection waits detached.
	per := idleStackBytes(t, 300, -1, func(s *Server, c net.Conn, done func()) { _ = s.ServeConnDetached(c, done) })
	t.Logf("%.0f bytes of goroutine stack per idle keep-alive connection", per)
	if per > 3<<10 {
		t.Errorf("an idle keep-alive connection holds %.0f bytes of goroutine stack, want at most %d: does it wait on the goroutine that served its request?", per, 3<<10)
	}
}

// TestDetachedRequestsRunOnAWorker checks that the requests of a detached
// connection, after its wait on a fresh goroutine, are served by a worker
// that served an earlier request: its stack has grown already, where a
// fresh goroutine's would grow anew for every request.
// Without attached waits (Max -1), as here, every wait is.
func TestDetachedRequestsRunOnAWorker(t *testing.T) {
	ids := make(chan string, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids <- goroutineID()
	}), attached: workers.Waits{Max: -1}}
	addr := serveWith(t, s, func(c net.Conn) { _ = s.ServeConnDetached(c, nil) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	requestsOnOneGoroutine(t, c, ids, "no worker was reused", func(i int) {
		// The worker waits for the connection's next request (in its
		// select, see workerstest) before the next one is sent.
		waitUntil(t, fmt.Sprintf("one worker waiting after request %d", i), func() bool {
			return s.workers.Waiting() == 1 && workerstest.Selecting()
		})
	})
}

// requestsOnOneGoroutine sends five requests on c, one at a time, and
// fails (saying why) unless the handler, which sends its goroutine's id
// on ids, ran every one on the same goroutine; after runs after each.
func requestsOnOneGoroutine(t *testing.T, c net.Conn, ids <-chan string, why string, after func(i int)) {
	t.Helper()
	br := bufio.NewReader(c)
	var first string
	for i := range 5 {
		roundTrip(t, c, br)
		id := <-ids
		if i == 0 {
			first = id
		} else if id != first {
			t.Fatalf("request %d ran on goroutine %s, request 0 on %s: %s", i, id, first, why)
		}
		after(i)
	}
}

// goroutineID is the id of the calling goroutine, from its stack header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	return id
}

// roundTrip sends a GET on c and reads its answer to the end.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// A detached connection's requests after its first are served by the
// worker that served the first, which waits for each next request on the
// connection: no goroutine started and no worker handed the connection
// per request; when the client closes, the wait ends and frees its place.
// (The wait is waitRequest's, which drops the buffers first, as
// TestIdleConnectionHoldsNoBuffers checks.)
func TestAttachedWaitServesOnItsWorker(t *testing.T) {
	ids := make(chan string, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids <- goroutineID()
	})}
	ended := make(chan struct{})
	addr := serveWith(t, s, func(c net.Conn) { _ = s.ServeConnDetached(c, func() { close(ended) }) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	requestsOnOneGoroutine(t, c, ids, "the connection did not wait on its worker", func(i int) {
		waitUntil(t, "the connection's wait", func() bool { return s.attached.Taken() == 1 })
		if n := s.workers.Waiting(); n != 0 {
			t.Fatalf("after request %d: %d workers wait in the pool, want 0 (the worker waits on the connection)", i, n)
		}
	})
	c.Close()
	<-ended
	waitUntil(t, "the wait to end", func() bool { return s.attached.Taken() == 0 })
}

// Past attached.Max, connections wait detached, and every connection keeps
// being served.
func TestAttachedWaitsAreBounded(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), attached: workers.Waits{Max: 2}}
	addr := serveWith(t, s, func(c net.Conn) { _ = s.ServeConnDetached(c, nil) })
	var conns []net.Conn
	var brs []*bufio.Reader
	for range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns, brs = append(conns, c), append(brs, bufio.NewReader(c))
	}
	for round := range 3 {
		for i, c := range conns {
			roundTrip(t, c, brs[i])
		}
		waitUntil(t, "two attached waits", func() bool { return s.attached.Taken() == 2 })
		time.Sleep(20 * time.Millisecond)
		if n := s.attached.Taken(); n != 2 {
			t.Fatalf("round %d: %d attached waits, want 2", round, n)
		}
	}
}

// Shutdown ends an attached wait as it ends any idle connection's.
func TestShutdownEndsAttachedWait(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	addr := serveWith(t, s, func(c net.Conn) { _ = s.ServeConnDetached(c, nil) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, bufio.NewReader(c))
	waitUntil(t, "the attached wait", func() bool { return s.attached.Taken() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after Shutdown: %d bytes, %v; want EOF", n, err)
	}
	waitUntil(t, "the wait to end", func() bool { return s.attached.Taken() == 0 })
}
