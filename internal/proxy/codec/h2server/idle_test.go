package h2server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"

	"github.com/meshlens/meshlens/internal/proxy/codec/workers"
	"github.com/meshlens/meshlens/internal/proxy/idlewait"
)

// memInUse is the heap and goroutine stack memory in use after two
// collections.
func memInUse() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

// idleConnBytes opens n HTTP/2 connections to a server, makes one
// request with a 1 KiB response on each, and returns the heap and
// goroutine stack memory per connection they hold while idle (client
// side included: a socket and its framer, about 1 KiB).
func idleConnBytes(t *testing.T, n int, maxAttached int32, park bool) (heap, stack float64) {
	body := make([]byte, 1<<10)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(body)
	}), attached: workers.Waits{Max: maxAttached}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() {
		_ = ln.Close()
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
				// The listener's accept path: 1.5 KiB of frames.
				var pad [1536]byte
				pad[0] = 1
				if park {
					c = &idlewait.Conn{Conn: c}
				}
				_ = s.ServeConnDetached(c, wg.Done)
				runtime.KeepAlive(pad)
			}()
		}
	}()
	addr := ln.Addr().String()
	h0, s0 := memInUse()
	conns := make([]net.Conn, 0, n)
	for range n {
		rc := dialRaw(t, addr)
		rc.get(1)
		if resp := rc.await(1); resp.status != 200 || len(resp.body) != len(body) {
			t.Fatalf("response %d with %d bytes, want 200 with %d", resp.status, len(resp.body), len(body))
		}
		conns = append(conns, rc.c)
	}
	h1, s1 := memInUse()
	runtime.KeepAlive(conns)
	return (float64(h1) - float64(h0)) / float64(n), (float64(s1) - float64(s0)) / float64(n)
}

// TestIdleConnectionMemory checks what a detached HTTP/2 connection
// with no stream open holds: no read buffer, write buffer or write framer
// (they come from pools while frames are read and written), no writer
// goroutine, and a reader goroutine with the runtime's smallest stack.
func TestIdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 300 connections")
	}
	if raceEnabled {
		t.Skip("the race detector changes the sizes measured")
	}
	// Without attached waits: every reader waits on a fresh goroutine.
	heap, stack := idleConnBytes(t, 300, -1, false)
	t.Logf("per idle HTTP/2 connection: %.0f bytes of heap, %.0f of goroutine stacks (client side included)", heap, stack)
	// With its 16 KiB read buffer and its write batch it held 27 KiB of
	// heap; without, about 8 KiB, 2 of it the client's side.
	if heap > 12<<10 {
		t.Errorf("an idle HTTP/2 connection holds %.0f bytes of heap, want at most %d: are its read and write buffers released, its last stream forgotten?", heap, 12<<10)
	}
	// A reader on the accept path's goroutine and a writer goroutine
	// held 8 KiB of stacks.
	if stack > 3<<10 {
		t.Errorf("an idle HTTP/2 connection holds %.0f bytes of goroutine stacks, want at most %d: does it wait on a fresh reader goroutine, with no writer?", stack, 3<<10)
	}
}

// A detached connection's reader waits for the client's next request on
// the goroutine that read the last one, for up to attached.Max
// connections; the others wait on fresh goroutines; all are served, and
// Shutdown ends the attached waits as the others.
func TestAttachedReaderWaits(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), attached: workers.Waits{Max: 2}}
	addr := serve(t, s)
	var clients []*rawClient
	for range 4 {
		clients = append(clients, dialRaw(t, addr))
	}
	attached := func(want int32) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d attached waits", want), func() bool { return s.attached.Taken() == want })
	}
	for round := range 3 {
		id := uint32(2*round + 1)
		for i, c := range clients {
			c.get(id)
			if resp := c.await(id); resp.status != 200 || string(resp.body) != "ok" {
				t.Fatalf("round %d, client %d: %d %q", round, i, resp.status, resp.body)
			}
		}
		attached(2)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	attached(0)
}
