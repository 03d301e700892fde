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
	rc io.ReadCloser // downstream body; nil when there is none
	// ctx is the request's context: &own when the downstream tells
	// cancellation itself (stream.CancelNotifier), with no allocation
	// per request; else derived from the downstream request's context,
	// and cancel cancels it.
	ctx      context.Context
	cancel   context.CancelCauseFunc
	own      reqContext
	notifier stream.CancelNotifier
	// ds is the downstream stream, whose body read the idle timeout
	// unblocks; mu orders that and the timer against Finish, after which
	// ds may be another request's.
	ds       stream.Downstream
	mu       sync.Mutex
	finished bool

	// One timer serves both timeouts: it is armed for the earlier of the
	// two deadlines and, when it fires, cancels the request or re-arms
	// itself for what is left (under mu).
	timer   *streamTimer // from timerPool, given back by Finish
	timerAt int64        // UnixNano the timer is armed for
	route   time.Duration
	routeAt int64     // UnixNano of the route deadline; 0 before it starts
	started sync.Once // the route timeout, at the request's end

	idle time.Duration
	// last is the time of the last activity, in UnixNano. Activity only
	// stores it; the timer re-arms itself from it, so the hot path never
	// touches the timer.
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
	if n, ok := ds.(stream.CancelNotifier); ok {
		s.own.parent = ctx
		s.ctx = &s.own
		if n.NotifyCancel(s) {
			s.notifier = n
		} else {
			s.own.cancel(context.Cause(ctx))
		}
	} else {
		s.ctx, s.cancel = context.WithCancelCause(ctx)
	}
	ctx = s.ctx
	if idle > 0 {
		now := time.Now().UnixNano()
		s.last.Store(now)
		s.mu.Lock()
		s.armLocked(now, now+int64(idle))
		s.mu.Unlock()
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
	return s.account(n, err)
}

// ReadReady implements stream.ReadyReader when the downstream body does:
// what has arrived, without waiting (0 and nil otherwise).
func (s *Stream) ReadReady(p []byte) (int, error) {
	rr, ok := s.rc.(stream.ReadyReader)
	if !ok {
		return 0, nil
	}
	n, err := rr.ReadReady(p)
	if n == 0 && err == nil {
		return 0, nil
	}
	return s.account(n, err)
}

// account counts what a read of the downstream body returned, restarts
// the idle timer, starts the route timer at the end of the body and
// marks the stream's body failed on an error.
func (s *Stream) account(n int, err error) (int, error) {
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
	if s.route <= 0 {
		return
	}
	now := time.Now().UnixNano()
	s.mu.Lock()
	s.routeAt = now + int64(s.route)
	if s.timer == nil || s.routeAt < s.timerAt {
		s.armLocked(now, s.routeAt)
	}
	s.mu.Unlock()
}

// armLocked sets the timer to fire at the UnixNano at, unless the stream
// is finished. s.mu must be held.
func (s *Stream) armLocked(now, at int64) {
	if s.finished {
		return
	}
	s.timerAt = at
	if s.timer == nil {
		st := timerPool.Get().(*streamTimer)
		st.mu.Lock()
		st.owner = s
		st.mu.Unlock()
		s.timer = st
	}
	s.timer.t.Reset(time.Duration(at - now))
}

// streamTimer is a timer kept across streams in timerPool, so that arming
// a stream's timeouts allocates nothing. A firing meant for the stream
// that had it before is harmless: the owner's expire finds no deadline
// passed and re-arms the timer for its own.
type streamTimer struct {
	t     *time.Timer
	mu    sync.Mutex
	owner *Stream // nil while pooled
}

func (st *streamTimer) fire() {
	st.mu.Lock()
	s := st.owner
	st.mu.Unlock()
	if s != nil {
		s.expire()
	}
}

// timerPool holds stopped streamTimers; newStreamTimer makes one when it
// is empty (set in init: the timer's function leads back to the pool).
var timerPool sync.Pool

func init() { timerPool.New = newStreamTimer }

func newStreamTimer() any {
	st := new(streamTimer)
	st.t = time.AfterFunc(time.Hour, st.fire)
	st.t.Stop()
	return st
}

// expire runs when the timer fires: it cancels the request whose route
// or idle deadline passed, or re-arms the timer for the earlier deadline
// left.
func (s *Stream) expire() {
	now := time.Now().UnixNano()
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return
	}
	var cause error
	var next int64
	if s.routeAt != 0 {
		if now >= s.routeAt {
			cause = ErrRouteTimeout
		} else {
			next = s.routeAt
		}
	}
	if cause == nil && s.idle > 0 {
		if idleAt := s.last.Load() + int64(s.idle); now >= idleAt {
			cause = ErrStreamIdle
		} else if next == 0 || idleAt < next {
			next = idleAt
		}
	}
	if cause == nil {
		if next != 0 {
			s.armLocked(now, next)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.cancelWith(cause)
	if cause == ErrStreamIdle {
		// Unblock a read of a silent client's body.
		s.mu.Lock()
		if !s.finished {
			_ = s.ds.SetReadDeadline(time.Now())
		}
		s.mu.Unlock()
	}
}

// Finish stops the timer; after it returns the timeouts cannot start,
// and a timer that fires finds the stream finished.
func (s *Stream) Finish() {
	s.started.Do(func() {}) // a route timeout being started has been
	s.mu.Lock()
	s.finished = true
	if st := s.timer; st != nil {
		st.t.Stop()
		st.mu.Lock()
		st.owner = nil
		st.mu.Unlock()
		s.timer = nil
		timerPool.Put(st)
	}
	s.mu.Unlock()
	if s.notifier != nil {
		s.notifier.StopNotify()
	}
	s.cancelWith(nil)
}

// cancelWith cancels the request's context with cause (nil: Canceled).
func (s *Stream) cancelWith(cause error) {
	if s.cancel != nil {
		s.cancel(cause)
		return
	}
	s.own.cancel(cause)
}

// DownstreamCancelled implements stream.CancelListener: the downstream
// request's context was cancelled (the client went away), so the
// request's is, with its cause.
func (s *Stream) DownstreamCancelled() { s.own.cancel(context.Cause(s.own.parent)) }

// Cause is context.Cause for a context StartStream returned (and for
// any other): why the request was cancelled, nil while it is not.
func Cause(ctx context.Context) error {
	if c, ok := ctx.(*reqContext); ok {
		return c.Cause()
	}
	return context.Cause(ctx)
}
