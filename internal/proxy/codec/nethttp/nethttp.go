// Package nethttp puts net/http's HTTP server (TLS, HTTP/2 and h2c) and
// Transport behind the proxy's stream interface (package codec/stream):
// Handler turns a stream.Handler into the http.Handler net/http's server
// calls, and an *http.Transport is a stream.Upstream as it is.
//
// A stream is a pooled Stream over the request's http.ResponseWriter and
// *http.Request, so serving through the interface allocates nothing more
// than net/http does. net/http can abort a stream only by a panic of the
// handler with http.ErrAbortHandler: Reset is noted, and the panic
// comes after ServeStream returned, so the connection manager's code
// never unwinds through a panic. net/http's HTTP/2 server then resets
// the stream with INTERNAL_ERROR, whatever the code; HTTP/1.1 closes the
// connection.
package nethttp

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// Handler returns the http.Handler through which net/http's server
// serves h's streams.
func Handler(h stream.Handler) http.Handler { return handler{h} }

type handler struct{ h stream.Handler }

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := pool.Get().(*Stream)
	s.w, s.r = w, r
	s.flusher, _ = w.(http.Flusher)
	h.h.ServeStream(s)
	reset := s.reset
	*s = Stream{}
	pool.Put(s)
	if reset {
		panic(http.ErrAbortHandler)
	}
}

var pool = sync.Pool{New: func() any { return new(Stream) }}

// ConnContext returns a Server.ConnContext that keeps the connection for
// Stream.Conn and then calls next (the stream.Observer's), if not nil.
func ConnContext(next func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		ctx = context.WithValue(ctx, connKey{}, c)
		if next != nil {
			ctx = next(ctx, c)
		}
		return ctx
	}
}

type connKey struct{}

// Stream is one request of net/http's server as a stream.Downstream.
type Stream struct {
	w       http.ResponseWriter
	r       *http.Request
	flusher http.Flusher
	reset   bool
}

var _ stream.Downstream = (*Stream)(nil)

// Request implements stream.Downstream.
func (s *Stream) Request() *http.Request { return s.r }

// Conn implements stream.Downstream: the connection the server was
// given, when the server's ConnContext is ConnContext's; else nil.
func (s *Stream) Conn() net.Conn {
	c, _ := s.r.Context().Value(connKey{}).(net.Conn)
	return c
}

// Header implements stream.Downstream.
func (s *Stream) Header() http.Header { return s.w.Header() }

// WriteHeader implements stream.Downstream.
func (s *Stream) WriteHeader(status int) {
	if !s.reset {
		s.w.WriteHeader(status)
	}
}

// errReset is a write's error after Reset.
var errReset = errors.New("nethttp: write after the stream was reset")

// Write implements stream.Downstream.
func (s *Stream) Write(p []byte) (int, error) {
	if s.reset {
		return 0, errReset
	}
	return s.w.Write(p)
}

// Flush implements stream.Downstream.
func (s *Stream) Flush() {
	if s.flusher != nil && !s.reset {
		s.flusher.Flush()
	}
}

// WriteTrailers implements stream.Downstream with net/http's trailer
// convention: header keys with http.TrailerPrefix, set after the head.
func (s *Stream) WriteTrailers(t http.Header) {
	if s.reset {
		return
	}
	hdr := s.w.Header()
	for k, vv := range t {
		hdr[http.TrailerPrefix+k] = vv
	}
}

// Reset implements stream.Downstream.
func (s *Stream) Reset(stream.ResetCode) { s.reset = true }

// EnableFullDuplex implements stream.Downstream.
func (s *Stream) EnableFullDuplex() error {
	if fd, ok := s.w.(interface{ EnableFullDuplex() error }); ok {
		return fd.EnableFullDuplex()
	}
	return http.ErrNotSupported
}

// SetReadDeadline implements stream.Downstream.
func (s *Stream) SetReadDeadline(t time.Time) error {
	if rd, ok := s.w.(interface{ SetReadDeadline(time.Time) error }); ok {
		return rd.SetReadDeadline(t)
	}
	return http.ErrNotSupported
}

// Hijack implements stream.Downstream.
func (s *Stream) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.w.(http.Hijacker)
	if !ok {
		return nil, nil, stream.ErrNotHijackable
	}
	return hj.Hijack()
}

// The Transport of net/http is an upstream codec as it is.
var _ stream.Upstream = (*http.Transport)(nil)
