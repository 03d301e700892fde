package hcm

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// reqContext is a forwarded request's context when the downstream codec
// tells the request's cancellation itself (stream.CancelNotifier): it
// lives in the Stream, so a request allocates no context, no done
// channel unless someone asks for it, and (with an upstream codec that
// uses SetAbort, h1client) no context.AfterFunc registration. It is
// cancelled by the stream's timeouts with their cause, by Finish, and
// when the downstream says its request was cancelled. Values come from
// the downstream request's context.
type reqContext struct {
	parent context.Context

	mu    sync.Mutex
	done  chan struct{} // made by Done, closed at cancel
	err   error         // context.Canceled once cancelled
	cause error
	abort func() // SetAbort's, run at cancel
	after []*afterFunc
}

// afterFunc is one AfterFunc registration: state 0 while waiting, 1
// once stopped, 2 once run.
type afterFunc struct {
	f     func()
	state atomic.Int32
}

func (a *afterFunc) stop() bool { return a.state.CompareAndSwap(0, 1) }

// closedDone is the Done channel of a context cancelled before anyone
// asked for it.
var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Deadline implements context.Context: the downstream request's.
func (c *reqContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }

// Value implements context.Context: the downstream request's values.
func (c *reqContext) Value(key any) any { return c.parent.Value(key) }

// Done implements context.Context.
func (c *reqContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			c.done = closedDone
		} else {
			c.done = make(chan struct{})
		}
	}
	return c.done
}

// Err implements context.Context.
func (c *reqContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Cause is why the context was cancelled (context.Canceled when no
// cause was given), nil while it is not.
func (c *reqContext) Cause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// AfterFunc arranges for f to run on its own goroutine once the context
// is cancelled, as context.AfterFunc does; contexts derived from this
// one (context.WithTimeout) use it instead of a goroutine each.
func (c *reqContext) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		a.state.Store(2)
		go f()
		return a.stop
	}
	c.after = append(c.after, a)
	c.mu.Unlock()
	return a.stop
}

// SetAbort arranges for abort to run, on the cancelling goroutine, once
// the context is cancelled, unless ClearAbort comes first: an upstream
// codec's way to end a blocked exchange without context.AfterFunc's
// allocations. It reports false, arranging nothing, when the context is
// cancelled already or holds another abort.
func (c *reqContext) SetAbort(abort func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.abort != nil {
		return false
	}
	c.abort = abort
	return true
}

// ClearAbort forgets SetAbort's function; it reports false when that has
// run or is running (or there was none).
func (c *reqContext) ClearAbort() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	had := c.abort != nil
	c.abort = nil
	return had
}

// cancel cancels the context with cause (nil: context.Canceled); only
// the first call counts.
func (c *reqContext) cancel(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err, c.cause = context.Canceled, cause
	if c.done == nil {
		c.done = closedDone
	} else {
		close(c.done)
	}
	abort, after := c.abort, c.after
	c.abort, c.after = nil, nil
	c.mu.Unlock()
	if abort != nil {
		abort()
	}
	for _, a := range after {
		if a.state.CompareAndSwap(0, 2) {
			go a.f()
		}
	}
}
