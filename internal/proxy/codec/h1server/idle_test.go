package h1server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
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
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
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
	after := inUse()
	runtime.KeepAlive(conns)
	return float64(after-before) / float64(n)
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
