package stats

import (
	"strconv"
	"sync/atomic"
)

// Metric is the identity of one stat: its full Envoy name (what /stats
// prints), its tag-extracted name (what Prometheus and DogStatsD print)
// and its tags. It is computed once, when the stat is created, and never
// changes; sinks receive it by pointer and must not modify it.
type Metric struct {
	Name             string
	TagExtractedName string
	Tags             []Tag

	// Prometheus renderings, cached because a scrape renders every stat.
	promName   string
	promLabels string
}

// Counter is a monotonically increasing count. Inc and Add are a single
// atomic add and never allocate; a nil *Counter is a valid no-op, so a
// data path built without a Store runs unchanged.
type Counter struct {
	v    atomic.Uint64
	used atomic.Bool
	// latched is the value the Flusher last saw, for sinks' deltas.
	latched atomic.Uint64
	m       *Metric
	refs    int // guarded by Store.mu
}

// Inc adds one.
func (c *Counter) Inc() {
	if c == nil {
		return
	}
	c.v.Add(1)
	if !c.used.Load() {
		c.used.Store(true)
	}
}

// Add adds n.
func (c *Counter) Add(n uint64) {
	if c == nil {
		return
	}
	c.v.Add(n)
	if !c.used.Load() {
		c.used.Store(true)
	}
}

// Value is the current count.
func (c *Counter) Value() uint64 {
	if c == nil {
		return 0
	}
	return c.v.Load()
}

// Used reports whether the counter was ever incremented, which is what
// Envoy's usedonly filter and its sinks look at.
func (c *Counter) Used() bool { return c != nil && c.used.Load() }

// Metric is the counter's identity.
func (c *Counter) Metric() *Metric {
	if c == nil {
		return nil
	}
	return c.m
}

// latch returns the increase since the previous latch, for sinks that
// send deltas. A value below the latched one means the counter was reset
// in between, and then the whole value is the delta.
func (c *Counter) latch() (value, delta uint64) {
	v := c.v.Load()
	last := c.latched.Swap(v)
	if v >= last {
		return v, v - last
	}
	return v, v
}

func (c *Counter) reset() {
	c.v.Store(0)
	c.latched.Store(0)
}

// Gauge is a value that goes up and down (active connections, membership).
// Envoy's gauges are unsigned; this one is signed so that an imbalance
// shows as a negative number rather than as 18446744073709551615.
type Gauge struct {
	v    atomic.Int64
	used atomic.Bool
	m    *Metric
	refs int
}

// Set replaces the value.
func (g *Gauge) Set(v int64) {
	if g == nil {
		return
	}
	g.v.Store(v)
	g.markUsed()
}

// Add adds d (which may be negative).
func (g *Gauge) Add(d int64) {
	if g == nil {
		return
	}
	g.v.Add(d)
	g.markUsed()
}

// Sub subtracts d.
func (g *Gauge) Sub(d int64) { g.Add(-d) }

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

// Value is the current value.
func (g *Gauge) Value() int64 {
	if g == nil {
		return 0
	}
	return g.v.Load()
}

// Used reports whether the gauge was ever set.
func (g *Gauge) Used() bool { return g != nil && g.used.Load() }

// Metric is the gauge's identity.
func (g *Gauge) Metric() *Metric {
	if g == nil {
		return nil
	}
	return g.m
}

func (g *Gauge) markUsed() {
	if !g.used.Load() {
		g.used.Store(true)
	}
}

// TextReadout is a string-valued stat (Envoy prints, for example,
// control_plane.identifier this way). Set allocates nothing beyond what
// the caller passes; it is meant for config-time values, not per request.
type TextReadout struct {
	v    atomic.Pointer[string]
	m    *Metric
	refs int
}

// Set replaces the value.
func (t *TextReadout) Set(v string) {
	if t == nil {
		return
	}
	t.v.Store(&v)
}

// Value is the current value ("" before the first Set).
func (t *TextReadout) Value() string {
	if t == nil {
		return ""
	}
	if p := t.v.Load(); p != nil {
		return *p
	}
	return ""
}

// Used reports whether Set was ever called.
func (t *TextReadout) Used() bool { return t != nil && t.v.Load() != nil }

// Metric is the readout's identity.
func (t *TextReadout) Metric() *Metric {
	if t == nil {
		return nil
	}
	return t.m
}

// Response codes CodeCounters counts individually: Envoy's range.
const (
	minCode = 100
	maxCode = 599
)

// CodeCounters is the family <prefix>_<code> and <prefix>_<class>xx of one
// scope (upstream_rq_200, upstream_rq_2xx). Resolve it once with
// Scope.CodeCounters when configuration is applied; Inc then costs two
// atomic adds and, after the first request with a given code, never
// allocates or locks. A nil *CodeCounters is a valid no-op.
type CodeCounters struct {
	scope   *scopeState
	prefix  string
	codes   [maxCode - minCode + 1]atomic.Pointer[Counter]
	classes [5]atomic.Pointer[Counter]
}

// Inc counts one response with the given status code, in both the
// per-code and the per-class counter. Codes outside 100..599 are not
// counted (Envoy has no name for them either).
func (cc *CodeCounters) Inc(code int) {
	if cc == nil || code < minCode || code > maxCode {
		return
	}
	cc.Code(code).Inc()
	cc.Class(code).Inc()
}

// Code is the counter <prefix>_<code>, created on first use; nil for a
// code outside 100..599.
func (cc *CodeCounters) Code(code int) *Counter {
	if cc == nil || code < minCode || code > maxCode {
		return nil
	}
	slot := &cc.codes[code-minCode]
	if c := slot.Load(); c != nil {
		return c
	}
	return cc.slow(slot, cc.prefix+"_"+strconv.Itoa(code))
}

// Class is the counter <prefix>_<N>xx for code's class, created on first
// use; nil for a code outside 100..599.
func (cc *CodeCounters) Class(code int) *Counter {
	if cc == nil || code < minCode || code > maxCode {
		return nil
	}
	class := code / 100
	slot := &cc.classes[class-1]
	if c := slot.Load(); c != nil {
		return c
	}
	return cc.slow(slot, cc.prefix+"_"+strconv.Itoa(class)+"xx")
}

func (cc *CodeCounters) slow(slot *atomic.Pointer[Counter], name string) *Counter {
	s := cc.scope.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := slot.Load(); c != nil {
		return c
	}
	c := cc.scope.counterLocked(name)
	slot.Store(c)
	return c
}
