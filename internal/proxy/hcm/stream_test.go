package hcm

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/allocstest"
	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// deadlineStream is a downstream stream that records read deadlines.
type deadlineStream struct {
	stream.Downstream
	set chan time.Time
}

func (d *deadlineStream) SetReadDeadline(t time.Time) error {
	select {
	case d.set <- t:
	default:
	}
	return nil
}

// TestStreamTimeouts checks that the one timer of a stream ends the
// request with the cause of whichever deadline comes first.
func TestStreamTimeouts(t *testing.T) {
	tests := []struct {
		name        string
		route, idle time.Duration
		body        bool // the request has a body, read to its end later
		want        error
	}{
		{"route first", 20 * time.Millisecond, time.Hour, false, ErrRouteTimeout},
		{"idle first", time.Hour, 20 * time.Millisecond, false, ErrStreamIdle},
		{"route only", 20 * time.Millisecond, 0, false, ErrRouteTimeout},
		{"idle only", 0, 20 * time.Millisecond, false, ErrStreamIdle},
		{"route after the body", 20 * time.Millisecond, time.Hour, true, ErrRouteTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := &deadlineStream{set: make(chan time.Time, 1)}
			var body io.ReadCloser
			if tt.body {
				body = io.NopCloser(strings.NewReader("abc"))
			}
			st, ctx := StartStream(context.Background(), ds, body, tt.route, tt.idle)
			defer st.Finish()
			if tt.body {
				if _, err := io.ReadAll(st.Body()); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the request was not cancelled")
			}
			if got := context.Cause(ctx); !errors.Is(got, tt.want) {
				t.Fatalf("cause %v, want %v", got, tt.want)
			}
			if tt.want == ErrStreamIdle {
				select {
				case <-ds.set:
				case <-time.After(10 * time.Second):
					t.Fatal("the idle timeout did not unblock the body read")
				}
			}
		})
	}
}

// TestStreamFinish checks that Finish ends the request's context with no
// timeout as its cause.
func TestStreamFinish(t *testing.T) {
	ds := &deadlineStream{set: make(chan time.Time, 1)}
	st, ctx := StartStream(context.Background(), ds, nil, time.Hour, time.Hour)
	st.Finish()
	if got := context.Cause(ctx); !errors.Is(got, context.Canceled) {
		t.Fatalf("cause after Finish %v, want context.Canceled", got)
	}
}

// TestStreamAllocations bounds what arming a request's timeouts
// allocates: the stream and its context (a cancelCtx and its done
// channel); the one timer comes from a pool. A timer per timeout took
// four more, a timer per stream two.
func TestStreamAllocations(t *testing.T) {
	ds := &deadlineStream{set: make(chan time.Time, 1)}
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := allocstest.Fewest(200, func() {
		st, _ := StartStream(parent, ds, nil, 15*time.Second, 5*time.Minute)
		st.Finish()
	})
	if n > 3 {
		t.Errorf("StartStream and Finish allocate %.0f times, want at most 3", n)
	}
}

// notifyingStream is a downstream stream that tells cancellation itself
// (stream.CancelNotifier), as h1server's do.
type notifyingStream struct {
	deadlineStream
	mu sync.Mutex
	l  stream.CancelListener
}

func (n *notifyingStream) NotifyCancel(l stream.CancelListener) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.l = l
	return true
}

func (n *notifyingStream) StopNotify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.l = nil
}

func (n *notifyingStream) cancel() {
	n.mu.Lock()
	l := n.l
	n.mu.Unlock()
	if l != nil {
		l.DownstreamCancelled()
	}
}

// TestStreamOwnContext checks the request context a stream keeps itself
// when the downstream notifies cancellation: it ends with the timeout's
// cause, with the downstream's cancellation, and with Finish, and runs
// what SetAbort and AfterFunc (a derived context) registered.
func TestStreamOwnContext(t *testing.T) {
	tests := []struct {
		name        string
		route, idle time.Duration
		cancel      bool // the downstream cancels
		want        error
	}{
		{"route timeout", 20 * time.Millisecond, time.Hour, false, ErrRouteTimeout},
		{"idle timeout", time.Hour, 20 * time.Millisecond, false, ErrStreamIdle},
		{"downstream cancelled", time.Hour, time.Hour, true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := &notifyingStream{deadlineStream: deadlineStream{set: make(chan time.Time, 1)}}
			parent, cancelParent := context.WithCancel(context.Background())
			defer cancelParent()
			st, ctx := StartStream(parent, ds, nil, tt.route, tt.idle)
			defer st.Finish()
			aborted := make(chan struct{})
			ab, ok := ctx.(interface{ SetAbort(func()) bool })
			if !ok || !ab.SetAbort(func() { close(aborted) }) {
				t.Fatal("the request context takes no abort function")
			}
			child, cancelChild := context.WithTimeout(ctx, time.Hour)
			defer cancelChild()
			if tt.cancel {
				cancelParent()
				ds.cancel()
			}
			for _, c := range []context.Context{ctx, child} {
				select {
				case <-c.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("the request was not cancelled")
				}
			}
			<-aborted
			if got := Cause(ctx); !errors.Is(got, tt.want) {
				t.Fatalf("cause %v, want %v", got, tt.want)
			}
			if ctx.Err() != context.Canceled {
				t.Fatalf("Err %v, want context.Canceled", ctx.Err())
			}
		})
	}
	t.Run("finish", func(t *testing.T) {
		ds := &notifyingStream{}
		st, ctx := StartStream(context.Background(), ds, nil, time.Hour, time.Hour)
		ab := ctx.(interface {
			SetAbort(func()) bool
			ClearAbort() bool
		})
		ab.SetAbort(func() { t.Error("a cleared abort ran") })
		if !ab.ClearAbort() {
			t.Fatal("ClearAbort found no abort")
		}
		st.Finish()
		if got := Cause(ctx); got != context.Canceled {
			t.Fatalf("cause after Finish %v, want context.Canceled", got)
		}
		ds.mu.Lock()
		defer ds.mu.Unlock()
		if ds.l != nil {
			t.Fatal("Finish left the cancel listener registered")
		}
	})
}

// TestStreamOwnContextAllocations bounds what a stream of a notifying
// downstream allocates: the stream; no context, no done channel, nothing
// to register an abort function, no timer (pooled).
func TestStreamOwnContextAllocations(t *testing.T) {
	ds := &notifyingStream{}
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := allocstest.Fewest(200, func() {
		st, ctx := StartStream(parent, ds, nil, 15*time.Second, 5*time.Minute)
		ab := ctx.(interface {
			SetAbort(func()) bool
			ClearAbort() bool
		})
		ab.SetAbort(cancel)
		ab.ClearAbort()
		st.Finish()
	})
	if n > 1 {
		t.Errorf("StartStream, SetAbort and Finish allocate %.0f times, want at most 1", n)
	}
}
