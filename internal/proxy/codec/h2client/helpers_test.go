package h2client

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2cServer serves h on a loopback listener as h2c with prior knowledge
// (net/http's own HTTP/2 server), and returns its address.
func h2cServer(t testing.TB, h http.Handler, maxStreams uint32) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols), HTTP2: &http.HTTP2Config{MaxConcurrentStreams: int(maxStreams)}}
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// newTransport returns a Transport that dials plain TCP and counts its
// dials.
func newTransport(t testing.TB, dials *atomic.Int64) *Transport {
	t.Helper()
	tr := &Transport{Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		if dials != nil {
			dials.Add(1)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func newRequest(t *testing.T, method, addr, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// fakeServer is an HTTP/2 server driven frame by frame by a test.
type fakeServer struct {
	t    *testing.T
	ln   net.Listener
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &fakeServer{t: t, ln: ln}
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

// accept takes the next connection, reads the preface and the client's
// SETTINGS, and sends settings (ID, value pairs) and the ACK.
func (s *fakeServer) accept(settings ...http2.Setting) {
	s.t.Helper()
	c, err := s.ln.Accept()
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	s.c = c
	s.fr = http2.NewFramer(c, c)
	s.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	s.enc = hpack.NewEncoder(&s.hbuf)
	buf := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != http2.ClientPreface {
		s.t.Fatalf("preface %q: %v", buf, err)
	}
	if err := s.fr.WriteSettings(settings...); err != nil {
		s.t.Fatal(err)
	}
	if sf, ok := s.next().(*http2.SettingsFrame); !ok || sf.IsAck() {
		s.t.Fatal("client's first frame is not SETTINGS")
	}
	_ = s.fr.WriteSettingsAck()
}

// next reads a frame.
func (s *fakeServer) next() http2.Frame {
	s.t.Helper()
	f, err := s.fr.ReadFrame()
	if err != nil {
		s.t.Fatalf("server read frame: %v", err)
	}
	return f
}

// until reads frames until one satisfies ok, and returns it.
func (s *fakeServer) until(ok func(http2.Frame) bool) http2.Frame {
	s.t.Helper()
	for {
		if f := s.next(); ok(f) {
			return f
		}
	}
}

// request reads frames until a request's HEADERS and returns it.
func (s *fakeServer) request() *http2.MetaHeadersFrame {
	s.t.Helper()
	return s.until(func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok }).(*http2.MetaHeadersFrame)
}

// reset reads frames until RST_STREAM and returns it.
func (s *fakeServer) reset() *http2.RSTStreamFrame {
	s.t.Helper()
	return s.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
}

// headers sends a header block (name, value pairs) on stream id.
func (s *fakeServer) headers(id uint32, end bool, kv ...string) {
	s.t.Helper()
	s.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = s.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	if err := s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: s.hbuf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *fakeServer) data(id uint32, end bool, p []byte) {
	s.t.Helper()
	if err := s.fr.WriteData(id, end, p); err != nil {
		s.t.Fatal(err)
	}
}

// roundTrip runs RoundTrip on a goroutine; the result comes on the
// channel.
func roundTrip(tr *Transport, req *http.Request) <-chan rtResult {
	ch := make(chan rtResult, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		ch <- rtResult{resp, err}
	}()
	return ch
}

type rtResult struct {
	resp *http.Response
	err  error
}
