package h2client

import (
	"bytes"
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

	"golang.org/x/net/http2"
)

// TestAgainstNetHTTP sends requests through the codec to net/http's
// HTTP/2 server: bodies both ways (known and unknown length, larger than
// every window), trailers, a trailers-only gRPC answer.
func TestAgainstNetHTTP(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 256<<10/16*5) // 1.25 MiB
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Len", fmt.Sprint(r.ContentLength))
		_, _ = io.Copy(w, r.Body)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		_, _ = w.Write(big)
	})
	mux.HandleFunc("/grpc", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", "fine")
		_, _ = w.Write([]byte{0, 0, 0, 0, 2, 'h', 'i'})
	})
	mux.HandleFunc("/trailers-only", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "5")
		w.WriteHeader(200)
	})
	addr := h2cServer(t, mux, 0)
	tr := newTransport(t, nil)

	tests := []struct {
		name, method, path string
		body               func() io.Reader
		wantStatus         int
		wantBody           []byte
		wantHeader         map[string]string
		wantTrailer        map[string]string
	}{
		{name: "get", method: "GET", path: "/echo", wantStatus: 200, wantBody: []byte{}, wantHeader: map[string]string{"X-Method": "GET"}},
		{name: "post known length", method: "POST", path: "/echo", body: func() io.Reader { return strings.NewReader("hello") }, wantStatus: 200, wantBody: []byte("hello"), wantHeader: map[string]string{"X-Len": "5"}},
		{name: "post streamed, large", method: "POST", path: "/echo", body: func() io.Reader { return io.MultiReader(bytes.NewReader(big)) }, wantStatus: 200, wantBody: big, wantHeader: map[string]string{"X-Len": "-1"}},
		{name: "large response", method: "GET", path: "/big", wantStatus: 200, wantBody: big},
		{name: "grpc trailers", method: "POST", path: "/grpc", body: func() io.Reader { return strings.NewReader("\x00\x00\x00\x00\x00") }, wantStatus: 200, wantBody: []byte{0, 0, 0, 0, 2, 'h', 'i'}, wantTrailer: map[string]string{"Grpc-Status": "0", "Grpc-Message": "fine"}},
		{name: "trailers-only", method: "POST", path: "/trailers-only", wantStatus: 200, wantBody: []byte{}, wantHeader: map[string]string{"Grpc-Status": "5"}},
		{name: "not found", method: "GET", path: "/nope", wantStatus: 404, wantBody: []byte("404 page not found\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != nil {
				body = tc.body()
			}
			req := newRequest(t, tc.method, addr, tc.path, body)
			if tc.name == "post streamed, large" {
				req.ContentLength = -1
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus || !bytes.Equal(got, tc.wantBody) {
				t.Fatalf("got %d with %d bytes, want %d with %d bytes", resp.StatusCode, len(got), tc.wantStatus, len(tc.wantBody))
			}
			for k, v := range tc.wantHeader {
				if resp.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}
			for k, v := range tc.wantTrailer {
				if resp.Trailer.Get(k) != v {
					t.Errorf("trailer %s = %q, want %q", k, resp.Trailer.Get(k), v)
				}
			}
		})
	}
}

// TestConcurrentStreamsPastLimit sends more concurrent requests than the
// server's MAX_CONCURRENT_STREAMS on one connection (MaxConnsPerHost 1):
// they wait for slots, none is refused.
func TestConcurrentStreamsPastLimit(t *testing.T) {
	t.Parallel()
	var inFlight, peak atomic.Int64
	release := make(chan struct{})
	addr := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		_, _ = io.WriteString(w, "ok")
	}), 3)
	var dials atomic.Int64
	tr := newTransport(t, &dials)
	tr.MaxConnsPerHost = 1
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := tr.RoundTrip(newRequest(t, "GET", addr, "/", nil))
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || string(b) != "ok" {
				errs <- fmt.Errorf("body %q: %v", b, err)
			}
		}()
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if peak.Load() > 3 || dials.Load() != 1 {
		t.Fatalf("peak %d streams (limit 3), %d dials (limit 1)", peak.Load(), dials.Load())
	}
}

// TestDialErrorWrapped: the dialer's error comes back wrapped, so the
// router classifies a connect failure.
func TestDialErrorWrapped(t *testing.T) {
	t.Parallel()
	type connectErr struct{ error }
	tr := &Transport{Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		return nil, &connectErr{errors.New("refused")}
	}}
	_, err := tr.RoundTrip(newRequest(t, "GET", "127.0.0.1:1", "/", nil))
	var ce *connectErr
	if !errors.As(err, &ce) {
		t.Fatalf("error %v does not wrap the dial's", err)
	}
	// No pool is kept for an address that cannot be reached (an
	// ORIGINAL_DST cluster's destinations are many).
	tr.mu.Lock()
	n := len(tr.pools)
	tr.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d pools kept after a failed dial", n)
	}
}

// TestRequestBodyError: a request body that fails makes the attempt fail
// with that error (the router blames the client), and the stream is
// reset with CANCEL.
func TestRequestBodyError(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	bodyErr := errors.New("client body broke")
	pr, pw := io.Pipe()
	req := newRequest(t, "POST", srv.addr(), "/", pr)
	req.ContentLength = -1
	ch := roundTrip(tr, req)
	srv.accept()
	h := srv.request()
	_, _ = pw.Write([]byte("part"))
	srv.until(func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok })
	_ = pw.CloseWithError(bodyErr)
	if rst := srv.reset(); rst.StreamID != h.StreamID || rst.ErrCode != http2.ErrCodeCancel {
		t.Fatalf("reset %v", rst)
	}
	if r := <-ch; !errors.Is(r.err, bodyErr) {
		t.Fatalf("error %v, want the body's", r.err)
	}
}

// TestContextCancelResets: the request's context ending resets the
// stream with CANCEL, before and after the response head.
func TestContextCancelResets(t *testing.T) {
	t.Parallel()
	for _, afterHead := range []bool{false, true} {
		t.Run(fmt.Sprint("afterHead=", afterHead), func(t *testing.T) {
			srv := newFakeServer(t)
			tr := newTransport(t, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := newRequest(t, "GET", srv.addr(), "/", nil).WithContext(ctx)
			ch := roundTrip(tr, req)
			srv.accept()
			h := srv.request()
			var resp *http.Response
			if afterHead {
				srv.headers(h.StreamID, false, ":status", "200")
				r := <-ch
				if r.err != nil {
					t.Fatal(r.err)
				}
				resp = r.resp
			}
			cancel()
			if rst := srv.reset(); rst.StreamID != h.StreamID || rst.ErrCode != http2.ErrCodeCancel {
				t.Fatalf("reset %v", rst)
			}
			if afterHead {
				if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
					t.Fatalf("body error %v", err)
				}
			} else if r := <-ch; !errors.Is(r.err, context.Canceled) {
				t.Fatalf("error %v", r.err)
			}
		})
	}
}

// TestBodyCloseResets: closing a response body before its end resets the
// stream with CANCEL.
func TestBodyCloseResets(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	ch := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil))
	srv.accept()
	h := srv.request()
	srv.headers(h.StreamID, false, ":status", "200")
	srv.data(h.StreamID, false, []byte("some"))
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	_ = r.resp.Body.Close()
	if rst := srv.reset(); rst.StreamID != h.StreamID || rst.ErrCode != http2.ErrCodeCancel {
		t.Fatalf("reset %v", rst)
	}
}

// TestPeerReset: RST_STREAM from the server fails the attempt with an
// error naming the code; REFUSED_STREAM before any response is retried
// on the connection when the request has no body.
func TestPeerReset(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	ch := roundTrip(tr, newRequest(t, "POST", srv.addr(), "/", strings.NewReader("body")))
	srv.accept()
	h := srv.request()
	_ = srv.fr.WriteRSTStream(h.StreamID, http2.ErrCodeInternal)
	r := <-ch
	var se *StreamError
	if !errors.As(r.err, &se) || se.Code != uint32(http2.ErrCodeInternal) || !strings.Contains(r.err.Error(), "INTERNAL_ERROR") {
		t.Fatalf("error %v", r.err)
	}

	// Refused without a body: sent again, answered.
	ch = roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil))
	h = srv.request()
	_ = srv.fr.WriteRSTStream(h.StreamID, http2.ErrCodeRefusedStream)
	h2 := srv.request()
	if h2.StreamID == h.StreamID {
		t.Fatal("the retry reused the stream identifier")
	}
	srv.headers(h2.StreamID, true, ":status", "204")
	if r := <-ch; r.err != nil || r.resp.StatusCode != 204 {
		t.Fatalf("retry: %v", r.err)
	}
}

// TestGoAwayRetriesUnprocessed: streams above GOAWAY's last stream
// identifier go to a new connection; the ones under it finish.
func TestGoAwayRetriesUnprocessed(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	var dials atomic.Int64
	tr := newTransport(t, &dials)
	ch1 := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/one", nil))
	srv.accept()
	h1 := srv.request()
	ch2 := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/two", nil))
	h2 := srv.request()
	first := srv
	_ = first.fr.WriteGoAway(h1.StreamID, http2.ErrCodeNo, nil)
	// The second request comes again on a new connection.
	second := &fakeServer{t: t, ln: srv.ln}
	second.accept()
	h2b := second.request()
	if got := pathOf(h2b); got != "/two" {
		t.Fatalf("retried %q", got)
	}
	second.headers(h2b.StreamID, true, ":status", "200")
	first.headers(h1.StreamID, true, ":status", "200")
	for i, ch := range []<-chan rtResult{ch1, ch2} {
		if r := <-ch; r.err != nil || r.resp.StatusCode != 200 {
			t.Fatalf("request %d: %v", i+1, r.err)
		}
	}
	_ = h2
	if dials.Load() != 2 {
		t.Fatalf("%d dials", dials.Load())
	}
}

func pathOf(f *http2.MetaHeadersFrame) string {
	for _, hf := range f.PseudoFields() {
		if hf.Name == ":path" {
			return hf.Value
		}
	}
	return ""
}

// TestMalformedResponses: a response head that breaks RFC 9113 resets
// the stream with PROTOCOL_ERROR and fails the attempt; the connection
// goes on.
func TestMalformedResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kv   []string
		end  bool
	}{
		{"no status", []string{"content-type", "text/plain"}, true},
		{"status not 3 digits", []string{":status", "2000"}, true},
		{"status not a number", []string{":status", "2x0"}, true},
		{"request pseudo-header", []string{":status", "200", ":path", "/"}, true},
		{"connection header", []string{":status", "200", "connection", "close"}, true},
		{"transfer-encoding", []string{":status", "200", "transfer-encoding", "chunked"}, true},
		{"content-length without body", []string{":status", "200", "content-length", "5"}, true},
		{"two content-lengths", []string{":status", "200", "content-length", "5", "content-length", "6"}, false},
		{"101", []string{":status", "101"}, false},
	}
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	for i, tc := range tests {
		ch := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil))
		if i == 0 {
			srv.accept()
		}
		h := srv.request()
		srv.headers(h.StreamID, tc.end, tc.kv...)
		if rst := srv.reset(); rst.StreamID != h.StreamID || rst.ErrCode != http2.ErrCodeProtocol {
			t.Fatalf("%s: reset %v", tc.name, rst)
		}
		var se *StreamError
		if r := <-ch; !errors.As(r.err, &se) {
			t.Fatalf("%s: error %v", tc.name, r.err)
		}
	}
}

// TestContentLengthMismatch: a body longer or shorter than the
// response's content-length fails the body read.
func TestContentLengthMismatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		data string
	}{{"short", "abc"}, {"long", "abcdefgh"}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t)
			tr := newTransport(t, nil)
			ch := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil))
			srv.accept()
			h := srv.request()
			srv.headers(h.StreamID, false, ":status", "200", "content-length", "5")
			srv.data(h.StreamID, true, []byte(tc.data))
			r := <-ch
			if r.err != nil {
				t.Fatal(r.err)
			}
			var se *StreamError
			if _, err := io.ReadAll(r.resp.Body); !errors.As(err, &se) {
				t.Fatalf("body error %v", err)
			}
		})
	}
}

// TestResponseHeaderTooLarge: a header list over the bound fails the
// attempt.
func TestResponseHeaderTooLarge(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	tr.MaxResponseHeaderBytes = 1024
	ch := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil))
	srv.accept()
	h := srv.request()
	kv := []string{":status", "200"}
	for i := range 30 {
		kv = append(kv, fmt.Sprintf("x-big-%d", i), strings.Repeat("a", 50))
	}
	srv.headers(h.StreamID, true, kv...)
	var se *StreamError
	if r := <-ch; !errors.As(r.err, &se) || !strings.Contains(r.err.Error(), "over 1024 bytes") {
		t.Fatalf("error %v", r.err)
	}
}

// TestPeerClosesMidBody: the connection ending mid-body fails the read.
func TestPeerClosesMidBody(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	ch := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil))
	srv.accept()
	h := srv.request()
	srv.headers(h.StreamID, false, ":status", "200")
	srv.data(h.StreamID, false, []byte("partial"))
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(r.resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	_ = srv.c.Close()
	if _, err := r.resp.Body.Read(buf); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

// TestFlowControlSlowReader: the stream window is given back only as the
// body is read, so a reader that does not read stops its stream; the
// connection window is given back as data arrives, so other streams go
// on.
func TestFlowControlSlowReader(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	tr.StreamWindow = 64 << 10
	ch := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/slow", nil))
	srv.accept()
	h := srv.request()
	srv.headers(h.StreamID, false, ":status", "200")
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	// Fill the stream window without anyone reading.
	chunk := bytes.Repeat([]byte("x"), 16<<10)
	for range 4 {
		srv.data(h.StreamID, false, chunk)
	}
	// A second stream goes on meanwhile, and no WINDOW_UPDATE came for
	// the slow one before its reader read.
	ch2 := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/fast", nil))
	var h2 *http2.MetaHeadersFrame
	srv.until(func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.WindowUpdateFrame:
			if f.StreamID == h.StreamID {
				t.Fatal("the slow stream's window was given back before its body was read")
			}
		case *http2.MetaHeadersFrame:
			h2 = f
			return true
		}
		return false
	})
	srv.headers(h2.StreamID, false, ":status", "200")
	srv.data(h2.StreamID, true, chunk)
	r2 := <-ch2
	if r2.err != nil {
		t.Fatal(r2.err)
	}
	if b, err := io.ReadAll(r2.resp.Body); err != nil || len(b) != len(chunk) {
		t.Fatalf("fast stream: %d bytes, %v", len(b), err)
	}
	// Data past the window is a flow-control error on that stream.
	go func() { _, _ = io.CopyN(io.Discard, r.resp.Body, 16<<10) }()
	srv.until(func(f http2.Frame) bool { w, ok := f.(*http2.WindowUpdateFrame); return ok && w.StreamID == h.StreamID })
}

// TestFlowControlOverflow: DATA beyond the stream window resets the
// stream with FLOW_CONTROL_ERROR.
func TestFlowControlOverflow(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	tr.StreamWindow = 16 << 10
	ch := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil))
	srv.accept()
	h := srv.request()
	srv.headers(h.StreamID, false, ":status", "200")
	chunk := bytes.Repeat([]byte("x"), 16<<10)
	srv.data(h.StreamID, false, chunk)
	srv.data(h.StreamID, false, []byte("over"))
	if rst := srv.reset(); rst.ErrCode != http2.ErrCodeFlowControl {
		t.Fatalf("reset %v", rst)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
}

// TestSendWindowHonoured: the request body is sent within the server's
// INITIAL_WINDOW_SIZE and continues on its WINDOW_UPDATE; frames stay
// within its MAX_FRAME_SIZE.
func TestSendWindowHonoured(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	body := bytes.Repeat([]byte("y"), 40000)
	ch := roundTrip(tr, newRequest(t, "POST", srv.addr(), "/", bytes.NewReader(body)))
	srv.accept(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10000})
	h := srv.request()
	got := 0
	for got < 10000 {
		d := srv.until(func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
		got += len(d.Data())
	}
	if got != 10000 {
		t.Fatalf("%d bytes sent within a window of 10000", got)
	}
	_ = srv.fr.WriteWindowUpdate(h.StreamID, 30000)
	end := false
	for !end {
		d := srv.until(func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
		got += len(d.Data())
		end = d.StreamEnded()
	}
	if got != len(body) {
		t.Fatalf("%d bytes, want %d", got, len(body))
	}
	srv.headers(h.StreamID, true, ":status", "200")
	if r := <-ch; r.err != nil {
		t.Fatal(r.err)
	}
}

// TestIdleConnectionsClosed: CloseIdleConnections closes a connection
// without streams (the server sees GOAWAY and the end).
func TestIdleConnectionsClosed(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	ch := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil))
	srv.accept()
	h := srv.request()
	srv.headers(h.StreamID, true, ":status", "200")
	if r := <-ch; r.err != nil {
		t.Fatal(r.err)
	}
	tr.CloseIdleConnections()
	srv.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	for {
		if _, err := srv.fr.ReadFrame(); err != nil {
			break
		}
	}
}

// TestSecondConnectionWhenFull: when every connection is at the
// server's MAX_CONCURRENT_STREAMS and MaxConnsPerHost allows, another
// connection is opened.
func TestSecondConnectionWhenFull(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	addr := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	}), 1)
	var dials atomic.Int64
	tr := newTransport(t, &dials)
	tr.MaxConnsPerHost = 2
	ch1 := roundTrip(tr, newRequest(t, "GET", addr, "/", nil))
	ch2 := roundTrip(tr, newRequest(t, "GET", addr, "/", nil))
	<-started
	<-started // both run at once: on two connections
	close(release)
	for _, ch := range []<-chan rtResult{ch1, ch2} {
		if r := <-ch; r.err != nil {
			t.Fatal(r.err)
		}
	}
	if dials.Load() != 2 {
		t.Fatalf("%d dials, want 2", dials.Load())
	}
}

// TestIdleTimeoutClosesConnection: a connection without streams for
// IdleConnTimeout is closed with GOAWAY, and the next request dials
// again.
func TestIdleTimeoutClosesConnection(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t)
	tr := newTransport(t, nil)
	tr.IdleConnTimeout = 50 * time.Millisecond
	ch := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil))
	srv.accept()
	h := srv.request()
	srv.headers(h.StreamID, true, ":status", "200")
	if r := <-ch; r.err != nil {
		t.Fatal(r.err)
	}
	if g := srv.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame); g.ErrCode != http2.ErrCodeNo {
		t.Fatalf("GOAWAY %v", g)
	}
	ch = roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil))
	srv.accept()
	h = srv.request()
	srv.headers(h.StreamID, true, ":status", "200")
	if r := <-ch; r.err != nil {
		t.Fatal(r.err)
	}
}

// TestTLSNegotiatedH2: over TLS (the caller's Dial does the handshake)
// the codec speaks h2 with :scheme https to net/http's TLS server.
func TestTLSNegotiatedH2(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "%s %s", r.Proto, r.TLS.NegotiatedProtocol)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	tr := &Transport{TLS: true, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		var d tls.Dialer
		d.Config = cfg
		return d.DialContext(ctx, "tcp", addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "HTTP/2.0 h2" || resp.TLS == nil {
		t.Fatalf("got %q (TLS %v)", b, resp.TLS != nil)
	}
}

// abortCtx is a context with SetAbort and ClearAbort, as the proxy's
// request context has them; busy makes SetAbort refuse.
type abortCtx struct {
	context.Context
	cancelCtx func()
	busy      bool

	mu           sync.Mutex
	abort        func()
	sets, clears int
}

func newAbortCtx(busy bool) *abortCtx {
	ctx, cancel := context.WithCancel(context.Background())
	return &abortCtx{Context: ctx, cancelCtx: cancel, busy: busy}
}

func (c *abortCtx) SetAbort(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy || c.abort != nil || c.Err() != nil {
		return false
	}
	c.abort = f
	c.sets++
	return true
}

func (c *abortCtx) ClearAbort() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	had := c.abort != nil
	c.abort = nil
	c.clears++
	return had
}

// cancel cancels the context, then runs the abort on this goroutine.
func (c *abortCtx) cancel() {
	c.cancelCtx()
	c.mu.Lock()
	f := c.abort
	c.abort = nil
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

// A request whose context has SetAbort is watched with it, not with
// context.AfterFunc: its cancellation resets the stream with CANCEL, and
// a stream that ends lets go of it. A context whose SetAbort refuses is
// watched with context.AfterFunc.
func TestAborterContext(t *testing.T) {
	t.Parallel()
	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprint("busy=", busy), func(t *testing.T) {
			srv := newFakeServer(t)
			tr := newTransport(t, nil)
			ctx := newAbortCtx(busy)
			defer ctx.cancelCtx()
			ch := roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil).WithContext(ctx))
			srv.accept()
			h := srv.request()
			srv.headers(h.StreamID, true, ":status", "204")
			if r := <-ch; r.err != nil || r.resp.StatusCode != 204 {
				t.Fatalf("%+v", r)
			}
			ctx.mu.Lock()
			sets, clears, held := ctx.sets, ctx.clears, ctx.abort != nil
			ctx.mu.Unlock()
			if want := 1; busy {
				if sets != 0 {
					t.Errorf("SetAbort taken %d times on a busy context", sets)
				}
			} else if sets != want || clears != want || held {
				t.Errorf("ended stream: SetAbort %d, ClearAbort %d, still held %v; want 1, 1, false", sets, clears, held)
			}

			ctx2 := newAbortCtx(busy)
			ch = roundTrip(tr, newRequest(t, "GET", srv.addr(), "/", nil).WithContext(ctx2))
			h = srv.request()
			ctx2.cancel()
			if rst := srv.reset(); rst.StreamID != h.StreamID || rst.ErrCode != http2.ErrCodeCancel {
				t.Fatalf("reset %v", rst)
			}
			if r := <-ch; !errors.Is(r.err, context.Canceled) {
				t.Fatalf("error %v", r.err)
			}
		})
	}
}
