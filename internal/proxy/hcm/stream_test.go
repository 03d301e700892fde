package hcm

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

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
// allocates: the stream, its context, one timer and its function. A
// timer per timeout took two more.
func TestStreamAllocations(t *testing.T) {
	ds := &deadlineStream{set: make(chan time.Time, 1)}
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := testing.AllocsPerRun(200, func() {
		st, _ := StartStream(parent, ds, nil, 15*time.Second, 5*time.Minute)
		st.Finish()
	})
	if n > 5 {
		t.Errorf("StartStream and Finish allocate %.0f times, want at most 5", n)
	}
}
