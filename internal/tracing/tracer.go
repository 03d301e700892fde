package tracing

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/meshlens/meshlens/internal/tracing/propagation"
	"github.com/meshlens/meshlens/internal/tracing/sampling"
)

// Exporter takes finished spans. Export must not block (queue, or count
// a drop) and must copy what it keeps: d is a value, and its slices are
// the exporter's to keep (they are never written again).
type Exporter interface {
	Export(d SpanData)
}

// Config configures a Tracer.
type Config struct {
	// Resource names the proxy on every span.
	Resource Resource
	// Sampler makes head decisions and holds the tail rule; nil samples
	// only requests that arrive sampled.
	Sampler *sampling.Sampler
	// Exporters receive head-sampled spans (collectors).
	Exporters []Exporter
	// Store receives head-sampled and tail-kept spans (the built-in
	// store); nil for none.
	Store Exporter
	// MaxExtraAttrs bounds a span's extra attributes (default 16);
	// MaxEvents its events (default 16).
	MaxExtraAttrs, MaxEvents int
}

// Tracer makes spans. It is safe for concurrent use; a nil *Tracer
// traces nothing (Begin returns an unsampled Request, StartServer nil).
type Tracer struct {
	res       *Resource
	sampler   *sampling.Sampler
	exporters []Exporter
	store     Exporter
	maxExtra  int
	maxEvents int
	pool      sync.Pool
}

// New makes a Tracer.
func New(cfg Config) *Tracer {
	t := &Tracer{
		res:       &Resource{},
		sampler:   cfg.Sampler,
		exporters: append([]Exporter(nil), cfg.Exporters...),
		store:     cfg.Store,
		maxExtra:  cfg.MaxExtraAttrs,
		maxEvents: cfg.MaxEvents,
	}
	*t.res = cfg.Resource
	if t.maxExtra <= 0 {
		t.maxExtra = 16
	}
	if t.maxEvents <= 0 {
		t.maxEvents = 16
	}
	t.pool.New = func() any { return new(Span) }
	return t
}

// Resource is the tracer's resource.
func (t *Tracer) Resource() Resource { return *t.res }

// Request is the always-on, minimal record of one request's trace: a
// plain value (no allocation) that the proxy keeps in its per-stream
// state. Ctx is this hop's context: the trace id (the caller's, or a new
// one), the id of this hop's server span (recorded or not) and the
// decision; it is what the access log prints and, when Span is nil, what
// is propagated upstream.
type Request struct {
	Ctx propagation.SpanContext
	// Parent is the caller's span id; zero for a trace started here.
	Parent [8]byte
	// Route is the route name the decision was made for.
	Route string
	Start time.Time
	// Span is the server span; nil when head sampling said no.
	Span *Span
}

// Begin makes the head decision for a request that arrived with parent
// (the zero SpanContext when none did, or a decision only) and matched
// route, and starts the server span when sampled. Unsampled, it
// allocates nothing.
func (t *Tracer) Begin(parent propagation.SpanContext, route string, start time.Time) Request {
	return t.BeginHTTP(parent, route, start, "", "", "")
}

// BeginHTTP is Begin for an HTTP request to host with method and path,
// which the sampler's rules may match.
func (t *Tracer) BeginHTTP(parent propagation.SpanContext, route string, start time.Time, host, method, path string) Request {
	r := t.DecideHTTP(parent, route, start, host, method, path)
	if t != nil && r.Ctx.Sampled {
		r.Span = t.startServer(r, false)
	}
	return r
}

// Decide is Begin without the server span, for a hop that records only
// client spans (a sidecar's egress: the caller's span is its parent):
// StartClientOf makes them. Unsampled, it allocates nothing.
func (t *Tracer) Decide(parent propagation.SpanContext, route string, start time.Time) Request {
	return t.DecideHTTP(parent, route, start, "", "", "")
}

// DecideHTTP is Decide for an HTTP request to host with method and path,
// which the sampler's rules may match.
func (t *Tracer) DecideHTTP(parent propagation.SpanContext, route string, start time.Time, host, method, path string) Request {
	if t == nil {
		return Request{Ctx: parent, Start: start, Route: route}
	}
	r := Request{Route: route, Start: start}
	ctx := propagation.SpanContext{
		TraceID: parent.TraceID, SpanID: newSpanID(), TraceState: parent.TraceState,
		Debug: parent.Debug, Sampled: parent.Sampled, SampledKnown: parent.SampledKnown,
	}
	if parent.IsValid() {
		r.Parent = parent.SpanID
	} else {
		ctx.TraceID = newTraceID(start)
		ctx.TraceState = ""
	}
	ctx.Sampled = t.sampler.SampleHTTP(ctx, route, host, method, path, start)
	ctx.SampledKnown = true
	r.Ctx = ctx
	return r
}

// StartClientOf starts a client span (an upstream attempt) of a request
// Decide sampled, as a child of the caller's span (r.Parent): nil when
// the request is not sampled.
func (t *Tracer) StartClientOf(r *Request, attempt int, start time.Time) *Span {
	if t == nil || !r.Ctx.Sampled {
		return nil
	}
	c := t.get()
	c.d.Kind = KindClient
	c.d.TraceID = r.Ctx.TraceID
	c.d.SpanID = newSpanID()
	c.d.ParentID = r.Parent
	c.d.TraceState = r.Ctx.TraceState
	c.d.Debug = r.Ctx.Debug
	c.d.Start = start
	c.d.Mesh.Route = r.Route
	c.d.Mesh.Attempt = attempt
	return c
}

// StartServer is Begin for callers that need only the span: nil when
// the request is not sampled.
func (t *Tracer) StartServer(parent propagation.SpanContext, route string, start time.Time) *Span {
	return t.Begin(parent, route, start).Span
}

// KeepTail reports whether the tail rule keeps an unsampled request that
// ended with an HTTP status (0: none sent), a gRPC status (-1: none)
// after d. It allocates nothing.
func (t *Tracer) KeepTail(statusCode, grpcStatus int, d time.Duration) bool {
	if t == nil || t.store == nil {
		return false
	}
	return t.sampler.Tail().Keep(statusCode, grpcStatus, d)
}

// Materialize makes, at the end of an unsampled request, the server span
// it would have had: the same ids and start, marked tail-kept, so that it
// reaches the built-in store only. The caller fills its attributes and
// Ends it. It returns r.Span when the request was sampled, and nil on a
// nil Tracer.
func (t *Tracer) Materialize(r *Request) *Span {
	if t == nil {
		return nil
	}
	if r.Span != nil {
		return r.Span
	}
	r.Span = t.startServer(*r, true)
	return r.Span
}

func (t *Tracer) startServer(r Request, tail bool) *Span {
	s := t.get()
	s.d.Kind = KindServer
	s.d.TraceID = r.Ctx.TraceID
	s.d.SpanID = r.Ctx.SpanID
	s.d.ParentID = r.Parent
	s.d.TraceState = r.Ctx.TraceState
	s.d.Debug = r.Ctx.Debug
	s.d.TailKept = tail
	s.d.Start = r.Start
	s.d.Mesh.Route = r.Route
	return s
}

func (t *Tracer) get() *Span {
	s := t.pool.Get().(*Span)
	s.tracer = t
	s.d.Resource = t.res
	return s
}

// put resets s, keeping its slices' capacity for the next span.
func (t *Tracer) put(s *Span) {
	extra, events := s.d.Extra[:0], s.d.Events[:0]
	clear(s.d.Extra)
	s.d = SpanData{Extra: extra, Events: events}
	s.tracer = nil
	t.pool.Put(s)
}

// export hands a copy of d to the exporters: the slices are copied once
// (the only allocation of a recorded span, and none when it has no
// extras or events) and shared, read-only, by every exporter.
func (t *Tracer) export(d *SpanData) {
	c := *d
	if len(d.Extra) > 0 {
		c.Extra = append([]Attr(nil), d.Extra...)
	} else {
		c.Extra = nil
	}
	if len(d.Events) > 0 {
		c.Events = append([]Event(nil), d.Events...)
	} else {
		c.Events = nil
	}
	if !c.TailKept {
		for _, e := range t.exporters {
			e.Export(c)
		}
	}
	if t.store != nil {
		t.store.Export(c)
	}
}

// newTraceID is a new 128-bit trace id: the start time in epoch seconds
// in the first 4 bytes, as X-Ray requires of its trace ids (it rejects
// ids whose time is far off), and 12 random bytes, the low 8 of which
// the sampler reads. math/rand/v2's top-level functions use the runtime's
// per-thread ChaCha8 generator: no lock, no allocation.
func newTraceID(start time.Time) (id [16]byte) {
	secs := uint32(start.Unix())
	id[0], id[1], id[2], id[3] = byte(secs>>24), byte(secs>>16), byte(secs>>8), byte(secs)
	for isZero8(id[8:]) {
		r := rand.Uint64()
		id[4], id[5], id[6], id[7] = byte(r>>24), byte(r>>16), byte(r>>8), byte(r)
		putUint64(id[8:], rand.Uint64())
	}
	return id
}

func isZero8(b []byte) bool {
	return b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] == 0
}

// newSpanID is a random non-zero 64-bit id.
func newSpanID() (id [8]byte) {
	for id == [8]byte{} {
		putUint64(id[:], rand.Uint64())
	}
	return id
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}
