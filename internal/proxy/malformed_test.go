package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange sends raw bytes on a new connection and reads one response.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestMalformedRequestsNeverReachUpstream sends what net/http's server
// must reject and checks the status and that the application saw nothing.
func TestMalformedRequestsNeverReachUpstream(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	p := startProxy(t, Config{MaxRequestHeaderBytes: 8 << 10})
	mustApply(t, p, outbound(xCluster("cds_app", up.Addr())).snap(t))
	addr := addrOf(t, p, egressName, 0)

	for _, tc := range []struct {
		name string
		raw  string
		code int
	}{
		{"space in header name", "GET / HTTP/1.1\r\nHost: greeting.demo.local\r\nBad Header: x\r\n\r\n", 400},
		{"NUL in header value", "GET / HTTP/1.1\r\nHost: greeting.demo.local\r\nX-A: a\x00b\r\n\r\n", 400},
		{"CR in header value", "GET / HTTP/1.1\r\nHost: greeting.demo.local\r\nX-A: a\rb\r\n\r\n", 400},
		{"two different Content-Length", "POST / HTTP/1.1\r\nHost: greeting.demo.local\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"bad Content-Length", "POST / HTTP/1.1\r\nHost: greeting.demo.local\r\nContent-Length: 3x\r\n\r\nabc", 400},
		{"unsupported Transfer-Encoding", "POST / HTTP/1.1\r\nHost: greeting.demo.local\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
		{"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"no Host on HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"oversized headers", "GET / HTTP/1.1\r\nHost: greeting.demo.local\r\nX-Big: " + strings.Repeat("a", 32<<10) + "\r\n\r\n", 431},
		{"bad request line", "GET /\x7f HTTP/1.1 extra\r\nHost: greeting.demo.local\r\n\r\n", 400},
		{"Content-Length and chunked", "POST / HTTP/1.1\r\nHost: greeting.demo.local\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
		{"chunked and Content-Length", "POST / HTTP/1.1\r\nHost: greeting.demo.local\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding on HTTP/1.0", "POST / HTTP/1.0\r\nHost: greeting.demo.local\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := rawExchange(t, addr, tc.raw)
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
		})
	}
	if n := up.count.Load(); n != 0 {
		t.Errorf("upstream saw %d malformed requests", n)
	}

	// A smuggling attempt after a good request on one connection: the
	// first is served, the ambiguous one gets a 400 and the connection
	// closes, so neither it nor what it hides reaches the application.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conn, "GET /first HTTP/1.1\r\nHost: greeting.demo.local\r\n\r\n"+
		"POST / HTTP/1.1\r\nHost: greeting.demo.local\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: elsewhere.local\r\n\r\n")
	br := bufio.NewReader(conn)
	for i, want := range []int{200, 400} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("response %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
	if _, err := http.ReadResponse(br, nil); err == nil {
		t.Errorf("the connection stayed open after the 400")
	}
	if seen := up.Seen(); len(seen) != 1 || seen[0].Path != "/first" {
		t.Fatalf("upstream saw %+v, want only GET /first", seen)
	}
	// Every refusal is a downstream protocol error: the 13 above and the
	// smuggling attempt.
	if got := statValue(t, p, "http.egress.downstream_cx_protocol_error"); got != 14 {
		t.Errorf("downstream_cx_protocol_error %d, want 14", got)
	}
}

// TestSlowClientHeaderTimeout: half a header line, then silence: the
// connection is closed after HeaderReadTimeout, and a listener inspector
// waiting for bytes gives up too.
func TestSlowClientHeaderTimeout(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	x := outbound(xCluster("cds_app", up.Addr()))
	withHTTPInspector(x.listeners[0])
	p := startProxy(t, Config{HeaderReadTimeout: 200 * time.Millisecond})
	mustApply(t, p, x.snap(t))
	for _, partial := range []string{"GET / HTTP/1.1\r\nHost: gree", "GE", ""} {
		conn, err := net.Dial("tcp", addrOf(t, p, egressName, 0))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, partial)
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(conn)
		conn.Close()
		if err != nil {
			t.Errorf("%q: connection not closed by the proxy: %v", partial, err)
		}
		// Inspection (up to the timeout) plus header reading (the same).
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%q: closed after %s, want about 2x200ms", partial, d)
		}
	}
	if n := up.count.Load(); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}
}
