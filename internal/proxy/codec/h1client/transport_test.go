package h1client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestKeepAliveReuse(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		fmt.Fprintf(w, "host=%s ua=%q x=%q", r.Host, r.UserAgent(), r.Header["X-Req"])
	})
	tr, dials := testTransport()
	for i := range 10 {
		req, _ := http.NewRequest("GET", s.URL+"/p/a%2Fb?q=1&r=2", nil)
		req.Host = "svc.mesh"
		req.Header.Add("X-Req", "1")
		req.Header.Add("X-Req", "2")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got, want := string(b), `host=svc.mesh ua="" x=["1" "2"]`; got != want {
			t.Fatalf("request %d: body %q, want %q", i, got, want)
		}
		if got := resp.Header.Get("X-Path"); got != "/p/a%2Fb?q=1&r=2" {
			t.Fatalf("target %q", got)
		}
		if got := resp.Header["X-Multi"]; len(got) != 2 || got[1] != "b" {
			t.Fatalf("X-Multi %q", got)
		}
		if resp.ContentLength != int64(len(b)) || resp.Proto != "HTTP/1.1" || resp.Close || resp.Request != req {
			t.Fatalf("response fields: %+v", resp)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
}

func TestParallelReuse(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("x", 1024)) })
	tr, dials := testTransport()
	errc := make(chan error, 8)
	for range 8 {
		go func() {
			for range 50 {
				req, _ := http.NewRequest("GET", s.URL, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errc <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || len(b) != 1024 {
					errc <- fmt.Errorf("body %d bytes, %v", len(b), err)
					return
				}
			}
			errc <- nil
		}()
	}
	for range 8 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if n := dials.Load(); n > 8 {
		t.Fatalf("%d dials for 8 concurrent clients", n)
	}
}

func TestChunkedTrailers(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum, x-count")
		io.WriteString(w, "hello ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "world")
		w.Header().Set("X-Sum", "abc")
		w.Header().Set("X-Count", "2")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	tr, dials := testTransport()
	for range 2 {
		req, _ := http.NewRequest("GET", s.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.ContentLength != -1 {
			t.Fatalf("TransferEncoding %q ContentLength %d", resp.TransferEncoding, resp.ContentLength)
		}
		if v, ok := resp.Trailer["X-Sum"]; !ok || v != nil {
			t.Fatalf("declared trailer before body: %q", resp.Trailer)
		}
		if _, ok := resp.Header["Trailer"]; ok {
			t.Fatal("Trailer left in Header")
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "hello world" {
			t.Fatalf("body %q, %v", b, err)
		}
		resp.Body.Close()
		if resp.Trailer.Get("X-Sum") != "abc" || resp.Trailer.Get("X-Count") != "2" || resp.Trailer.Get("X-Late") != "late" {
			t.Fatalf("trailers %q", resp.Trailer)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
}

func TestNoBodyResponses(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.Header().Set("Etag", `"x"`)
			w.WriteHeader(304)
		default:
			w.Header().Set("Content-Length", "11")
			io.WriteString(w, "hello world")
		}
	})
	tr, dials := testTransport()
	for _, c := range []struct {
		method, path string
		status       int
		cl           int64
	}{{"HEAD", "/", 200, 11}, {"GET", "/204", 204, 0}, {"GET", "/304", 304, 0}, {"GET", "/", 200, 11}, {"HEAD", "/", 200, 11}} {
		resp, body := do(t, tr, c.method, s.URL+c.path, nil)
		if resp.StatusCode != c.status || resp.ContentLength != c.cl || (c.method == "HEAD" && body != "") {
			t.Fatalf("%s %s: status %d, ContentLength %d, body %q", c.method, c.path, resp.StatusCode, resp.ContentLength, body)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
}

func TestCloseDelimitedAndHTTP10(t *testing.T) {
	t.Parallel()
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			head, err := readRequestHead(br)
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(head, "GET /eof "):
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
				return
			case strings.HasPrefix(head, "GET /10 "):
				io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi")
				return
			case strings.HasPrefix(head, "GET /10ka "):
				io.WriteString(c, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi")
			case strings.HasPrefix(head, "GET /close "):
				io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi")
				return
			}
		}
	})
	tr, dials := testTransport()
	for _, c := range []struct {
		path      string
		body      string
		close     bool
		proto     string
		wantDials int64
	}{
		{"/eof", "until close", true, "HTTP/1.1", 1},
		{"/10", "hi", true, "HTTP/1.0", 2},
		{"/close", "hi", true, "HTTP/1.1", 3},
		{"/10ka", "hi", false, "HTTP/1.0", 4},
		{"/10ka", "hi", false, "HTTP/1.0", 4},
		{"/eof", "until close", true, "HTTP/1.1", 4},
		{"/eof", "until close", true, "HTTP/1.1", 5},
	} {
		resp, body := get(t, tr, "http://"+addr+c.path)
		if body != c.body || resp.Close != c.close || resp.Proto != c.proto {
			t.Fatalf("%s: body %q close %v proto %s", c.path, body, resp.Close, resp.Proto)
		}
		if n := dials.Load(); n != c.wantDials {
			t.Fatalf("%s: %d dials, want %d", c.path, n, c.wantDials)
		}
	}
}

func TestInterimResponses(t *testing.T) {
	t.Parallel()
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			head, err := readRequestHead(br)
			if err != nil {
				return
			}
			if strings.Contains(head, "Content-Length: 4") {
				io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
				io.ReadFull(br, make([]byte, 4))
			} else {
				io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr, dials := testTransport()
	resp, body := get(t, tr, "http://"+addr+"/")
	if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("Link") != "" {
		t.Fatalf("after 103: %d %q %q", resp.StatusCode, body, resp.Header)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("data"))
	req.Header.Set("Expect", "100-continue")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("after 100: %d %q", resp.StatusCode, b)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
}

func TestSwitchingProtocols(t *testing.T) {
	t.Parallel()
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequestHead(br)
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, br)
	})
	tr, _ := testTransport()
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != 101 || !ok {
		t.Fatalf("status %d, body %T", resp.StatusCode, resp.Body)
	}
	io.WriteString(rw, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	rw.Close()
}

func TestLargeBodies(t *testing.T) {
	t.Parallel()
	const size = 10 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	sum := sha256.Sum256(data)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x %v %q", n, h.Sum(nil), err, r.TransferEncoding)
			return
		}
		if r.URL.Path == "/chunked" {
			for i := 0; i < size; i += 1 << 20 {
				w.Write(data[i : i+1<<20])
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Write(data)
	})
	tr, dials := testTransport()
	for _, path := range []string{"/", "/chunked"} {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), sum[:]) {
			t.Fatalf("GET %s: %d bytes, %v", path, n, err)
		}
	}
	// Known length, and unknown length (sent chunked).
	for _, cl := range []int64{size, -1} {
		req, _ := http.NewRequest("POST", s.URL, io.MultiReader(bytes.NewReader(data)))
		req.ContentLength = cl
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		te := "[]"
		if cl < 0 {
			te = `["chunked"]`
		}
		if want := fmt.Sprintf("%d %x <nil> %s", size, sum, te); string(b) != want {
			t.Fatalf("POST with ContentLength %d: server saw %q, want %q", cl, b, want)
		}
		waitIdle(t, tr, s.Listener.Addr().String(), 1)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
}

func TestUnknownLengthTrailers(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %q %q", b, r.TransferEncoding, r.Trailer.Get("X-Check"))
	})
	tr, _ := testTransport()
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("part1 "))
		pw.Write([]byte("part2"))
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", s.URL, pr)
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Check": {"ok"}}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `part1 part2 ["chunked"] "ok"`; string(b) != want {
		t.Fatalf("server saw %q, want %q", b, want)
	}
}

// endlessBody is a request body that never ends until closed.
type endlessBody struct {
	closed chan struct{}
	once   atomic.Bool
}

func (e *endlessBody) Read(p []byte) (int, error) {
	select {
	case <-e.closed:
		return 0, errors.New("closed")
	default:
	}
	for i := range p {
		p[i] = 'u'
	}
	return len(p), nil
}

func (e *endlessBody) Close() error {
	if e.once.CompareAndSwap(false, true) {
		close(e.closed)
	}
	return nil
}

func TestEarlyResponseDuringUpload(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		head, err := readRequestHead(br)
		if err != nil {
			return
		}
		if strings.HasPrefix(head, "POST") {
			io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 8\r\n\r\ntoo big!")
			<-hold // never read the upload
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	defer close(hold)
	tr, dials := testTransport()
	body := &endlessBody{closed: make(chan struct{})}
	req, _ := http.NewRequest("POST", "http://"+addr+"/", nil)
	req.Body = body
	req.ContentLength = -1
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Error(err)
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || string(b) != "too big!" || err != nil {
			t.Errorf("got %d %q %v", resp.StatusCode, b, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: no response while the upload was in progress")
	}
	select {
	case <-body.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("request body not closed")
	}
	get(t, tr, "http://"+addr+"/")
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2: the connection of the unfinished upload must not be reused", n)
	}
}

// closingServer answers the first request on each connection, then either
// closes it after the response ("idle") or reads the next request head and
// closes without answering ("reset").
func closingServer(t *testing.T, reset bool) string {
	return rawServer(t, func(c net.Conn, br *bufio.Reader) {
		head, err := readRequestHead(br)
		if err != nil {
			return
		}
		if strings.Contains(head, "Content-Length: ") {
			io.ReadFull(br, make([]byte, 4))
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if reset {
			readRequestHead(br)
		}
	})
}

func TestRetryOnReusedConnection(t *testing.T) {
	t.Parallel()
	for _, reset := range []bool{false, true} {
		addr := closingServer(t, reset)
		tr, dials := testTransport()
		get(t, tr, "http://"+addr+"/")
		if !reset {
			time.Sleep(50 * time.Millisecond) // let the server's FIN arrive
		}
		resp, body := get(t, tr, "http://"+addr+"/")
		if resp.StatusCode != 200 || body != "ok" || dials.Load() != 2 {
			t.Fatalf("reset=%v: GET on a closed idle connection: %d %q, %d dials", reset, resp.StatusCode, body, dials.Load())
		}
	}
}

func TestNoRetryWithBody(t *testing.T) {
	t.Parallel()
	addr := closingServer(t, true)
	tr, dials := testTransport()
	get(t, tr, "http://"+addr+"/")
	req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("data"))
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, ErrNoResponse) {
		t.Fatalf("POST answered by a reset: %v, want ErrNoResponse", err)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials: a request with a body must not be retried", n)
	}
}

func TestProbeBeforeBodyOnClosedIdle(t *testing.T) {
	t.Parallel()
	addr := closingServer(t, false)
	tr, dials := testTransport()
	get(t, tr, "http://"+addr+"/")
	time.Sleep(50 * time.Millisecond)
	resp, body := do(t, tr, "POST", "http://"+addr+"/", strings.NewReader("data"))
	if resp.StatusCode != 200 || body != "ok" || dials.Load() != 2 {
		t.Fatalf("POST after the upstream closed the idle connection: %d %q, %d dials", resp.StatusCode, body, dials.Load())
	}
}

func TestContextCancelDuringBody(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	defer close(block)
	tr, _ := testTransport()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = resp.Body.Read(buf)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel: %v", err)
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(buf); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}

func TestContextCancelBeforeHeaders(t *testing.T) {
	t.Parallel()
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequestHead(br)
		br.ReadByte() // wait for the client to go away
	})
	tr, _ := testTransport()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

func TestMalformedResponses(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"bad status line":         "HTTP/1.1 2OO OK\r\n\r\n",
		"not HTTP":                "SSH-2.0-OpenSSH\r\n\r\n",
		"HTTP/2 status":           "HTTP/2.0 200 OK\r\n\r\n",
		"bad Content-Length":      "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
		"negative Content-Length": "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"conflicting CL":          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"CL and TE":               "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"TE gzip":                 "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"TE on HTTP/1.0":          "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"NUL in value":            "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
		"CR in value":             "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
		"space in name":           "HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 0\r\n\r\n",
		"space before colon":      "HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 0\r\n\r\n",
		"no colon":                "HTTP/1.1 200 OK\r\nX-A b\r\nContent-Length: 0\r\n\r\n",
		"obs-fold":                "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n",
		"empty name":              "HTTP/1.1 200 OK\r\n: b\r\nContent-Length: 0\r\n\r\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
				readRequestHead(br)
				io.WriteString(c, raw)
			})
			tr, _ := testTransport()
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			resp, err := tr.RoundTrip(req)
			if !errors.Is(err, ErrMalformedResponse) {
				if err == nil {
					resp.Body.Close()
				}
				t.Fatalf("got %v, want ErrMalformedResponse", err)
			}
		})
	}
}

func TestMalformedChunks(t *testing.T) {
	t.Parallel()
	for name, raw := range map[string]string{
		"bad size":        "zz\r\nab\r\n0\r\n\r\n",
		"bare LF":         "2\nab\r\n0\r\n\r\n",
		"missing CRLF":    "2\r\nabc\r\n0\r\n\r\n",
		"truncated":       "5\r\nab",
		"huge size":       "ffffffffffffffff\r\n",
		"bad trailer":     "0\r\nX-T\x00: a\r\n\r\n",
		"trailer no crlf": "0\r\nX-T: a\r\n",
	} {
		addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			readRequestHead(br)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+raw)
		})
		tr, _ := testTransport()
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("%s: body read without error", name)
		}
	}
}

func TestResponseHeaderLimit(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("v", 3000)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", big)
	})
	tr, _ := testTransport()
	tr.MaxResponseHeaderBytes = 2048
	tr.ReadBufferSize = 1024 // the field line is longer than the buffer
	req, _ := http.NewRequest("GET", s.URL, nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, ErrMalformedResponse) || !strings.Contains(err.Error(), "MaxResponseHeaderBytes") {
		t.Fatalf("got %v", err)
	}
	tr.MaxResponseHeaderBytes = 4096
	resp, _ := get(t, tr, s.URL)
	if resp.Header.Get("X-Big") != big {
		t.Fatal("long field line not read whole")
	}
}

func TestInvalidRequests(t *testing.T) {
	t.Parallel()
	tr, dials := testTransport()
	for name, mod := range map[string]func(*http.Request){
		"header name":  func(r *http.Request) { r.Header["Bad Name"] = []string{"x"} },
		"header value": func(r *http.Request) { r.Header["X-A"] = []string{"a\r\nInjected: 1"} },
		"NUL value":    func(r *http.Request) { r.Header["X-A"] = []string{"a\x00"} },
		"host":         func(r *http.Request) { r.Host = "a b" },
		"method":       func(r *http.Request) { r.Method = "GE T" },
		"CL no body":   func(r *http.Request) { r.ContentLength = 5 },
		"scheme":       func(r *http.Request) { r.URL.Scheme = "https" },
	} {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:1/", nil)
		mod(req)
		if _, err := tr.RoundTrip(req); err == nil || errors.Is(err, ErrNoResponse) {
			t.Errorf("%s: got %v, want a validation error", name, err)
		}
	}
	_ = dials
}

func TestMaxConnsPerHost(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tr, dials := testTransport()
	tr.MaxConnsPerHost = 1
	req, _ := http.NewRequest("GET", s.URL, nil)
	first, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	// The first body is unread, so its connection is taken.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req2, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	if _, err := tr.RoundTrip(req2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting at the limit: %v", err)
	}
	got := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", s.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	select {
	case v := <-got:
		t.Fatalf("second request did not wait: %q", v)
	case <-time.After(50 * time.Millisecond):
	}
	io.ReadAll(first.Body)
	first.Body.Close()
	if v := <-got; v != "ok" {
		t.Fatalf("second request: %q", v)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
}

func TestIdleConnTimeout(t *testing.T) {
	t.Parallel()
	var closed atomic.Int64
	addr := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		defer closed.Add(1)
		for {
			if _, err := readRequestHead(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr, dials := testTransport()
	tr.IdleConnTimeout = 50 * time.Millisecond
	get(t, tr, "http://"+addr+"/")
	get(t, tr, "http://"+addr+"/")
	if dials.Load() != 1 {
		t.Fatal("connection not reused within the idle timeout")
	}
	waitFor(t, "the idle connection to be closed", func() bool { return closed.Load() == 1 })
	get(t, tr, "http://"+addr+"/")
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2", n)
	}
}

func TestCloseIdleConnections(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tr, dials := testTransport()
	get(t, tr, s.URL)
	tr.CloseIdleConnections()
	get(t, tr, s.URL)
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2", n)
	}
}

func TestCloseUnreadBody(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := 1000
		if r.URL.Path == "/big" {
			n = 4 << 20
		}
		w.Write(bytes.Repeat([]byte("z"), n))
	})
	tr, dials := testTransport()
	for _, path := range []string{"/", "/", "/big", "/"} {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Read(make([]byte, 10))
		resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, errBodyClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	}
	// Small unread bodies are drained and the connection reused; the big
	// one is not.
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2", n)
	}
}

func TestDialErrorAsIs(t *testing.T) {
	t.Parallel()
	want := errors.New("no route")
	tr := &Transport{Dial: func(context.Context, string, string) (net.Conn, error) { return nil, want }}
	req, _ := http.NewRequest("GET", "http://10.0.0.1:80/", nil)
	if _, err := tr.RoundTrip(req); err != want {
		t.Fatalf("got %v", err)
	}
}

// poolCount is how many addresses the transport keeps pools for.
func poolCount(tr *Transport) int {
	n := 0
	tr.pools.Range(func(_, _ any) bool { n++; return true })
	return n
}

// Pools of addresses with no connection left are dropped, so a transport
// that reaches many addresses once (an original-destination cluster)
// does not grow without bound; the next request makes a new pool. The
// pools are counted while a response is still open: a connection in use
// keeps its pool however long the count takes, where an idle one may
// already have expired.
func TestEmptyPoolsAreDropped(t *testing.T) {
	t.Parallel()
	tr, _ := testTransport()
	// Long enough for the five requests to finish before the first
	// connection expires, even on a loaded machine.
	tr.IdleConnTimeout = time.Second
	var urls []string
	for range 5 {
		urls = append(urls, newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }).URL)
	}
	var open []*http.Response
	for _, u := range urls {
		open = append(open, roundTrip(t, tr, u))
	}
	if n := poolCount(tr); n != 5 {
		t.Fatalf("%d pools with a connection in use, want 5", n)
	}
	for _, resp := range open {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	waitFor(t, "the pools to empty and be dropped", func() bool { return poolCount(tr) == 0 })
	resp := roundTrip(t, tr, urls[0])
	if n := poolCount(tr); n != 1 {
		t.Fatalf("%d pools during a new request, want 1", n)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	waitFor(t, "the new pool to be dropped", func() bool { return poolCount(tr) == 0 })

	// CloseIdleConnections drops the pools it empties: on a transport
	// whose idle connections do not expire during the test, so the pool
	// is there until it is called.
	keep, _ := testTransport()
	get(t, keep, urls[0])
	if n := poolCount(keep); n != 1 {
		t.Fatalf("%d pools with an idle connection, want 1", n)
	}
	keep.CloseIdleConnections()
	if n := poolCount(keep); n != 0 {
		t.Fatalf("%d pools after CloseIdleConnections, want 0", n)
	}
	// A connection that fails to dial leaves no pool behind either.
	dead := closedAddr(t)
	req, _ := http.NewRequest(http.MethodGet, "http://"+dead+"/", nil)
	if _, err := keep.RoundTrip(req); err == nil {
		t.Fatal("request to a closed port succeeded")
	}
	if n := poolCount(keep); n != 0 {
		t.Fatalf("%d pools after a failed dial, want 0", n)
	}
}

// roundTrip sends a GET to url and returns the response with its body
// unread: the connection stays in use until the caller closes it.
func roundTrip(t *testing.T, tr *Transport, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// Requests racing with pools being dropped all succeed.
func TestPoolRetirementRace(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tr, _ := testTransport()
	tr.IdleConnTimeout = time.Millisecond
	tr.MaxIdleConnsPerHost = 1
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if rand.IntN(4) == 0 {
					tr.CloseIdleConnections()
				}
			}
		})
	}
	wg.Wait()
}

func closedAddr(t *testing.T) string {
	t.Helper()
	// Bound, never listening, held until the test ends: connections are
	// refused and no other test's listener can be given the port.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
