package h2server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
	"github.com/meshlens/meshlens/internal/stats"
)

// Malformed requests cost their stream only (RST_STREAM PROTOCOL_ERROR)
// and the connection serves the next one; well-formed neighbours of
// each case are answered.
func TestMalformedRequestIsAStreamError(t *testing.T) {
	t.Parallel()
	st := newTestStats(t)
	addr := serve(t, &Server{Handler: echoHandler, Stats: st})
	base := []string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "x"}
	cases := []struct {
		name   string
		fields []string
		ok     bool
	}{
		{"connection header", append(base, "connection", "keep-alive"), false},
		{"keep-alive header", append(base, "keep-alive", "5"), false},
		{"proxy-connection header", append(base, "proxy-connection", "close"), false},
		{"transfer-encoding header", append(base, "transfer-encoding", "chunked"), false},
		{"upgrade header", append(base, "upgrade", "websocket"), false},
		{"te gzip", append(base, "te", "gzip"), false},
		{"te trailers", append(base, "te", "trailers"), true},
		{"upper-case name", append(base, "X-Upper", "1"), false},
		{"pseudo after regular", []string{":method", "GET", ":scheme", "http", "x-a", "1", ":path", "/"}, false},
		{"unknown pseudo", append(base, ":foo", "1"), false},
		{"response pseudo", append(base, ":status", "200"), false},
		{"missing :path", []string{":method", "GET", ":scheme", "http", ":authority", "x"}, false},
		{"empty :path", []string{":method", "GET", ":scheme", "http", ":path", "", ":authority", "x"}, false},
		{"missing :method", []string{":scheme", "http", ":path", "/", ":authority", "x"}, false},
		{"duplicate :method", []string{":method", "GET", ":method", "GET", ":scheme", "http", ":path", "/"}, false},
		{"path not origin form", []string{":method", "GET", ":scheme", "http", ":path", "x", ":authority", "x"}, false},
		{"bad content-length", append(base, "content-length", "x"), false},
		{"cookies joined", append(base, "cookie", "a=1", "cookie", "b=2"), true},
	}
	c := dialRaw(t, addr)
	id := uint32(1)
	var bad uint64
	for _, tc := range cases {
		c.headers(id, true, tc.fields...)
		resp := c.await(id)
		switch {
		case tc.ok && (resp.status != 200 || !resp.complete):
			t.Errorf("%s: status %d rst %v, want 200", tc.name, resp.status, resp.rst)
		case !tc.ok && (resp.rst == nil || *resp.rst != http2.ErrCodeProtocol):
			t.Errorf("%s: status %d rst %v, want RST_STREAM PROTOCOL_ERROR", tc.name, resp.status, resp.rst)
		}
		id += 2
		c.get(id)
		if resp := c.await(id); resp.status != 200 {
			t.Errorf("after %s: next stream status %d rst %v, want 200", tc.name, resp.status, resp.rst)
		}
		id += 2
		if !tc.ok {
			bad++
		}
	}
	if got := st.RxMessagingError.Value(); got != bad {
		t.Errorf("rx_messaging_error = %d, want %d", got, bad)
	}
	if got := st.TxReset.Value(); got != bad {
		t.Errorf("tx_reset = %d, want %d", got, bad)
	}
	if got := st.StreamsActive.Value(); got != 0 {
		t.Errorf("streams_active = %d after every stream ended", got)
	}
}

// The server's SETTINGS: MAX_CONCURRENT_STREAMS and MAX_HEADER_LIST_SIZE
// bounded, MAX_FRAME_SIZE left at the protocol's 16384; a SETTINGS
// frame with a repeated identifier is acknowledged, not a connection
// error.
func TestSettings(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: echoHandler})
	c := dialRaw(t, addr)
	if got := c.settings[http2.SettingMaxConcurrentStreams]; got != DefaultMaxConcurrentStreams {
		t.Errorf("MAX_CONCURRENT_STREAMS %d, want %d", got, DefaultMaxConcurrentStreams)
	}
	if got := c.settings[http2.SettingMaxHeaderListSize]; got != DefaultMaxHeaderListSize {
		t.Errorf("MAX_HEADER_LIST_SIZE %d, want %d", got, DefaultMaxHeaderListSize)
	}
	if got, ok := c.settings[http2.SettingMaxFrameSize]; ok && got != 16384 {
		t.Errorf("MAX_FRAME_SIZE %d advertised, want 16384", got)
	}
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535}); err != nil {
		t.Fatal(err)
	}
	for {
		f := c.next()
		if _, ok := f.(*http2.GoAwayFrame); ok {
			t.Fatalf("repeated SETTINGS identifier answered with GOAWAY")
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && sf.IsAck() {
			break
		}
	}
	c.get(1)
	if resp := c.await(1); resp.status != 200 {
		t.Fatalf("status %d after SETTINGS with a repeated identifier", resp.status)
	}
}

// An invalid preface gets GOAWAY PROTOCOL_ERROR and a clean close (the
// client reads the GOAWAY and then EOF, not a reset connection).
func TestInvalidPrefaceClosesCleanly(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: echoHandler})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// The preface's length, wrong, and more bytes the server never reads.
	if _, err := c.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), bytes.Repeat([]byte("x"), 4096)...)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(nil, c)
	var goaway *http2.GoAwayFrame
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after GOAWAY: %v, want EOF (a clean close)", err)
			}
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goaway = g
		}
	}
	if goaway == nil || goaway.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("GOAWAY %v, want PROTOCOL_ERROR", goaway)
	}
}

// Streams over MAX_CONCURRENT_STREAMS are refused (REFUSED_STREAM) and
// counted as http2.stream_refused_errors; the open ones are served.
func TestConcurrentStreamsRefusedOverTheLimit(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	st := newTestStats(t)
	addr := serve(t, &Server{MaxConcurrentStreams: 2, Stats: st, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.WriteString(w, "ok")
	})})
	c := dialRaw(t, addr)
	c.get(1)
	c.get(3)
	c.get(5)
	if resp := c.await(5); resp.rst == nil || *resp.rst != http2.ErrCodeRefusedStream {
		t.Fatalf("third stream: status %d rst %v, want REFUSED_STREAM", resp.status, resp.rst)
	}
	if got := st.StreamRefused.Value(); got != 1 {
		t.Errorf("stream_refused_errors = %d, want 1", got)
	}
	close(release)
	if resp := c.await(1); resp.status != 200 || string(resp.body) != "ok" {
		t.Errorf("first stream: %d %q", resp.status, resp.body)
	}
}

// A header list over MAX_HEADER_LIST_SIZE is answered 431 on its stream
// and counted as http2.header_overflow; the connection goes on. (A
// single field longer than the whole limit is a COMPRESSION_ERROR of the
// connection: the HPACK decoder refuses the string.)
func TestHeaderListOverTheLimitIs431(t *testing.T) {
	t.Parallel()
	st := newTestStats(t)
	addr := serve(t, &Server{MaxHeaderListSize: 1024, Stats: st, Handler: echoHandler})
	c := dialRaw(t, addr)
	var many []string
	for i := range 40 {
		many = append(many, "x-field-"+strconv.Itoa(i), string(bytes.Repeat([]byte("a"), 40)))
	}
	c.get(1, many...)
	if resp := c.await(1); resp.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d rst %v, want 431", resp.status, resp.rst)
	}
	if got := st.HeaderOverflow.Value(); got != 1 {
		t.Errorf("header_overflow = %d, want 1", got)
	}
	c.get(3)
	if resp := c.await(3); resp.status != 200 {
		t.Errorf("next stream: %d", resp.status)
	}
}

// gRPC's trailers (http.TrailerPrefix keys set after the body) end the
// stream in a HEADERS frame, after the data.
func TestResponseTrailers(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		_, _ = w.Write([]byte{0, 0, 0, 0, 1, 'x'})
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", "fine")
	})})
	c := dialRaw(t, addr)
	c.headers(1, true, ":method", "POST", ":scheme", "http", ":path", "/svc/M", ":authority", "x", "te", "trailers", "content-type", "application/grpc")
	resp := c.await(1)
	if resp.status != 200 || len(resp.body) != 6 || resp.trailer["grpc-status"] != "0" || resp.trailer["grpc-message"] != "fine" {
		t.Fatalf("status %d body %q trailer %v", resp.status, resp.body, resp.trailer)
	}
}

// Request trailers reach the handler in Request.Trailer after the body.
func TestRequestTrailers(t *testing.T) {
	t.Parallel()
	st := newTestStats(t)
	addr := serve(t, &Server{Stats: st, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, string(b)+" "+r.Trailer.Get("X-Sum"))
	})})
	c := dialRaw(t, addr)
	c.headers(1, false, ":method", "POST", ":scheme", "http", ":path", "/", ":authority", "x")
	_ = c.fr.WriteData(1, false, []byte("body"))
	c.headers(1, true, "x-sum", "42")
	if resp := c.await(1); string(resp.body) != "body 42" {
		t.Fatalf("body %q, want %q", resp.body, "body 42")
	}
	if got := st.Trailers.Value(); got != 1 {
		t.Errorf("trailers = %d, want 1", got)
	}
}

// A request body longer than its content-length resets the stream; one
// that ends short fails the handler's read (the handler may answer), and
// the stream is reset with PROTOCOL_ERROR after the answer.
func TestContentLengthMismatch(t *testing.T) {
	t.Parallel()
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})})
	c := dialRaw(t, addr)
	post := []string{":method", "POST", ":scheme", "http", ":path", "/", ":authority", "x", "content-length", "4"}
	c.headers(1, false, post...)
	_ = c.fr.WriteData(1, true, []byte("toolong"))
	if resp := c.await(1); resp.rst == nil || *resp.rst != http2.ErrCodeProtocol {
		t.Errorf("long body: status %d rst %v, want RST_STREAM PROTOCOL_ERROR", resp.status, resp.rst)
	}
	c.headers(3, false, post...)
	_ = c.fr.WriteData(3, true, []byte("ab"))
	resp := c.await(3)
	if resp.status != http.StatusBadRequest {
		t.Errorf("short body: status %d rst %v, want 400", resp.status, resp.rst)
	}
	if resp := c.await(3); resp.rst == nil || *resp.rst != http2.ErrCodeProtocol {
		t.Errorf("short body after 400: rst %v, want RST_STREAM PROTOCOL_ERROR", resp.rst)
	}
}

// A response the client does not read (its stream window is not
// replenished) holds up that stream only: another stream on the same
// connection is answered in full.
func TestSlowReaderSlowsItsStreamOnly(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("b"), 1<<20)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, _ = w.Write(big)
			return
		}
		_, _ = io.WriteString(w, "small")
	})})
	c := dialRaw(t, addr)
	// Plenty of connection window; stream windows stay at 65535.
	_ = c.fr.WriteWindowUpdate(0, 8<<20)
	c.headers(1, true, ":method", "GET", ":scheme", "http", ":path", "/big", ":authority", "x")
	c.get(3)
	resp := c.await(3)
	if resp.status != 200 || string(resp.body) != "small" {
		t.Fatalf("second stream: %d %q", resp.status, resp.body)
	}
}

// A request body not read by its handler holds up that stream only: the
// stream window bounds it, and another stream's body still flows.
func TestUnreadRequestBodyHoldsItsStreamOnly(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	addr := serve(t, &Server{StreamWindow: 64 << 10, ConnWindow: 256 << 10, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stuck" {
			<-release
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, strconv.FormatInt(n, 10))
	})})
	c := dialRaw(t, addr)
	post := func(id uint32, path string) {
		c.headers(id, false, ":method", "POST", ":scheme", "http", ":path", path, ":authority", "x")
	}
	post(1, "/stuck")
	chunk := bytes.Repeat([]byte("s"), 16<<10)
	for range 4 { // the stuck stream's whole window
		_ = c.fr.WriteData(1, false, chunk)
	}
	post(3, "/")
	// Four times the stuck stream's window, within windows the server
	// opens as the handler reads.
	sent, want := 0, 1<<20
	streamWin, connWin := 65535, 256<<10-64<<10
	for sent < want {
		for streamWin < len(chunk) || connWin < len(chunk) {
			switch f := c.next().(type) {
			case *http2.WindowUpdateFrame:
				if f.StreamID == 0 {
					connWin += int(f.Increment)
				} else if f.StreamID == 3 {
					streamWin += int(f.Increment)
				}
			case *http2.RSTStreamFrame, *http2.GoAwayFrame:
				t.Fatalf("%v", f)
			}
		}
		_ = c.fr.WriteData(3, false, chunk)
		sent += len(chunk)
		streamWin -= len(chunk)
		connWin -= len(chunk)
	}
	_ = c.fr.WriteData(3, true, nil)
	if resp := c.await(3); string(resp.body) != strconv.Itoa(want) {
		t.Fatalf("second stream read %q, want %d", resp.body, want)
	}
}

// A response whose handler does not flush (headers, body, trailers) goes
// out in one write.
func TestResponseIsOneWrite(t *testing.T) {
	t.Parallel()
	c, sc := serveCounting(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	})})
	before := sc.writes.Load()
	c.get(1)
	resp := c.await(1)
	if resp.status != 200 || string(resp.body) != "hello" || resp.trailer["grpc-status"] != "0" {
		t.Fatalf("response %d %q %v", resp.status, resp.body, resp.trailer)
	}
	if n := sc.writes.Load() - before; n != 1 {
		t.Errorf("response written in %d writes, want 1", n)
	}
}

// serveCounting serves one connection with s, counting the server's
// writes, and returns the client once the handshake is over.
func serveCounting(t *testing.T, s *Server) (*rawClient, *countingConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	t.Cleanup(s.Close)
	conns := make(chan *countingConn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		cc := &countingConn{Conn: nc}
		conns <- cc
		_ = s.ServeConn(cc)
	}()
	c := dialRaw(t, ln.Addr().String())
	sc := <-conns
	// Wait for the server's SETTINGS ACK, the last of the handshake.
	for {
		if sf, ok := c.next().(*http2.SettingsFrame); ok && sf.IsAck() {
			break
		}
	}
	return c, sc
}

// A PING's acknowledgement waits for the connection's next write: sent
// with a request, it goes in the response's write; sent alone, it goes
// alone after h2frame.AckDelay.
func TestPingAckGoesWithTheNextWrite(t *testing.T) {
	t.Parallel()
	c, sc := serveCounting(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	})})
	before := sc.writes.Load()
	pinged := time.Now()
	_ = c.fr.WritePing(false, [8]byte{7})
	c.get(1)
	var acked, answered bool
	for !acked || !answered {
		switch f := c.next().(type) {
		case *http2.PingFrame:
			acked = f.IsAck() && f.Data == [8]byte{7}
		case *http2.DataFrame:
			answered = f.StreamEnded()
		}
	}
	if n := sc.writes.Load() - before; n != 1 && time.Since(pinged) < h2frame.AckDelay {
		t.Errorf("acknowledgement and response written in %d writes, want 1", n)
	}

	before = sc.writes.Load()
	start := time.Now()
	_ = c.fr.WritePing(false, [8]byte{8})
	for {
		if p, ok := c.next().(*http2.PingFrame); ok && p.IsAck() && p.Data == [8]byte{8} {
			break
		}
	}
	if d := time.Since(start); d < h2frame.AckDelay {
		t.Errorf("a lone PING acknowledged after %v, before h2frame.AckDelay: it did not wait for a write", d)
	}
	if n := sc.writes.Load() - before; n != 1 {
		t.Errorf("a lone PING's acknowledgement took %d writes, want 1", n)
	}
}

// A connection with no stream for the idle timeout gets GOAWAY NO_ERROR
// and is closed; the server says so (downstream_cx_idle_timeout).
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	var told atomic.Int32
	st := newTestStats(t)
	addr := serve(t, &Server{Stats: st, IdleTimeout: 50 * time.Millisecond, Handler: echoHandler, OnIdleTimeout: func(net.Conn) { told.Add(1) }})
	c := dialRaw(t, addr)
	c.get(1)
	c.await(1)
	var goaway *http2.GoAwayFrame
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goaway = g
		}
	}
	if goaway == nil || goaway.ErrCode != http2.ErrCodeNo || goaway.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v, want NO_ERROR with last stream 1", goaway)
	}
	if told.Load() != 1 {
		t.Errorf("OnIdleTimeout called %d times", told.Load())
	}
	if got := st.GoawaySent.Value(); got != 1 {
		t.Errorf("goaway_sent = %d, want 1", got)
	}
}

// A connection that ends cancels the context of every handler still
// running on it: the streams' contexts are cancelled one by one as the
// connection closes them, not through a context of the connection's.
func TestConnectionEndCancelsTheHandlers(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 2)
	cancelled := make(chan error, 2)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
		cancelled <- r.Context().Err()
	})})
	c := dialRaw(t, addr)
	c.get(1)
	c.get(3)
	for range 2 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("handlers did not start")
		}
	}
	_ = c.c.Close()
	for i := range 2 {
		select {
		case err := <-cancelled:
			if err != context.Canceled {
				t.Errorf("handler %d: context error %v, want %v", i, err, context.Canceled)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("handler %d: context not cancelled after the connection closed", i)
		}
	}
}

// A client reset cancels the handler's context and fails its body read;
// it is counted as http2.rx_reset.
func TestClientResetCancelsTheHandler(t *testing.T) {
	t.Parallel()
	cancelled := make(chan error, 1)
	st := newTestStats(t)
	addr := serve(t, &Server{Stats: st, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		<-r.Context().Done()
		cancelled <- err
	})})
	c := dialRaw(t, addr)
	c.headers(1, false, ":method", "POST", ":scheme", "http", ":path", "/", ":authority", "x")
	_ = c.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	select {
	case err := <-cancelled:
		if err == nil {
			t.Error("body read did not fail")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler context not cancelled")
	}
	if got := st.RxReset.Value(); got != 1 {
		t.Errorf("rx_reset = %d", got)
	}
}

// Shutdown sends GOAWAY, lets the open stream finish and closes.
func TestShutdownIsGraceful(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.WriteString(w, "done")
	})}
	addr := serve(t, s)
	c := dialRaw(t, addr)
	c.get(1)
	// The stream is open once the server has seen it: a PING answered
	// after the HEADERS says so.
	_ = c.fr.WritePing(false, [8]byte{1})
	for {
		if p, ok := c.next().(*http2.PingFrame); ok && p.IsAck() {
			break
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(t.Context()) }()
	var goaway *http2.GoAwayFrame
	for goaway == nil {
		goaway, _ = c.next().(*http2.GoAwayFrame)
	}
	if goaway.ErrCode != http2.ErrCodeNo || goaway.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v", goaway)
	}
	close(release)
	if resp := c.await(1); string(resp.body) != "done" {
		t.Fatalf("open stream after GOAWAY: %d %q", resp.status, resp.body)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func newTestStats(t *testing.T) *Stats {
	t.Helper()
	st, err := stats.NewStore(stats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return NewStats(st.Scope("http2."))
}

// A response larger than the connection's send window waits for the
// client's WINDOW_UPDATE on the connection, then goes on.
func TestConnectionWindowReopens(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("c"), 200<<10)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(big)
	})})
	c := dialRaw(t, addr)
	// Large stream windows: only the connection's (65535) holds the
	// response back.
	_ = c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	c.get(1)
	got := 0
	for got < len(big) {
		switch f := c.next().(type) {
		case *http2.DataFrame:
			got += len(f.Data())
			if len(f.Data()) > 0 {
				_ = c.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("%v", f)
		}
	}
}

// Empty DATA frames in a row (a CPU flood that moves no data) end the
// connection with GOAWAY ENHANCE_YOUR_CALM, counted as
// http2.inbound_empty_frames_flood.
func TestEmptyDataFlood(t *testing.T) {
	t.Parallel()
	st := newTestStats(t)
	addr := serve(t, &Server{Stats: st, Handler: echoHandler})
	c := dialRaw(t, addr)
	c.headers(1, false, ":method", "POST", ":scheme", "http", ":path", "/", ":authority", "x")
	for range 3 {
		_ = c.fr.WriteData(1, false, nil)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", g.ErrCode)
			}
			break
		}
	}
	if got := st.InboundEmptyFramesFlood.Value(); got != 1 {
		t.Errorf("inbound_empty_frames_flood = %d", got)
	}
}

// A client that sends PINGs and never reads their acknowledgements
// fills the control queue: the connection is given up, counted as
// http2.outbound_control_flood.
func TestOutboundControlFlood(t *testing.T) {
	t.Parallel()
	st := newTestStats(t)
	s := &Server{Stats: st, Handler: echoHandler}
	client, server := net.Pipe() // synchronous: unread answers block the writer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.ServeConn(server)
	}()
	fr := http2.NewFramer(client, nil)
	_, _ = io.WriteString(client, http2.ClientPreface)
	_ = fr.WriteSettings()
	for i := range 2 * maxCtrlQueued {
		if err := fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			break // the server stopped reading: it gave up
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.OutboundControlFlood.Value() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := st.OutboundControlFlood.Value(); got != 1 {
		t.Errorf("outbound_control_flood = %d, want 1", got)
	}
	_ = client.Close()
	<-done
}

// With keep-alives off (a draining listener), a connection's first
// stream is answered and the connection gets GOAWAY naming it.
func TestKeepAlivesOff(t *testing.T) {
	t.Parallel()
	s := &Server{Handler: echoHandler}
	s.SetKeepAlivesEnabled(false)
	addr := serve(t, s)
	c := dialRaw(t, addr)
	c.get(1)
	var goaway *http2.GoAwayFrame
	var status int
	for goaway == nil || status == 0 {
		switch f := c.next().(type) {
		case *http2.GoAwayFrame:
			goaway = f
		case *http2.MetaHeadersFrame:
			status, _ = strconv.Atoi(f.PseudoValue("status"))
		}
	}
	if status != 200 || goaway.ErrCode != http2.ErrCodeNo || goaway.LastStreamID != 1 {
		t.Fatalf("status %d, GOAWAY %v", status, goaway)
	}
}
