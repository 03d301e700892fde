package h2server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	streamapi "github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/codec/workers"
	"github.com/meshlens/meshlens/internal/stats"
)

// Defaults for the zero values of Server's fields.
const (
	// DefaultMaxConcurrentStreams is the proxy's bound on a connection's
	// open streams (Envoy's own default, 2^31-1, is no bound at all).
	DefaultMaxConcurrentStreams = 100
	// DefaultMaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE in
	// HPACK's measure (name, value and 32 bytes per field): Envoy's
	// max_request_headers_kb default, 60 KiB.
	DefaultMaxHeaderListSize = 60 << 10
	DefaultIdleTimeout       = time.Hour // Envoy's idle_timeout default
	DefaultPrefaceTimeout    = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	// DefaultStreamWindow and DefaultConnWindow are the receive windows:
	// how much request body a stream, and all streams of a connection,
	// may have buffered and not yet consumed by their handlers.
	DefaultStreamWindow = 1 << 20
	DefaultConnWindow   = 4 << 20
)

// Server serves HTTP/2 connections handed to ServeConn (after the
// preface was seen or ALPN chose h2). Its fields must not change once a
// connection is being served.
type Server struct {
	// Streams serves every stream (the connection manager); when nil,
	// Handler answers every request as an http.Handler.
	Streams streamapi.Handler
	Handler http.Handler
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS.
	MaxConcurrentStreams uint32
	// MaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE; a request whose
	// header list is larger is answered 431 on its stream.
	MaxHeaderListSize uint32
	// IdleTimeout closes (GOAWAY) a connection with no open stream for
	// that long; PrefaceTimeout bounds the wait for the client's preface
	// and first SETTINGS; WriteTimeout bounds one batch's write.
	IdleTimeout, PrefaceTimeout, WriteTimeout time.Duration
	// StreamWindow and ConnWindow are the receive windows.
	StreamWindow, ConnWindow uint32
	// ConnContext, if set, derives the context of a connection's
	// requests from a background context.
	ConnContext func(context.Context, net.Conn) context.Context
	// ConnState, if set, is told when a connection starts being served
	// (http.StateNew) and when it is closed (http.StateClosed).
	ConnState func(net.Conn, http.ConnState)
	// Stats are counted under Envoy's http2.* names; nil counts nothing.
	Stats *Stats
	// OnIdleTimeout, if set, is told of a connection closed by the idle
	// timeout (downstream_cx_idle_timeout).
	OnIdleTimeout func(net.Conn)
	// Log receives handler panics; nil means slog.Default().
	Log *slog.Logger

	mu      sync.Mutex
	conns   map[*conn]struct{}
	workers workerPool // runs the streams' handlers
	// attached bounds the detached connections whose reader waits for
	// the client on the goroutine that read their last frames.
	attached    workers.Waits
	shutdown    atomic.Bool
	noKeepAlive atomic.Bool
	done        chan struct{} // closed when the last connection ends after Shutdown
}

// Stats are the codec's counters, Envoy's http2.* stats.
type Stats struct {
	// RxReset and TxReset count RST_STREAM frames received and sent.
	RxReset, TxReset *stats.Counter
	// HeaderOverflow counts requests refused for a header list over the
	// limit.
	HeaderOverflow *stats.Counter
	// RxMessagingError counts frames that broke the protocol (a stream
	// or connection error sent); StreamRefused counts streams refused
	// over MAX_CONCURRENT_STREAMS; GoawaySent counts GOAWAY frames.
	RxMessagingError, StreamRefused, GoawaySent *stats.Counter
	// Trailers counts requests that carried trailers.
	Trailers *stats.Counter
	// OutboundControlFlood and InboundEmptyFramesFlood count connections
	// closed for a flood of control frames left unread, or of empty
	// DATA frames.
	OutboundControlFlood, InboundEmptyFramesFlood *stats.Counter
	// StreamsActive is the number of open streams.
	StreamsActive *stats.Gauge
}

// NewStats makes the codec's counters in sc (the http2 scope); a nil
// scope gives counters that count nothing.
func NewStats(sc *stats.Scope) *Stats {
	if sc == nil {
		return &Stats{}
	}
	return &Stats{
		RxReset:          sc.Counter("rx_reset"),
		TxReset:          sc.Counter("tx_reset"),
		HeaderOverflow:   sc.Counter("header_overflow"),
		RxMessagingError: sc.Counter("rx_messaging_error"),
		StreamRefused:    sc.Counter("stream_refused_errors"),
		GoawaySent:       sc.Counter("goaway_sent"),
		Trailers:         sc.Counter("trailers"),

		OutboundControlFlood:    sc.Counter("outbound_control_flood"),
		InboundEmptyFramesFlood: sc.Counter("inbound_empty_frames_flood"),
		StreamsActive:           sc.Gauge("streams_active"),
	}
}

var noStats = &Stats{}

func (s *Server) stats() *Stats {
	if s.Stats != nil {
		return s.Stats
	}
	return noStats
}

func (s *Server) maxStreams() uint32 {
	if s.MaxConcurrentStreams > 0 {
		return s.MaxConcurrentStreams
	}
	return DefaultMaxConcurrentStreams
}

func (s *Server) maxHeaderList() uint32 {
	if s.MaxHeaderListSize > 0 {
		return s.MaxHeaderListSize
	}
	return DefaultMaxHeaderListSize
}

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func orU32(v, def uint32) uint32 {
	if v > 0 {
		return min(v, maxWindow)
	}
	return def
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// ErrServerClosed is returned by ServeConn when the server is shutting
// down; the connection has been closed.
var ErrServerClosed = errors.New("h2server: server closed")

// ServeConn serves the HTTP/2 connection rwc (whose preface has not been
// read) until it ends, and closes it. Handlers run on goroutines of
// their own; ServeConn returns once they all returned.
func (s *Server) ServeConn(rwc net.Conn) error {
	c := s.newConn(rwc, false, nil)
	if c == nil {
		return ErrServerClosed
	}
	c.serve()
	return nil
}

// ServeConnDetached serves rwc as ServeConn does, but returns once the
// connection has read everything the client sent: from then on a
// goroutine of its own waits for the client, reads and serves. done is
// called once the connection has ended and its handlers have returned.
// A connection with no stream open then costs a goroutine with the
// runtime's smallest stack, and no writer goroutine.
func (s *Server) ServeConnDetached(rwc net.Conn, done func()) error {
	c := s.newConn(rwc, true, done)
	if c == nil {
		if done != nil {
			done()
		}
		return ErrServerClosed
	}
	c.serve()
	return nil
}

// newConn starts serving rwc; nil (rwc closed) when the server is
// shutting down.
func (s *Server) newConn(rwc net.Conn, detached bool, done func()) *conn {
	ctx := context.Background()
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, rwc)
	}
	c := newConn(s, rwc, ctx)
	c.detached, c.done = detached, done
	if !s.track(c) {
		_ = rwc.Close()
		return nil
	}
	if s.ConnState != nil {
		s.ConnState(rwc, http.StateNew)
	}
	return c
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	if s.workers.Do == nil {
		s.workers.Do = runHandlerJob
		s.workers.Init()
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if len(s.conns) == 0 && s.done != nil {
		close(s.done)
		s.done = nil
	}
}

// SetKeepAlivesEnabled(false) sends every connection GOAWAY: its open
// streams finish, no new one starts, and it closes.
func (s *Server) SetKeepAlivesEnabled(on bool) {
	s.noKeepAlive.Store(!on)
	if on {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.goAwayGraceful()
	}
}

// Shutdown sends every connection GOAWAY and waits for their streams to
// finish; connections still open when ctx ends are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown.Store(true)
	if len(s.conns) == 0 {
		s.mu.Unlock()
		return nil
	}
	done := make(chan struct{})
	s.done = done
	for c := range s.conns {
		c.goAwayGraceful()
	}
	s.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.Close()
	<-done
	return ctx.Err()
}

// Close closes every connection at once.
func (s *Server) Close() {
	s.mu.Lock()
	s.shutdown.Store(true)
	for c := range s.conns {
		_ = c.rwc.Close()
	}
	s.mu.Unlock()
}
