package hcm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// ErrStreamIdle is the cause of a request context cancelled because
// nothing moved on the stream for its idle timeout.
var ErrStreamIdle = errors.New("stream idle timeout")

// Stream holds one forwarded request's timers: Envoy's route timeout,
// which starts when the downstream request is complete, and its stream
// idle timeout, which fires when no body bytes move either way. It wraps
// the request body to see both the end of the request and activity.
//
// It is not pooled: the upstream transport may still read the body after
// the handler returned.
type Stream struct {
	rc     io.ReadCloser // downstream body; nil when there is none
	ctx    context.Context
	cancel context.CancelCauseFunc
	// ds is the downstream stream, whose body read the idle timeout
	// unblocks; mu orders that against Finish, after which ds may be
	// another request's.
	ds       stream.Downstream
	mu       sync.Mutex
	finished bool

	route      time.Duration
	routeTimer *time.Timer
	started    sync.Once // the route timer, at the request's end

	idle      time.Duration
	idleTimer *time.Timer
	// last is the time of the last activity, in UnixNano. Activity only
	// stores it; the idle timer re-arms itself from it, so the hot path
	// never touches the timer.
	last atomic.Int64
	// received counts the body bytes read from downstream.
	received atomic.Uint64
	// bodyErr is set when reading the downstream body failed (a
	// malformed chunk, a body shorter than its Content-Length, a reset):
	// the request is then the client's fault, whatever the upstream
	// attempt reports.
	bodyErr atomic.Pointer[downstreamBodyError]
}

// downstreamBodyError is an error reading the downstream request body. It
// wraps what the server's body reader said, and travels through the
// upstream transports (which wrap it in turn) so that the attempt's error
// can be told from an upstream failure.
type downstreamBodyError struct{ err error }

func (e *downstreamBodyError) Error() string { return "read downstream request body: " + e.err.Error() }
func (e *downstreamBodyError) Unwrap() error { return e.err }

// IsDownstreamBodyError reports whether err, or the stream, says that
// reading the downstream request body failed. The stream is asked too: a
// transport may replace the body reader's error with its own.
func IsDownstreamBodyError(err error, st *Stream) bool {
	if st.BodyFailed() {
		return true
	}
	var de *downstreamBodyError
	return err != nil && errors.As(err, &de)
}

// StartStream arms the timers of a request; route or idle 0 disables that
// timer. The caller must call finish.
func StartStream(ctx context.Context, ds stream.Downstream, body io.ReadCloser, route, idle time.Duration) (*Stream, context.Context) {
	s := &Stream{ds: ds, route: route, idle: idle}
	if body != nil && body != http.NoBody {
		s.rc = body
	}
	ctx, s.cancel = context.WithCancelCause(ctx)
	s.ctx = ctx
	if idle > 0 {
		s.last.Store(time.Now().UnixNano())
		s.idleTimer = time.AfterFunc(idle, s.idleCheck)
	}
	if s.rc == nil {
		s.started.Do(s.startRoute)
	}
	return s, ctx
}

// Body is what the upstream request reads.
func (s *Stream) Body() io.ReadCloser {
	if s.rc == nil {
		return nil
	}
	return s
}

// Read implements io.Reader over the downstream body.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if n > 0 {
		s.received.Add(uint64(n))
	}
	if n > 0 && s.idle > 0 {
		s.last.Store(time.Now().UnixNano())
	}
	switch {
	case err == nil:
	case err == io.EOF:
		// Envoy's route timeout starts once the downstream request is
		// complete, so a long upload or a client stream is not cut.
		s.started.Do(s.startRoute)
	case s.ctx.Err() != nil:
		// The request is over (client gone, timeout): its own outcome
		// says why, not the body.
	default:
		de := &downstreamBodyError{err}
		s.bodyErr.CompareAndSwap(nil, de)
		err = de
	}
	return n, err
}

// BodyFailed reports whether reading the downstream body failed.
func (s *Stream) BodyFailed() bool { return s != nil && s.bodyErr.Load() != nil }

// BodyError is the first error reading the downstream body, nil if none.
func (s *Stream) BodyError() error {
	if de := s.bodyErr.Load(); de != nil {
		return de.err
	}
	return nil
}

// Close implements io.Closer.
func (s *Stream) Close() error { return s.rc.Close() }

// Touch records response activity.
func (s *Stream) Touch() {
	if s.idle > 0 {
		s.last.Store(time.Now().UnixNano())
	}
}

func (s *Stream) startRoute() {
	if s.route > 0 {
		s.routeTimer = time.AfterFunc(s.route, func() { s.cancel(ErrRouteTimeout) })
	}
}

func (s *Stream) idleCheck() {
	if rest := s.idle - time.Since(time.Unix(0, s.last.Load())); rest > 0 {
		s.idleTimer.Reset(rest)
		return
	}
	s.cancel(ErrStreamIdle)
	// Unblock a read of a silent client's body.
	s.mu.Lock()
	if !s.finished {
		_ = s.ds.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
}

// Finish stops the timers; after it returns they cannot fire or start.
func (s *Stream) Finish() {
	s.started.Do(func() {}) // routeTimer is now written, if ever
	if s.routeTimer != nil {
		s.routeTimer.Stop()
	}
	if s.idleTimer != nil {
		s.idleTimer.Stop()
		s.mu.Lock()
		s.finished = true
		s.mu.Unlock()
	}
	s.cancel(nil)
}
