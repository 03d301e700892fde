package h2server

import (
	"errors"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/net/http2"

	streamapi "github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// streamFunc is a stream.Handler made of a function.
type streamFunc func(streamapi.Downstream)

func (f streamFunc) ServeStream(s streamapi.Downstream) { f(s) }

// Through the stream interface: WriteTrailers sends trailers after the
// body, Reset sends RST_STREAM with its code (and Write then fails),
// SetReadDeadline fails a body read that waits past it, Hijack is
// refused, and Conn is the connection the codec was given.
func TestStreamInterface(t *testing.T) {
	t.Parallel()
	readErr := make(chan error, 1)
	addr := serve(t, &Server{Streams: streamFunc(func(s streamapi.Downstream) {
		r := s.Request()
		if s.Conn() == nil {
			s.Reset(streamapi.ResetInternalError)
			return
		}
		if _, _, err := s.Hijack(); !errors.Is(err, streamapi.ErrNotHijackable) {
			s.Reset(streamapi.ResetInternalError)
			return
		}
		switch r.URL.Path {
		case "/trailers":
			s.Header().Set("Content-Type", "application/grpc")
			s.WriteHeader(200)
			_, _ = s.Write([]byte("msg"))
			s.WriteTrailers(http.Header{"Grpc-Status": {"0"}})
		case "/reset":
			_, _ = s.Write([]byte("partial"))
			s.Flush()
			s.Reset(streamapi.ResetProtocolError)
			if _, err := s.Write([]byte("more")); err == nil {
				readErr <- errors.New("Write after Reset succeeded")
			}
		case "/deadline":
			_ = s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := io.ReadAll(r.Body)
			readErr <- err
			s.WriteHeader(http.StatusRequestTimeout)
		}
	})})
	c := dialRaw(t, addr)
	c.headers(1, true, ":method", "POST", ":scheme", "http", ":path", "/trailers", ":authority", "x")
	if resp := c.await(1); resp.status != 200 || string(resp.body) != "msg" || resp.trailer["grpc-status"] != "0" {
		t.Errorf("trailers: %d %q %v", resp.status, resp.body, resp.trailer)
	}
	c.headers(3, true, ":method", "GET", ":scheme", "http", ":path", "/reset", ":authority", "x")
	resp := c.await(3)
	if resp.rst == nil || *resp.rst != http2.ErrCodeProtocol {
		t.Errorf("reset: status %d body %q rst %v, want RST_STREAM PROTOCOL_ERROR", resp.status, resp.body, resp.rst)
	}
	// A body that never comes: the read fails at the deadline.
	c.headers(5, false, ":method", "POST", ":scheme", "http", ":path", "/deadline", ":authority", "x")
	if resp := c.await(5); resp.status != http.StatusRequestTimeout {
		t.Errorf("deadline: status %d rst %v", resp.status, resp.rst)
	}
	if err := <-readErr; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("body read past the deadline: %v", err)
	}
}

// cancelListener records DownstreamCancelled calls.
type cancelListener chan struct{}

func (l cancelListener) DownstreamCancelled() { l <- struct{}{} }

// A stream tells its cancel listener when the client resets it, after
// its context is cancelled; one that stopped listening is not told; a
// stream already reset registers nothing (NotifyCancel false).
func TestNotifyCancel(t *testing.T) {
	t.Parallel()
	type result struct {
		told, ctxDone bool
	}
	results := make(chan result, 3)
	registered := make(chan bool, 3)
	addr := serve(t, &Server{Streams: streamFunc(func(s streamapi.Downstream) {
		n, ok := s.(streamapi.CancelNotifier)
		if !ok {
			registered <- false
			results <- result{}
			return
		}
		l := make(cancelListener, 1)
		switch s.Request().URL.Path {
		case "/listen":
			registered <- n.NotifyCancel(l)
		case "/stop":
			ok := n.NotifyCancel(l)
			n.StopNotify()
			registered <- ok
		case "/late":
			<-s.Request().Context().Done()
			registered <- n.NotifyCancel(l)
			results <- result{told: len(l) > 0, ctxDone: true}
			return
		}
		<-s.Request().Context().Done()
		select {
		case <-l:
			results <- result{told: true, ctxDone: s.Request().Context().Err() != nil}
		case <-time.After(200 * time.Millisecond):
			results <- result{ctxDone: s.Request().Context().Err() != nil}
		}
	})})
	c := dialRaw(t, addr)
	for i, path := range []string{"/listen", "/stop", "/late"} {
		id := uint32(2*i + 1)
		c.headers(id, false, ":method", "POST", ":scheme", "http", ":path", path, ":authority", "x")
		if path != "/late" && !<-registered {
			t.Fatalf("%s: NotifyCancel false on a live stream", path)
		}
		_ = c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		var r result
		select {
		case r = <-results:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: handler not cancelled", path)
		}
		switch {
		case path == "/listen" && (!r.told || !r.ctxDone):
			t.Errorf("/listen: told %v, context done %v; want both", r.told, r.ctxDone)
		case path == "/stop" && r.told:
			t.Error("/stop: told after StopNotify")
		case path == "/late" && (<-registered || r.told):
			t.Error("/late: NotifyCancel on a reset stream registered a listener")
		}
	}
}
