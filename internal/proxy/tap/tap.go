package tap

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/tapwire"
)

// Limits of a proxy's taps.
const (
	// MaxTaps is the number of taps open at once.
	MaxTaps = 4
	// RatePerSecond is the number of events per second the proxy samples
	// for all its taps together; requests beyond it are not tapped.
	RatePerSecond = 100
	// buffer is the events a tap holds for its reader; beyond it the
	// reader loses events.
	buffer = 256
	// maxHeaders is the number of request headers an event carries.
	maxHeaders = 32
	// maxValue is the length of a shown header value; longer ones are cut.
	maxValue = 256
)

// ErrTooManyTaps is returned by Open when MaxTaps taps are open.
var ErrTooManyTaps = errors.New("too many taps open on this proxy")

// Redacted replaces a header value that is not shown.
const Redacted = tapwire.Redacted

// Event is one tapped request (tapwire.Event).
type Event = tapwire.Event

// Filter says which requests a tap wants (tapwire.Filter).
type Filter = tapwire.Filter

// Tap is one open tap. Its events arrive on C until Close.
type Tap struct {
	filter  Filter
	c       chan *Event
	dropped atomic.Uint64
	closed  atomic.Bool
}

// C delivers the tap's events.
func (t *Tap) C() <-chan *Event { return t.c }

// Dropped is the number of events lost because the reader was slow.
func (t *Tap) Dropped() uint64 { return t.dropped.Load() }

// Close ends the tap; when the last tap closes, Load returns nil again.
func (t *Tap) Close() {
	if t.closed.Swap(true) {
		return
	}
	hub.mu.Lock()
	defer hub.mu.Unlock()
	var rest []*Tap
	for _, o := range hub.taps {
		if o != t {
			rest = append(rest, o)
		}
	}
	hub.taps = rest
	if len(rest) == 0 {
		hub.cur.Store(nil)
		return
	}
	hub.cur.Store(&Set{taps: rest})
}

// Set is the taps open at one moment; the request path reads it with
// Load.
type Set struct {
	taps []*Tap
}

var hub struct {
	mu   sync.Mutex
	taps []*Tap
	cur  atomic.Pointer[Set]

	// The sampling budget: a token bucket of RatePerSecond.
	rateMu sync.Mutex
	tokens float64
	last   time.Time
}

// Load is the open taps, nil when there are none: one atomic load, the
// only cost of tapping on the request path while nobody taps.
func Load() *Set { return hub.cur.Load() }

// Open opens a tap with filter f.
func Open(f Filter) (*Tap, error) {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if len(hub.taps) >= MaxTaps {
		return nil, ErrTooManyTaps
	}
	t := &Tap{filter: f, c: make(chan *Event, buffer)}
	hub.taps = append(hub.taps[:len(hub.taps):len(hub.taps)], t)
	hub.cur.Store(&Set{taps: hub.taps})
	return t, nil
}

// Wants reports whether a tap wants a request, before the event is built.
func (s *Set) Wants(method, authority, path string) bool {
	for _, t := range s.taps {
		if t.filter.Match(method, authority, path) {
			return true
		}
	}
	return false
}

// Publish hands ev, with the request's headers h, to the taps that want
// it, if the proxy's sampling budget allows: each tap gets its own copy
// with the headers it may see. It never blocks: a tap whose reader is
// behind loses the event.
func (s *Set) Publish(ev Event, h http.Header) {
	if !take(time.Now()) {
		return
	}
	for _, t := range s.taps {
		if !t.filter.Match(ev.Method, ev.Authority, ev.Path) {
			continue
		}
		e := ev
		e.Headers = Headers(h, t.filter.ShowHeaders)
		select {
		case t.c <- &e:
		default:
			t.dropped.Add(1)
		}
	}
}

// take spends one event of the sampling budget.
func take(now time.Time) bool {
	hub.rateMu.Lock()
	defer hub.rateMu.Unlock()
	if !hub.last.IsZero() {
		hub.tokens += now.Sub(hub.last).Seconds() * RatePerSecond
	} else {
		hub.tokens = RatePerSecond
	}
	hub.last = now
	if hub.tokens > RatePerSecond {
		hub.tokens = RatePerSecond
	}
	if hub.tokens < 1 {
		return false
	}
	hub.tokens--
	return true
}

// Denied are the headers whose values a tap never shows: they carry
// credentials. Names containing "token", "secret", "password" or
// "api-key" are denied as well.
var Denied = []string{
	"authorization", "proxy-authorization", "cookie", "set-cookie",
	"x-api-key", "x-amz-security-token", "x-auth-token", "x-csrf-token",
	"x-xsrf-token", "x-forwarded-client-cert", "www-authenticate", "proxy-authenticate",
}

// denied reports whether a header's value must never be shown.
func denied(name string) bool {
	n := strings.ToLower(name)
	for _, d := range Denied {
		if n == d {
			return true
		}
	}
	for _, part := range []string{"token", "secret", "password", "api-key", "apikey", "credential", "session"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

// Headers is what a tap sees of request headers h: their names (lower
// case, at most 32), each with Redacted, or with its first value (cut to
// 256 bytes) when show is set and the header is not denied.
func Headers(h http.Header, show bool) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]string, min(len(h), maxHeaders))
	for k, vv := range h {
		if len(out) == maxHeaders {
			break
		}
		v := Redacted
		if show && !denied(k) && len(vv) > 0 {
			v = vv[0]
			if len(v) > maxValue {
				v = v[:maxValue]
			}
		}
		out[strings.ToLower(k)] = v
	}
	return out
}
