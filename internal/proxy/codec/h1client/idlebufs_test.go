package h1client

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
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
