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
