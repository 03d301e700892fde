package h2client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
)

// readyBody is a request body that has arrived whole or in part: ReadReady
// hands over ready, then says EOF (whole) or nothing yet (partial); Read
// serves rest, and counts its calls.
type readyBody struct {
	ready, rest []byte
	whole       bool
	reads       atomic.Int64
}

func (b *readyBody) ReadReady(p []byte) (int, error) {
	if len(b.ready) > 0 {
		n := copy(p, b.ready)
		b.ready = b.ready[n:]
		return n, nil
	}
	if b.whole {
		return 0, io.EOF
	}
	return 0, nil
}

func (b *readyBody) Read(p []byte) (int, error) {
	b.reads.Add(1)
	if len(b.ready) > 0 {
		return 0, errors.New("Read before ReadReady's bytes were taken")
	}
	if len(b.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	return n, nil
}

func (b *readyBody) Close() error { return nil }

// writeCounter counts the writes of the connections a Transport dials.
type writeCounter struct {
	net.Conn
	writes *atomic.Int64
}

func (w writeCounter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	return w.Conn.Write(p)
}

func echoServer(t *testing.T) string {
	return h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(w, r.Body)
	}), 100)
}

func countingTransport(t *testing.T, writes *atomic.Int64) *Transport {
	tr := &Transport{Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{c, writes}, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func roundTripBody(t *testing.T, tr *Transport, addr string, body io.ReadCloser) []byte {
	t.Helper()
	req := newRequest(t, http.MethodPost, addr, "/", nil)
	req.Body = body
	req.ContentLength = -1
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A body that has all arrived is sent with the head in one write, by the
// caller: the body's Read is never called (no pump reads it).
func TestWholeReadyBodyGoesWithTheHeadInOneWrite(t *testing.T) {
	addr := echoServer(t)
	var writes atomic.Int64
	tr := countingTransport(t, &writes)
	roundTripBody(t, tr, addr, &readyBody{ready: []byte("warm"), whole: true}) // the connection's preface and settings
	want := bytes.Repeat([]byte("x"), 1000)
	b := &readyBody{ready: append([]byte(nil), want...), whole: true}
	before := writes.Load()
	got := roundTripBody(t, tr, addr, b)
	if !bytes.Equal(got, want) {
		t.Fatalf("echo: %d bytes, want %d", len(got), len(want))
	}
	if n := b.reads.Load(); n != 0 {
		t.Errorf("Read called %d times for a body that had all arrived", n)
	}
	if n := writes.Load() - before; n != 1 {
		t.Errorf("the request took %d writes, want 1 (head, data and END_STREAM together)", n)
	}
}

// A body that has partly arrived sends what is there, and the rest is
// read (Read) and sent as it comes.
func TestPartReadyBodyIsPumpedOn(t *testing.T) {
	addr := echoServer(t)
	tr := countingTransport(t, new(atomic.Int64))
	b := &readyBody{ready: []byte("first part, "), rest: []byte("then the rest")}
	got := roundTripBody(t, tr, addr, b)
	if string(got) != "first part, then the rest" {
		t.Fatalf("echo %q", got)
	}
	if b.reads.Load() == 0 {
		t.Error("the rest of the body was not read")
	}
}

// An empty body that has ended sends END_STREAM with the head.
func TestEmptyReadyBody(t *testing.T) {
	addr := echoServer(t)
	tr := countingTransport(t, new(atomic.Int64))
	b := &readyBody{whole: true}
	if got := roundTripBody(t, tr, addr, b); len(got) != 0 {
		t.Fatalf("echo %q", got)
	}
	if b.reads.Load() != 0 {
		t.Error("Read called for an empty body that had ended")
	}
}

// A response whose head, data and trailers arrive in one read wakes
// RoundTrip once, with all of it in: when RoundTrip returns, the body
// and the end of the stream are buffered already.
func TestResponseThatArrivesTogetherWakesOnce(t *testing.T) {
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	ch := roundTrip(tr, newRequest(t, http.MethodGet, srv.addr(), "/", nil))
	srv.accept()
	id := srv.request().StreamID
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	block := func(kv ...string) []byte {
		srv.hbuf.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			_ = srv.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return append([]byte(nil), srv.hbuf.Bytes()...)
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(":status", "200"), EndHeaders: true})
	_ = fr.WriteData(id, false, []byte("all of it"))
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block("grpc-status", "0"), EndHeaders: true, EndStream: true})
	if _, err := srv.c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	res := <-ch
	if res.err != nil {
		t.Fatal(res.err)
	}
	s := res.resp.Body.(*body).s
	s.c.mu.Lock()
	in, ended := string(s.in.Bytes()), s.recvClosed
	s.c.mu.Unlock()
	if in != "all of it" || !ended {
		t.Fatalf("when RoundTrip returned: body %q buffered, ended %v; want all of it and the end", in, ended)
	}
	b, err := io.ReadAll(res.resp.Body)
	if err != nil || string(b) != "all of it" || res.resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("body %q, %v, trailer %v", b, err, res.resp.Trailer)
	}
}

// failingConn fails its writes while fail is set.
type failingConn struct {
	net.Conn
	fail *atomic.Bool
}

func (f failingConn) Write(p []byte) (int, error) {
	if f.fail.Load() {
		return 0, errors.New("write refused")
	}
	return f.Conn.Write(p)
}

// A request written on its own goroutine whose write fails ends in an
// error (not a wait), the connection is given up, and the next request
// goes out on a new one.
func TestInlineWriteFailureEndsTheAttempt(t *testing.T) {
	addr := echoServer(t)
	var fail atomic.Bool
	var dials atomic.Int64
	tr := &Transport{Dial: func(ctx context.Context, a string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			return nil, err
		}
		return failingConn{c, &fail}, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	if got := roundTripBody(t, tr, addr, &readyBody{ready: []byte("one"), whole: true}); string(got) != "one" {
		t.Fatalf("first echo %q", got)
	}
	fail.Store(true)
	req := newRequest(t, http.MethodPost, addr, "/", nil)
	req.Body, req.ContentLength = &readyBody{ready: []byte("two"), whole: true}, -1
	done := make(chan error, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a request whose write failed succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request whose write failed still waits")
	}
	fail.Store(false)
	if got := roundTripBody(t, tr, addr, &readyBody{ready: []byte("three"), whole: true}); string(got) != "three" {
		t.Fatalf("third echo %q", got)
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials, want 2 (the failed connection replaced once)", n)
	}
}

// A PING that comes with a response (as a gRPC server's flow-control
// estimator sends one) is acknowledged with the next request, in its
// write; a PING with no request after it is acknowledged alone after
// h2frame.AckDelay.
func TestPingAckGoesWithTheNextRequest(t *testing.T) {
	srv := newFakeServer(t)
	var writes atomic.Int64
	tr := countingTransport(t, &writes)
	ch := roundTrip(tr, newRequest(t, http.MethodGet, srv.addr(), "/", nil))
	srv.accept()
	// answer answers stream id, PINGs with data right after, and waits
	// for the round trip; it returns when the PING was sent.
	answer := func(id uint32, data byte) time.Time {
		t.Helper()
		srv.headers(id, true, ":status", "200")
		at := time.Now()
		if err := srv.fr.WritePing(false, [8]byte{data}); err != nil {
			t.Fatal(err)
		}
		res := <-ch
		if res.err != nil {
			t.Fatal(res.err)
		}
		_ = res.resp.Body.Close()
		return at
	}
	pinged := answer(srv.request().StreamID, 5)
	// The client's SETTINGS ACK went with the first request (the
	// connection reads the server's SETTINGS before its first stream).
	before := writes.Load()
	ch = roundTrip(tr, newRequest(t, http.MethodGet, srv.addr(), "/", nil))
	f := srv.next()
	if p, ok := f.(*http2.PingFrame); !ok || !p.IsAck() || p.Data != [8]byte{5} {
		t.Fatalf("frame before the second request %v, want the PING's acknowledgement", f)
	}
	id := srv.request().StreamID
	if n := writes.Load() - before; n != 1 && time.Since(pinged) < h2frame.AckDelay {
		t.Errorf("acknowledgement and request took %d writes, want 1", n)
	}
	start := answer(id, 6)
	srv.until(func(f http2.Frame) bool {
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck() && p.Data == [8]byte{6}
	})
	if d := time.Since(start); d < h2frame.AckDelay {
		t.Errorf("a lone PING acknowledged after %v, before h2frame.AckDelay", d)
	}
}

// A server that sends PINGs faster than their acknowledgements can be
// written, past the control-frame limit (acknowledgements waiting count
// with it), gets GOAWAY ENHANCE_YOUR_CALM and the request in flight
// fails: the connection does not queue acknowledgements without bound.
func TestPingFloodEndsTheConnection(t *testing.T) {
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	ch := roundTrip(tr, newRequest(t, http.MethodGet, srv.addr(), "/", nil))
	srv.accept()
	srv.request()
	// Many times the limit in one write: read faster than AckDelay lets
	// the acknowledgements go, even on a slow machine.
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	for i := range 20 * maxCtrlQueued {
		_ = fr.WritePing(false, [8]byte{byte(i), byte(i >> 8)})
	}
	if _, err := srv.c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	g := srv.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if g.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", g.ErrCode)
	}
	if res := <-ch; res.err == nil {
		res.resp.Body.Close()
		t.Error("the request in flight on a flooded connection succeeded")
	}
}
