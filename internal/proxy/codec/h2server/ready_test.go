package h2server

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	streamapi "github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// sendTogether writes HEADERS (a POST on stream id) and DATA with
// END_STREAM carrying body, in one write, as a gRPC client sends a unary
// call.
func (r *rawClient) sendTogether(id uint32, body []byte) {
	r.t.Helper()
	var buf, hbuf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	enc := hpack.NewEncoder(&hbuf)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: "/"}, {Name: ":authority", Value: "x"}} {
		_ = enc.WriteField(f)
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true})
	_ = fr.WriteData(id, true, body)
	if _, err := r.c.Write(buf.Bytes()); err != nil {
		r.t.Fatal(err)
	}
}

// A body that arrived with its head is whole when the handler starts:
// ReadReady hands it over and then says EOF, without waiting.
func TestBodyThatCameWithItsHeadIsReady(t *testing.T) {
	t.Parallel()
	type result struct {
		body  []byte
		eof   bool
		ready bool
	}
	got := make(chan result, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rr, ok := r.Body.(streamapi.ReadyReader)
		var res result
		res.ready = ok
		buf := make([]byte, 4096)
		for ok {
			n, err := rr.ReadReady(buf)
			res.body = append(res.body, buf[:n]...)
			if err == io.EOF {
				res.eof = true
			}
			if n == 0 {
				break
			}
		}
		got <- res
		_, _ = w.Write([]byte("ok"))
	})})
	c := dialRaw(t, addr)
	want := bytes.Repeat([]byte("b"), 1000)
	c.sendTogether(1, want)
	res := <-got
	if !res.ready {
		t.Fatal("the request body is not a stream.ReadyReader")
	}
	if !bytes.Equal(res.body, want) || !res.eof {
		t.Fatalf("ReadReady gave %d bytes, EOF %v; want %d bytes and EOF", len(res.body), res.eof, len(want))
	}
	if resp := c.await(1); resp.status != 200 || string(resp.body) != "ok" {
		t.Fatalf("response %d %q", resp.status, resp.body)
	}
}

// A body still on its way: ReadReady returns nothing (not EOF) without
// waiting, and Read waits for it.
func TestReadReadyDoesNotWait(t *testing.T) {
	t.Parallel()
	type look struct {
		n   int
		err error
	}
	looked := make(chan look, 1)
	rest := make(chan []byte, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := r.Body.(streamapi.ReadyReader).ReadReady(make([]byte, 64))
		looked <- look{n, err}
		b, _ := io.ReadAll(r.Body)
		rest <- b
	})})
	c := dialRaw(t, addr)
	c.headers(1, false, ":method", "POST", ":scheme", "http", ":path", "/", ":authority", "x")
	if l := <-looked; l.n != 0 || l.err != nil {
		t.Errorf("ReadReady before the body: %d, %v; want 0, nil", l.n, l.err)
	}
	_ = c.fr.WriteData(1, true, []byte("later"))
	if b := <-rest; string(b) != "later" {
		t.Errorf("Read gave %q, want %q", b, "later")
	}
}

// writeCounter counts a connection's writes, and those made by the
// writer goroutine (writeLoop).
type writeCounter struct {
	net.Conn
	writes, byWriter *atomic.Int64
}

func (w writeCounter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	buf := make([]byte, 16<<10)
	if strings.Contains(string(buf[:runtime.Stack(buf, false)]), "h2server.(*conn).writeLoop") {
		w.byWriter.Add(1)
	}
	return w.Conn.Write(p)
}

// A handler that writes its head, body and trailers without flushing and
// ends while no writer runs sends them itself, in one write: no writer
// goroutine is started for them.
func TestEndedResponseGoesInOneWrite(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "Grpc-Status")
		_, _ = w.Write(bytes.Repeat([]byte("m"), 1000))
		w.Header().Set("Grpc-Status", "0")
	})}
	t.Cleanup(srv.Close)
	var writes, byWriter atomic.Int64
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = srv.ServeConnDetached(writeCounter{c, &writes, &byWriter}, nil)
		}
	}()
	c := dialRaw(t, ln.Addr().String())
	c.sendTogether(1, []byte("first"))
	if resp := c.await(1); resp.status != 200 || resp.trailer["grpc-status"] != "0" {
		t.Fatalf("first response %d, trailer %v", resp.status, resp.trailer)
	}
	// The connection's SETTINGS and ACKs are written by now; the next
	// response is counted alone.
	time.Sleep(50 * time.Millisecond)
	before, beforeWriter := writes.Load(), byWriter.Load()
	c.sendTogether(3, []byte("second"))
	resp := c.await(3)
	if resp.status != 200 || len(resp.body) != 1000 || resp.trailer["grpc-status"] != "0" {
		t.Fatalf("second response %d, %d bytes, trailer %v", resp.status, len(resp.body), resp.trailer)
	}
	time.Sleep(50 * time.Millisecond)
	if n := writes.Load() - before; n != 1 {
		t.Errorf("the response took %d writes, want 1 (head, data and trailers together)", n)
	}
	if n := byWriter.Load() - beforeWriter; n != 0 {
		t.Errorf("the writer goroutine made %d of the response's writes, want the handler's goroutine to", n)
	}
}
