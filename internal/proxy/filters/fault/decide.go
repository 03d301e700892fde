package fault

import (
	"time"

	"github.com/meshlens/meshlens/internal/proxy/filters/percent"
)

// HeaderGetter reads a request header by its canonical MIME name; an
// absent header reads as "". http.Header satisfies it.
type HeaderGetter interface {
	Get(key string) string
}

// Decision is what the filter does to one request: wait Delay, then, if
// Abort is not 0, answer locally with HTTP status Abort instead of
// forwarding. A gRPC abort is Abort 200 with GRPC set and GRPCAbort the
// grpc-status (0 is a valid status, hence the flag), as Envoy sends it.
// Body, when set, is the local reply's body.
type Decision struct {
	Delay     time.Duration
	Abort     int
	GRPCAbort int
	GRPC      bool
	Body      string
}

// Faulted reports whether the decision does anything.
func (d Decision) Faulted() bool { return d.Delay > 0 || d.Abort != 0 }

// Decide returns the fault for a request with headers h. rnd is one
// uniformly random draw (e.g. math/rand/v2's Uint64); the delay and the
// abort use independent fractions of it. A nil Config decides nothing.
// Decide does not allocate.
func (c *Config) Decide(h HeaderGetter, rnd uint64) Decision {
	var d Decision
	if c == nil || (!c.hasDelay && c.abort == abortNone) {
		return d
	}
	if !c.selects(h) {
		return d
	}
	if c.hasDelay {
		d.Delay = c.delay(h, rnd)
	}
	if c.abort != abortNone {
		c.decideAbort(h, percent.Mix(rnd), &d)
	}
	return d
}

// selects applies downstream_nodes and headers.
func (c *Config) selects(h HeaderGetter) bool {
	if len(c.nodes) > 0 {
		node := h.Get(HeaderDownstreamServiceNode)
		found := false
		for _, n := range c.nodes {
			if n == node {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for i := range c.headers {
		if !c.headers[i].match(h) {
			return false
		}
	}
	return true
}

func (m *headerMatcher) match(h HeaderGetter) bool {
	v := h.Get(m.name)
	var ok bool
	switch {
	case m.present:
		ok = v != ""
	case v == "" && !m.missing:
		ok = false
	default:
		ok = m.m.Match(v)
	}
	return ok != m.invert
}

func (c *Config) delay(h HeaderGetter, rnd uint64) time.Duration {
	pct := c.delayPct
	dur := c.fixedDelay
	if c.headerDelay {
		ms, ok := ParseUint(h.Get(HeaderDelayRequest))
		if !ok || ms == 0 {
			return 0
		}
		dur = msDuration(ms)
		if n, ok := ParseUint(h.Get(HeaderDelayRequestPercentage)); ok {
			pct = pct.Capped(clamp32(n))
		}
	}
	if !pct.Hit(rnd) {
		return 0
	}
	return dur
}

func (c *Config) decideAbort(h HeaderGetter, rnd uint64, d *Decision) {
	pct := c.abortPct
	if c.abort == abortHeader {
		if n, ok := ParseUint(h.Get(HeaderAbortRequestPercentage)); ok {
			pct = pct.Capped(clamp32(n))
		}
	}
	if !pct.Hit(rnd) {
		return
	}
	switch c.abort {
	case abortHTTP:
		d.Abort = c.abortHTTP
	case abortGRPC:
		d.Abort, d.GRPCAbort, d.GRPC = 200, c.abortGRPC, true
	case abortHeader:
		// An HTTP status wins over a gRPC one, as in Envoy.
		if s, ok := ParseHTTPStatus(h.Get(HeaderAbortRequest)); ok {
			d.Abort = s
		} else if g, ok := ParseGRPCStatus(h.Get(HeaderAbortGRPCRequest)); ok {
			d.Abort, d.GRPCAbort, d.GRPC = 200, g, true
		} else {
			return
		}
	}
	d.Body = c.abortBody
}

// ParseUint parses a header value as a decimal unsigned integer, as
// Envoy's header-controlled faults do: digits only, no sign, no spaces,
// no overflow.
func ParseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// ParseHTTPStatus parses x-envoy-fault-abort-request: a status in
// [200, 600), else no abort.
func ParseHTTPStatus(s string) (int, bool) {
	n, ok := ParseUint(s)
	if !ok || n < 200 || n >= 600 {
		return 0, false
	}
	return int(n), true
}

// ParseGRPCStatus parses x-envoy-fault-abort-grpc-request: a status in
// [0, 16], the well-known gRPC codes, else no abort (Envoy's documented
// range).
func ParseGRPCStatus(s string) (int, bool) {
	n, ok := ParseUint(s)
	if !ok || n > 16 {
		return 0, false
	}
	return int(n), true
}

// msDuration converts milliseconds to a Duration, saturating at maxDelay's
// order of magnitude so that no header value overflows.
func msDuration(ms uint64) time.Duration {
	const maxMS = uint64(1<<63-1) / uint64(time.Millisecond)
	if ms > maxMS {
		ms = maxMS
	}
	return time.Duration(ms) * time.Millisecond
}

func clamp32(n uint64) uint32 {
	if n > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(n)
}
