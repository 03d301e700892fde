package h1server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// serve runs s on a loopback listener until the test ends and returns its
// address.
func serve(t testing.TB, s *Server) string {
	t.Helper()
	return serveWith(t, s, func(c net.Conn) { _ = s.ServeConn(c) })
}

// serveWith is serve with each accepted connection handed to serveConn.
func serveWith(t testing.TB, s *Server, serveConn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		s.Close()
		wg.Wait()
	})
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
				defer wg.Done()
				serveConn(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// echo answers with the method, target, Host and a digest of the body.
func echo(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	w.Header().Set("Content-Type", "text/plain")
	b := fmt.Sprintf("%s %s %s %d %x %v", r.Method, r.RequestURI, r.Host, n, h.Sum(nil)[:4], err)
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	io.WriteString(w, b)
}

// exchange writes raw on a new connection, closes its write side and
// returns every response that came back, with its body, until EOF.
func exchange(t testing.TB, addr, raw string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		_, _ = io.WriteString(c, raw)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	return readAll(c)
}

func readAll(c net.Conn) []string {
	br := bufio.NewReader(c)
	var out []string
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := fmt.Sprintf("%d %q", resp.StatusCode, b)
		if err != nil {
			s += " (truncated)"
		}
		out = append(out, s)
		if err != nil {
			return out
		}
	}
}

func TestKeepAliveAndPipelining(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: http.HandlerFunc(echo)})
	got := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /b?q=1 HTTP/1.1\r\nHost: y\r\nContent-Length: 3\r\n\r\nabc"+
		"POST /c HTTP/1.1\r\nHost: z\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"+
		"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"+
		"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
	want := []string{
		`200 "GET /a x 0 e3b0c442 <nil>"`,
		`200 "POST /b?q=1 y 3 ba7816bf <nil>"`,
		`200 "POST /c z 3 ba7816bf <nil>"`,
		`200 "GET /d x 0 e3b0c442 <nil>"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestClientReusesConnection(t *testing.T) {
	t.Parallel()
	var conns sync.Map
	s := &Server{Handler: http.HandlerFunc(echo), ConnState: func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Store(c, true)
		}
	}}
	addr := serve(t, s)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for i := range 5 {
		resp, err := client.Post("http://"+addr+"/p", "text/plain", strings.NewReader(strings.Repeat("x", i*10000)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(b), fmt.Sprintf("POST /p %s %d ", addr, i*10000)) {
			t.Fatalf("request %d: %q", i, b)
		}
	}
	n := 0
	conns.Range(func(_, _ any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestResponseFraming(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hello"))
		case "/stream":
			w.Header().Set("Trailer", "X-Sum")
			for i := range 3 {
				fmt.Fprintf(w, "part%d;", i)
				w.(http.Flusher).Flush()
			}
			w.Header().Set(http.TrailerPrefix+"X-Sum", "3")
		case "/empty":
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			if _, err := w.Write([]byte("x")); err != http.ErrBodyNotAllowed {
				panic("body allowed on 204")
			}
		case "/short":
			w.Header().Set("Content-Length", "10")
			w.Write([]byte("abc"))
		case "/long":
			w.Header().Set("Content-Length", "2")
			if _, err := w.Write([]byte("abc")); err != http.ErrContentLength {
				panic("no ErrContentLength")
			}
		case "/split":
			w.Header().Set("X-Bad", "a\r\nInjected: yes")
			w.WriteHeader(http.StatusTeapot)
		case "/abort":
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	})})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(path string) (*http.Response, string, error) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return nil, "", err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b), err
	}
	if resp, b, err := get("/length"); err != nil || b != "hello" || resp.ContentLength != 5 {
		t.Errorf("/length: %q %v", b, err)
	}
	if resp, b, err := get("/stream"); err != nil || b != "part0;part1;part2;" || resp.TransferEncoding[0] != "chunked" || resp.Trailer.Get("X-Sum") != "3" {
		t.Errorf("/stream: %q %v %v", b, err, resp.Trailer)
	}
	if resp, b, err := get("/empty"); err != nil || b != "" || resp.ContentLength != 0 || resp.Header.Get("Date") == "" {
		t.Errorf("/empty: %q %v %d", b, err, resp.ContentLength)
	}
	if resp, _, err := get("/nocontent"); err != nil || resp.StatusCode != 204 {
		t.Errorf("/nocontent: %v", err)
	}
	if resp, b, err := get("/long"); err != nil || b != "ab" || resp.ContentLength != 2 {
		t.Errorf("/long: %q %v", b, err)
	}
	if resp, _, err := get("/split"); err != nil || resp.StatusCode != 418 || resp.Header.Get("Injected") != "" || resp.Header.Get("X-Bad") != "a  Injected: yes" {
		t.Errorf("/split: %v %v", err, resp.Header)
	}
	if _, b, err := get("/short"); err == nil {
		t.Errorf("/short: body %q read whole", b)
	}
	if _, b, err := get("/abort"); err == nil || b != "partial" {
		t.Errorf("/abort: body %q, err %v: want the partial body and an error", b, err)
	}
	// HEAD: the head only, the connection stays usable.
	for range 2 {
		resp, err := client.Head("http://" + addr + "/length")
		if err != nil || resp.ContentLength != 5 {
			t.Fatalf("HEAD: %v", err)
		}
		resp.Body.Close()
	}
	if _, b, err := get("/length"); err != nil || b != "hello" {
		t.Errorf("GET after HEAD: %q %v", b, err)
	}
}

func TestHTTP10(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Write([]byte("streamed"))
			w.(http.Flusher).Flush()
			return
		}
		echo(w, r)
	})})
	// Keep-alive on request, a known length: the connection stays.
	got := exchange(t, addr, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\nGET /c HTTP/1.0\r\n\r\n")
	if len(got) != 2 {
		t.Fatalf("got %q, want two responses", got)
	}
	// Unknown length on HTTP/1.0: the body ends with the connection.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	raw, _ := io.ReadAll(c)
	if s := string(raw); !strings.HasSuffix(s, "\r\n\r\nstreamed") || strings.Contains(s, "chunked") || !strings.Contains(s, "Connection: close") {
		t.Fatalf("raw response %q", s)
	}
}

func TestExpectContinue(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		echo(w, r)
	})})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim response %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "abc")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(b), "POST /up x 3 ") {
		t.Fatalf("body %q", b)
	}
	// Refused without reading the body: no 100, and the connection
	// closes since the client may still send it.
	io.WriteString(c, "POST /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("reject: %v %+v", err, resp)
	}
	// An expectation the server does not know.
	if got := exchange(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: teapot\r\n\r\nx"); len(got) != 1 || !strings.HasPrefix(got[0], "417 ") {
		t.Fatalf("unknown expectation: %q", got)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	refused := make(chan int, 100)
	addr := serve(t, &Server{Handler: http.HandlerFunc(echo), MaxHeaderBytes: 1 << 10,
		OnRefuse: func(_ net.Conn, status int, err error) {
			if err == nil {
				t.Errorf("OnRefuse(%d) without an error", status)
			}
			refused <- status
		}})
	for _, tc := range []struct{ raw, want string }{
		{"GET / HTTP/1.1\r\n\r\n", "400 "},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 "},
		{"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400 "},
		{"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", "400 "},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", "400 "},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", "431 "},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501 "},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", "400 "},
		{"GET / HTTP/3.0\r\nHost: a\r\n\r\n", "505 "},
		{"nonsense\r\n\r\n", "400 "},
	} {
		got := exchange(t, addr, tc.raw)
		if len(got) != 1 || !strings.HasPrefix(got[0], tc.want) {
			t.Errorf("%q: got %q, want one %s", tc.raw, got, tc.want)
		}
		select {
		case status := <-refused:
			if strconv.Itoa(status)+" " != tc.want {
				t.Errorf("%q: OnRefuse(%d), want %s", tc.raw, status, tc.want)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%q: OnRefuse not called", tc.raw)
		}
	}
	for len(refused) > 0 {
		<-refused
	}
	// A refusal names the field and the reason.
	for _, tc := range []struct{ raw, want string }{
		{"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", "Bad Name"},
		{"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", `malformed Host header: \"Host\" = \"a b\"`},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", "Content-Length"},
	} {
		if got := exchange(t, addr, tc.raw); len(got) != 1 || !strings.Contains(got[0], tc.want) {
			t.Errorf("%q: got %q, want a 400 naming %s", tc.raw, got, tc.want)
		}
	}
	// A client that closes mid-line gets a 400, as from net/http; one that
	// closes between requests gets nothing.
	if got := exchange(t, addr, "GET / HTTP/1.1\r\nHo"); len(got) != 1 || !strings.HasPrefix(got[0], "400 ") {
		t.Errorf("partial head: got %q", got)
	}
	if got := exchange(t, addr, ""); len(got) != 0 {
		t.Errorf("no request: got %q", got)
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	for _, raw := range []string{"GET / HTTP/1.1\r\nHo", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		io.WriteString(c, raw)
		got := readAll(c) // until the server closes
		c.Close()
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%q: closed after %s", raw, d)
		}
		// The complete request is answered; the head cut off mid-line
		// by the timeout gets net/http's 400.
		if len(got) != 1 || strings.HasPrefix(got[0], "400 ") == strings.Contains(raw, "\r\n\r\n") {
			t.Errorf("%q: responses %q", raw, got)
		}
	}
}

func TestUnreadBody(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "16")
		w.Write([]byte("ignored the body"))
	})})
	// A short unread body is read and discarded: the connection goes on.
	got := exchange(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"+
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if len(got) != 3 {
		t.Fatalf("got %q: want three responses on one connection", got)
	}
	// A long one closes the connection after the response.
	big := strings.Repeat("x", maxDrain+1)
	got = exchange(t, addr, fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%sGET / HTTP/1.1\r\nHost: x\r\n\r\n", len(big), big))
	if len(got) != 1 {
		t.Fatalf("got %d responses: the connection must close after a response whose long request body was not read", len(got))
	}
}

// TestBodyReadAfterHandler: a goroutine the handler started that reads
// the body after the handler returned gets an error, never the next
// request's bytes.
func TestBodyReadAfterHandler(t *testing.T) {
	t.Parallel()
	late := make(chan error, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/late" {
			go func() {
				time.Sleep(100 * time.Millisecond)
				_, err := r.Body.Read(make([]byte, 10))
				late <- err
			}()
		}
		w.Header().Set("Content-Length", "2")
		w.Write([]byte("ok"))
	})})
	got := exchange(t, addr, "POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	if len(got) != 2 {
		t.Fatalf("got %q", got)
	}
	if err := <-late; err == nil {
		t.Fatal("a late read of a drained body succeeded")
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	started := make(chan struct{}, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		w.Write([]byte("ok"))
	})}
	addr := serve(t, s)
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	ibr := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(ibr, nil); err != nil || resp.Close {
		t.Fatalf("first response: %v", err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_ = busy.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started

	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	// The idle connection closes at once.
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	once.Do(func() { close(release) })
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil || !resp.Close {
		t.Fatalf("busy connection: %v, close %v: want a response with Connection: close", err, resp != nil && resp.Close)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// New connections are refused.
	if got := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); len(got) != 0 {
		t.Fatalf("after Shutdown: %q", got)
	}
}

func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	defer close(block)
	started := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		io.Copy(io.Discard, r.Body) // unblocked by the forced close
		<-block
	})}
	addr := serve(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("connection not closed: %v", err)
	}
}

// TestCloseCancelsRequests: a handler waiting on its request's context is
// released when the server closes the connection.
func TestCloseCancelsRequests(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	released := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		close(released)
	})}
	addr := serve(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	s.Close()
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not released by Close")
	}
}

// TestHangupCancelsRequest: a client that closes its connection while its
// request waits in the handler has the request's context cancelled.
func TestHangupCancelsRequest(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	released := make(chan error, 1)
	s := &Server{HangupCheck: 50 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			return
		}
		close(entered)
		select {
		case <-r.Context().Done():
			released <- nil
		case <-time.After(10 * time.Second):
			released <- fmt.Errorf("not cancelled")
		}
	})}
	addr := serve(t, s)
	// A slow request on a connection that stays open is not cancelled.
	c0, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c0.Close()
	io.WriteString(c0, "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	time.Sleep(200 * time.Millisecond) // several looks at an open connection
	select {
	case err := <-released:
		t.Fatalf("released while the client was connected: %v", err)
	default:
	}
	c.Close()
	if err := <-released; err != nil {
		t.Fatal(err)
	}
}

// A handler that hijacks gets the connection with the bytes the client
// sent after its head, writes raw, and the server leaves the connection
// alone: a Shutdown does not wait for it.
func TestHijack(t *testing.T) {
	t.Parallel()
	hijacked := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		if _, _, err := w.(http.Hijacker).Hijack(); err != http.ErrHijacked {
			t.Errorf("second Hijack: %v, want ErrHijacked", err)
		}
		if _, err := w.Write([]byte("x")); err != http.ErrHijacked {
			t.Errorf("Write after Hijack: %v, want ErrHijacked", err)
		}
		close(hijacked)
		go func() {
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			// Echo lines until the client closes.
			for {
				line, err := brw.ReadString('\n')
				if err != nil {
					return
				}
				brw.WriteString("echo " + line)
				brw.Flush()
			}
		}()
	})}
	addr := serve(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The first line goes with the head, so the server has it buffered.
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nfirst\n"); err != nil {
		t.Fatal(err)
	}
	<-hijacked
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown waited for a hijacked connection: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("response %v, %v", resp, err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"echo first\n", "echo second\n"} {
		if want == "echo second\n" {
			io.WriteString(c, "second\n")
		}
		got, err := br.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
}

// A refused head followed by input the server has not read (more than
// an idle connection's first read) gets its whole answer and a clean
// end: the server half-closes and waits before it closes, as it does
// after a 431, instead of closing with input unread, which resets the
// connection and can destroy the answer before the client reads it.
func TestRefusalWithUnreadInputEndsCleanly(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: http.HandlerFunc(echo)})
	for _, raw := range []string{
		"GET / HTTP/0.9\r\nHost: a\r\n\r\n" + strings.Repeat("x", 2*firstRead),
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + strings.Repeat("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 60),
	} {
		for i := range 20 {
			got := exchange(t, addr, raw)
			if len(got) != 1 || strings.HasSuffix(got[0], "(truncated)") || !strings.HasPrefix(got[0], "40") && !strings.HasPrefix(got[0], "50") {
				t.Fatalf("%.30q, try %d: got %q, want one whole refusal", raw, i, got)
			}
		}
	}
}
