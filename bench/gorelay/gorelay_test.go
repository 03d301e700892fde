package gorelay

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// startRelay runs a relay to upstream on a loopback port until the test
// ends.
func startRelay(t *testing.T, upstream string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, upstream) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestRelaysKeepAliveRequests: requests on one connection reach the
// upstream with the request id added, and their responses come back.
func TestRelaysKeepAliveRequests(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path+" "+r.Header.Get("X-Request-Id"))
	}))
	defer up.Close()
	addr := startRelay(t, strings.TrimPrefix(up.URL, "http://"))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, path := range []string{"/a", "/b", "/c"} {
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if want := path + " 00000000-0000-4000-8000-000000000000"; resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("%s: %d %q, want 200 %q", path, resp.StatusCode, body, want)
		}
	}
}

// TestAnswersWhatItCannotRelay: a request with a body, a malformed
// length, an unreachable upstream and a chunked response each get an
// error status, not silence.
func TestAnswersWhatItCannotRelay(t *testing.T) {
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("a"))
		w.(http.Flusher).Flush()
		w.Write([]byte("b"))
	}))
	defer chunked.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	for _, tc := range []struct {
		name, upstream, req string
		want                int
	}{
		{"body", strings.TrimPrefix(chunked.URL, "http://"), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 400},
		{"bad length", strings.TrimPrefix(chunked.URL, "http://"), "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", 400},
		{"chunked request", strings.TrimPrefix(chunked.URL, "http://"), "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"head too large", strings.TrimPrefix(chunked.URL, "http://"), "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", 400},
		{"upstream down", deadAddr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502},
		{"chunked response", strings.TrimPrefix(chunked.URL, "http://"), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startRelay(t, tc.upstream)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.req)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want || !resp.Close {
				t.Fatalf("status %d close %v, want %d and close", resp.StatusCode, resp.Close, tc.want)
			}
		})
	}
}

// FuzzContentLength: any head gets an answer, never a panic, and a
// length it accepts is not negative.
func FuzzContentLength(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\ncontent-length: 1\r\nContent-Length: 1\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, head []byte) {
		if n, ok := contentLength(head); ok && n < 0 {
			t.Fatalf("length %d accepted", n)
		}
		hasField(head, "transfer-encoding")
	})
}
