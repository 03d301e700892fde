package h1guard

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a handler that remembers the requests it served.
type recorder struct {
	mu     sync.Mutex
	bodies []string
	tls    []bool
}

func (h *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") == "echo" {
		h.echo(w)
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.bodies = append(h.bodies, r.Method+" "+r.URL.Path+" "+string(b)+trailer(r))
	h.tls = append(h.tls, r.TLS != nil)
	h.mu.Unlock()
	fmt.Fprintf(w, "%s %d", r.URL.Path, len(b))
}

func trailer(r *http.Request) string {
	if v := r.Trailer.Get("X-Sum"); v != "" {
		return " sum=" + v
	}
	return ""
}

// echo switches protocols and echoes what the client sends.
func (h *recorder) echo(w http.ResponseWriter) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	_ = brw.Flush()
	_, _ = io.Copy(c, brw)
}

func (h *recorder) served() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// serve runs an http.Server on a loopback listener wrapped by Listen
// (unless raw) and returns its address.
func serve(t *testing.T, h http.Handler, raw bool, rejects *atomic.Int32) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sln net.Listener = ln
	if !raw {
		sln = Listen(ln, Options{OnReject: func(net.Conn, error) { rejects.Add(1) }})
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: protos, ReadHeaderTimeout: 5 * time.Second, ErrorLog: discardLog()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(sln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// exchange writes raw to a new connection and reads responses until the
// server closes it or n responses have arrived.
func exchange(t *testing.T, addr, raw string, n int) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readResponses(t, bufio.NewReader(c), n)
}

func readResponses(t *testing.T, br *bufio.Reader, n int) []*http.Response {
	t.Helper()
	var out []*http.Response
	for len(out) < n {
		res, err := http.ReadResponse(br, nil)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Fatalf("response %d: %v", len(out)+1, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, res)
	}
	return out
}

func statuses(rs []*http.Response) []int {
	var s []int
	for _, r := range rs {
		s = append(s, r.StatusCode)
	}
	return s
}

func TestServerRejectsAmbiguousFraming(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, req string }{
		{"CL then TE", "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"TE then CL", "POST /s HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n"},
		{"TE folded into a field", "POST /s HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"TE on HTTP/1.0", "POST /s HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &recorder{}
			var rejects atomic.Int32
			addr := serve(t, h, false, &rejects)
			rs := exchange(t, addr, tc.req, 2)
			if got := statuses(rs); len(got) != 1 || got[0] != http.StatusBadRequest {
				t.Fatalf("statuses %v, want one 400 and a closed connection", got)
			}
			if s := h.served(); len(s) != 0 {
				t.Errorf("handler ran: %q", s)
			}
			if rejects.Load() != 1 {
				t.Errorf("OnReject called %d times", rejects.Load())
			}
		})
	}
}

// TestServerWithoutGuard shows what the guard is for: net/http serves a
// request with both Content-Length and Transfer-Encoding.
func TestServerWithoutGuard(t *testing.T) {
	t.Parallel()
	h := &recorder{}
	addr := serve(t, h, true, nil)
	rs := exchange(t, addr, "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1)
	if got := statuses(rs); len(got) != 1 || got[0] != http.StatusOK || len(h.served()) != 1 {
		t.Fatalf("net/http without the guard: statuses %v, served %q; the premise of this package changed", got, h.served())
	}
}

func TestServerPipelined(t *testing.T) {
	t.Parallel()
	h := &recorder{}
	var rejects atomic.Int32
	addr := serve(t, h, false, &rejects)
	big := strings.Repeat("0123456789abcdef", 4096) // 64 KiB
	stream := "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Sum: 7\r\n\r\n" +
		"POST /4 HTTP/1.1\r\nHost: a\r\nContent-Length: " + itoa(len(big)) + "\r\n\r\n" + big +
		"POST /5 HTTP/1.1\r\nHost: a\r\nContent-Length: " + itoa(len(smuggled)) + "\r\n\r\n" + smuggled +
		"GET /6 HTTP/1.1\r\nHost: a\r\n\r\n" +
		badPlain + // the guard's target, after six good requests
		"GET /never HTTP/1.1\r\nHost: a\r\n\r\n"
	rs := exchange(t, addr, stream, 10)
	want := []int{200, 200, 200, 200, 200, 200, 400}
	if got := statuses(rs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	served := h.served()
	wantServed := []string{"GET /1 ", "POST /2 hello", "POST /3 abcdefg sum=7", "POST /4 " + big, "POST /5 " + smuggled, "GET /6 "}
	if fmt.Sprintf("%q", served) != fmt.Sprintf("%q", wantServed) {
		t.Errorf("served %.300q\nwant %.300q", served, wantServed)
	}
	if rejects.Load() != 1 {
		t.Errorf("OnReject called %d times", rejects.Load())
	}
}

func TestServerSplitWrites(t *testing.T) {
	t.Parallel()
	h := &recorder{}
	var rejects atomic.Int32
	addr := serve(t, h, false, &rejects)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	c.(*net.TCPConn).SetNoDelay(true)
	// The server answers 400 and closes once it has the bad head, so the
	// stream ends there.
	stream := "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok" + strings.TrimSuffix(badPlain, "0\r\n\r\n")
	for i := range len(stream) {
		if _, err := c.Write([]byte{stream[i]}); err != nil {
			t.Fatal(err)
		}
		if i%16 == 0 {
			time.Sleep(time.Millisecond) // let the server read partial heads
		}
	}
	if got := statuses(readResponses(t, bufio.NewReader(c), 3)); fmt.Sprint(got) != "[200 400]" {
		t.Fatalf("statuses %v, want [200 400]", got)
	}
	if s := h.served(); len(s) != 1 {
		t.Errorf("served %q", s)
	}
}

func TestServerExpectContinue(t *testing.T) {
	t.Parallel()
	h := &recorder{}
	var rejects atomic.Int32
	addr := serve(t, h, false, &rejects)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("interim response %q, %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the empty line
		t.Fatal(err)
	}
	io.WriteString(c, "hello")
	if got := statuses(readResponses(t, br, 1)); fmt.Sprint(got) != "[200]" {
		t.Fatalf("statuses %v", got)
	}
	io.WriteString(c, badPlain)
	if got := statuses(readResponses(t, br, 2)); fmt.Sprint(got) != "[400]" {
		t.Fatalf("statuses %v, want [400]", got)
	}
	if s := h.served(); fmt.Sprint(s) != "[POST /e hello]" {
		t.Errorf("served %q", s)
	}
}

func TestServerH2CPriorKnowledge(t *testing.T) {
	t.Parallel()
	h := &recorder{}
	var rejects atomic.Int32
	addr := serve(t, h, false, &rejects)
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: protos}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Post("http://"+addr+"/h2", "text/plain", strings.NewReader("over h2c"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 {
		t.Fatalf("status %d proto %s", res.StatusCode, res.Proto)
	}
	if s := h.served(); fmt.Sprint(s) != "[POST /h2 over h2c]" {
		t.Errorf("served %q", s)
	}
}

func TestServerUpgradePassthrough(t *testing.T) {
	t.Parallel()
	h := &recorder{}
	var rejects atomic.Int32
	addr := serve(t, h, false, &rejects)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /u HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	// Binary frames, then text that would be rejected were it a request.
	payload := "\x82\x85\x01\x02\x03\x04abcde" + badPlain + "\x00\xff"
	io.WriteString(c, payload)
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != payload {
		t.Errorf("echo %q, want %q", got, payload)
	}
	if rejects.Load() != 0 {
		t.Error("rejected tunnel data")
	}
}

// TestServerTLS wires the guard as the proxy does: TLS is terminated
// first, and the handshaken connection is wrapped.
func TestServerTLS(t *testing.T) {
	t.Parallel()
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	cert.Close()
	conf := &tls.Config{Certificates: cert.TLS.Certificates, NextProtos: []string{"http/1.1"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &recorder{}
	var rejects atomic.Int32
	srv := &http.Server{Handler: h, ErrorLog: discardLog()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(&handshakeListener{Listener: ln, conf: conf, opts: Options{OnReject: func(net.Conn, error) { rejects.Add(1) }}})
	}()
	t.Cleanup(func() { _ = srv.Close(); <-done })

	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST /t HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok"+badPlain)
	if got := statuses(readResponses(t, bufio.NewReader(c), 3)); fmt.Sprint(got) != "[200 400]" {
		t.Fatalf("statuses %v, want [200 400]", got)
	}
	if s := h.served(); fmt.Sprint(s) != "[POST /t ok]" {
		t.Errorf("served %q", s)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.tls) != 1 || !h.tls[0] {
		t.Error("Request.TLS not set through the wrapper")
	}
}

// handshakeListener terminates TLS in Accept, then wraps with NewConn.
type handshakeListener struct {
	net.Listener
	conf *tls.Config
	opts Options
}

func (l *handshakeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := tls.Server(c, l.conf)
		if err := tc.Handshake(); err != nil {
			c.Close()
			continue
		}
		return NewConn(tc, l.opts), nil
	}
}

func TestNewConnLeavesTLSBeforeHandshake(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tc := tls.Server(a, &tls.Config{})
	if got := NewConn(tc, Options{}); got != net.Conn(tc) {
		t.Errorf("NewConn wrapped a *tls.Conn before its handshake: %T", got)
	}
}
