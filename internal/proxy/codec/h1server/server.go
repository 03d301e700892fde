package h1server

import (
	"context"
	"errors"
	"github.com/meshlens/meshlens/internal/proxy/codec/workers"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/sockpeek"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 5 * time.Minute
	DefaultMaxHeaderBytes    = http.DefaultMaxHeaderBytes
	DefaultHangupCheck       = time.Second
	bufferSize               = 4 << 10
)

// Server serves HTTP/1.x on connections handed to ServeConn. Its fields
// must not change once a connection is being served.
type Server struct {
	// Streams, if set, serves every request through the stream
	// interface (package codec/stream): the connection manager. Else
	// Handler answers every request.
	Streams stream.Handler
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's head; IdleTimeout how
	// long a kept-alive connection may wait for its next request.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// MaxHeaderBytes bounds a request's head (request line and header
	// section), as net/http's server does: with 4 KiB of slack.
	MaxHeaderBytes int
	// ConnContext, if set, derives the context of a connection's
	// requests from a background context.
	ConnContext func(context.Context, net.Conn) context.Context
	// ConnState, if set, is told when a connection starts being served
	// (http.StateNew) and when it is closed (http.StateClosed).
	ConnState func(net.Conn, http.ConnState)
	// Log receives handler panics; nil means slog.Default().
	Log *slog.Logger
	// OnRefuse, if set, is told of every request the server answers
	// itself because it could not be read or served (a malformed head, a
	// header section over the limit, an unsupported Transfer-Encoding or
	// Expect, another HTTP version), with the status it sent, after the
	// answer was written. It runs on the connection's goroutine.
	OnRefuse func(c net.Conn, status int, err error)
	// HangupCheck is how often the connections of requests that have
	// been in the handler that long (with their body read) are looked at
	// for a client that hung up; the request's context is then
	// cancelled. 0 means DefaultHangupCheck.
	HangupCheck time.Duration

	// workers serve detached connections' requests once their wait
	// ended; track readies the pool under mu.
	workers workers.Pool[*conn]
	// attached bounds the detached connections waiting for their next
	// request on the worker that served their last.
	attached    workers.Waits
	mu          sync.Mutex
	conns       map[*conn]struct{}
	watching    bool // a watch goroutine runs
	shutdown    atomic.Bool
	noKeepAlive atomic.Bool
	done        chan struct{} // closed when the last connection ends after Shutdown
}

// ErrServerClosed is returned by ServeConn when the server is shutting
// down; the connection has been closed.
var ErrServerClosed = errors.New("h1server: server closed")

func (s *Server) readHeaderTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return DefaultReadHeaderTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (s *Server) headerLimit() int64 {
	n := s.MaxHeaderBytes
	if n <= 0 {
		n = DefaultMaxHeaderBytes
	}
	return int64(n) + 4096 // net/http's slack
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// ServeConn serves rwc until the client closes it, an error or timeout
// ends it, or the server shuts down. It runs the handler on the calling
// goroutine and closes rwc before it returns.
func (s *Server) ServeConn(rwc net.Conn) error {
	c := s.newConn(rwc, nil)
	if c == nil {
		return ErrServerClosed
	}
	if c.serve(true, false) {
		c.end()
	}
	return nil
}

// ServeConnDetached serves rwc as ServeConn does, but returns as soon as
// the connection waits for a request: the wait goes on on a goroutine of
// its own, which hands the request that comes to a worker (package
// workers) to serve, and so on. done is called
// once the connection has ended (rwc closed, or hijacked and its handler
// returned). A goroutine that has served a request has a stack grown to
// the depth of the request path (8 KiB and more), which the runtime does
// not give back while the goroutine waits; a fresh one waits on the
// runtime's smallest stack (2 KiB), so that an idle keep-alive connection
// costs a quarter of the memory, for one goroutine started per request.
// The request is served on a worker that keeps the stack an earlier
// request grew: a fresh goroutine serving it would grow its stack anew
// every time (15 % of an inbound sidecar's CPU went to copying stacks).
func (s *Server) ServeConnDetached(rwc net.Conn, done func()) error {
	if done == nil {
		done = func() {}
	}
	c := s.newConn(rwc, done)
	if c == nil {
		done()
		return ErrServerClosed
	}
	if c.serve(true, false) {
		c.end()
	}
	return nil
}

// newConn starts serving rwc; nil (rwc closed) when the server is
// shutting down.
func (s *Server) newConn(rwc net.Conn, done func()) *conn {
	ctx := context.Background()
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, rwc)
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &conn{s: s, rwc: rwc, ctx: ctx, cancel: cancel, done: done}
	if !s.track(c) {
		cancel()
		_ = rwc.Close()
		return nil
	}
	if s.ConnState != nil {
		s.ConnState(rwc, http.StateNew)
	}
	c.remoteAddr = rwc.RemoteAddr().String()
	c.first.conn = rwc
	c.lr.R = &c.first
	c.rec.r = &c.lr
	c.w.c = c
	return c
}

// end closes a connection whose serving has ended, unless it was
// hijacked (the handler owns it), and tells whoever waits for it.
func (c *conn) end() {
	s := c.s
	if c.hijacked {
		if s.ConnState != nil {
			s.ConnState(c.rwc, http.StateHijacked)
		}
	} else {
		_ = c.rwc.Close()
		if s.ConnState != nil {
			s.ConnState(c.rwc, http.StateClosed)
		}
		s.untrack(c)
	}
	c.cancel()
	if c.done != nil {
		c.done()
	}
}

// track registers c, unless the server is shutting down.
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
		s.workers.Do = serveAfterWait
		s.workers.Init()
	}
	s.conns[c] = struct{}{}
	if !s.watching {
		s.watching = true
		go s.watch()
	}
	return true
}

// watch looks, every HangupCheck, at the connections whose request has
// been in the handler for that long with its body read, and cancels the
// request of a client that hung up. net/http's server learns this at once
// from the background read it starts for every request; a look at a
// socket once a second costs nothing per request, and only a request that
// waits that long has anything to gain. It returns when no connection is
// left; track starts it again.
func (s *Server) watch() {
	every := s.HangupCheck
	if every <= 0 {
		every = DefaultHangupCheck
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var busy []*conn
	for range t.C {
		busy = busy[:0]
		now := time.Now().UnixNano()
		s.mu.Lock()
		if len(s.conns) == 0 {
			s.watching = false
			s.mu.Unlock()
			return
		}
		for c := range s.conns {
			// Only when nothing reads the connection: a look waits for a
			// blocked read to end.
			if st := c.reqStart.Load(); st != 0 && now-st >= int64(every) && c.w.bodyDone.Load() {
				busy = append(busy, c)
			}
		}
		s.mu.Unlock()
		for _, c := range busy {
			// On its own goroutine: if the request ends meanwhile and
			// the connection goes back to reading, the look waits for
			// that read, and must not hold up the others.
			if c.looking.CompareAndSwap(false, true) {
				go func() {
					defer c.looking.Store(false)
					if sockpeek.Look(c.rwc) == sockpeek.Closed {
						c.cancelRequest()
					}
				}()
			}
		}
	}
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if len(s.conns) == 0 && s.done != nil {
		close(s.done)
		s.done = nil
	}
	s.mu.Unlock()
}

// SetKeepAlivesEnabled controls whether connections are kept open
// between requests; when off, every response says Connection: close. A
// draining listener turns them off before it stops accepting.
func (s *Server) SetKeepAlivesEnabled(on bool) { s.noKeepAlive.Store(!on) }

// aLongTimeAgo is a deadline that has passed: setting it wakes a blocked
// read.
var aLongTimeAgo = time.Unix(1, 0)

// Shutdown stops the server gracefully: connections waiting for a request
// close now, busy ones after their response (which says Connection:
// close), and new connections are refused. If ctx ends first, the
// remaining connections are closed and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown.Store(true)
	if len(s.conns) == 0 {
		s.mu.Unlock()
		return nil
	}
	done := s.done
	if done == nil {
		done = make(chan struct{})
		s.done = done
	}
	for c := range s.conns {
		if c.state.Load() == stateIdle {
			_ = c.rwc.SetReadDeadline(aLongTimeAgo)
		}
	}
	s.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes every connection now and refuses new ones.
func (s *Server) Close() {
	s.mu.Lock()
	s.shutdown.Store(true)
	for c := range s.conns {
		_ = c.rwc.Close()
		c.cancelRequest() // ends what the handler waits for
	}
	s.mu.Unlock()
}
