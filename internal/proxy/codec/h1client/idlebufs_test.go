package h1client

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// An idle pooled connection holds no buffers: they go back to bufPool as
// it joins the idle pool (after a request with a body too, whose copy
// buffer goes with them) and come back when it carries the next request,
// on the same connection.
func TestIdleConnectionHoldsNoBuffers(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	tr, dials := testTransport()
	u, _ := url.Parse(s.URL)
	for i := range 4 {
		var body io.Reader
		method := "GET"
		if i%2 == 1 {
			method, body = "POST", strings.NewReader(strings.Repeat("x", 3000))
		}
		req, _ := http.NewRequest(method, s.URL+"/", body)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (i%2 == 1 && len(b) != 3000) {
			t.Fatalf("request %d: %d, %d bytes", i, resp.StatusCode, len(b))
		}
		waitIdle(t, tr, u.Host, 1)
		p := tr.pool(u.Host)
		p.mu.Lock()
		c := p.idle[0]
		held := c.bufs != nil || c.br != nil || c.bw != nil || c.wbuf != nil
		p.mu.Unlock()
		if held {
			t.Fatalf("after request %d: the idle connection holds its buffers", i)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1: the connection was not reused", n)
	}
}

// An idle connection whose upstream sent bytes nobody asked for after it
// went idle (its buffers back in the pool) is not reused for a request
// with a body: the probe finds the bytes at the socket, and the request
// goes on a fresh connection, answered in full.
func TestUnsolicitedBytesOnIdleConnection(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(first bool) {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				if first {
					time.Sleep(20 * time.Millisecond)
					_, _ = io.WriteString(c, "HTTP/1.1 500 Stray\r\nContent-Length: 0\r\n\r\n")
				}
				_, _ = br.ReadByte() // until the client closes
			}(n == 0)
		}
	}()
	tr, dials := testTransport()
	url := "http://" + ln.Addr().String() + "/"
	get(t, tr, url)
	time.Sleep(100 * time.Millisecond)
	resp, body := do(t, tr, "POST", url, strings.NewReader("data"))
	if resp.StatusCode != 200 || body != "ok" || dials.Load() != 2 {
		t.Fatalf("POST after unsolicited bytes on the idle connection: %d %q, %d dials", resp.StatusCode, body, dials.Load())
	}
}
