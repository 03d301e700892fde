// Package tracestore is the control plane's built-in trace store. It
// receives spans over OTLP (gRPC and HTTP/protobuf), keeps the newest of
// them in memory within a span count and a byte budget, and answers the
// query API of Jaeger's query service (/api/services, /api/traces, ...)
// so that Grafana's Jaeger data source or the Jaeger UI pointed at the
// control plane's API shows the mesh's traces with no Jaeger installed.
//
// Spans are converted to Jaeger's JSON model when they arrive, the way
// Jaeger's own OTLP receiver converts them (span kind, status and scope
// become tags, events become logs, links become FOLLOWS_FROM references),
// so a query is a filter over ready answers. The wire types are the OTLP
// module's; the Jaeger JSON types are written here because Jaeger's own
// live inside its server module, which is far too large a dependency for
// a dozen struct definitions.
package tracestore

import (
	"cmp"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Defaults of Options.
const (
	DefaultMaxSpans = 100_000
	DefaultMaxBytes = 128 << 20
	// spanOverhead is added to a span's encoded size to account for the
	// Go values that hold it once converted.
	spanOverhead = 256
)

// Options bounds a Store.
type Options struct {
	// MaxSpans is how many spans the store keeps (default
	// DefaultMaxSpans); the oldest are evicted first.
	MaxSpans int
	// MaxBytes bounds the memory the kept spans take, counted as their
	// encoded OTLP size plus a fixed overhead each (default
	// DefaultMaxBytes); the oldest are evicted first.
	MaxBytes int64
	// MaxRequestBytes bounds an OTLP/HTTP request body after
	// decompression (default DefaultMaxRequestBytes).
	MaxRequestBytes int64
	// Dir, when set, keeps the spans on disk as well, within
	// MaxDiskBytes, and replays them at Open (see disk.go).
	Dir string
	// MaxDiskBytes bounds the files under Dir (default
	// DefaultMaxDiskBytes); the oldest are deleted first.
	MaxDiskBytes int64
	// Logger receives the store's rare warnings (default slog.Default).
	Logger *slog.Logger
	// Now is the clock queries are relative to (default time.Now).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.MaxSpans <= 0 {
		o.MaxSpans = DefaultMaxSpans
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.MaxDiskBytes <= 0 {
		o.MaxDiskBytes = DefaultMaxDiskBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// traceID is a 128-bit trace id; spanID a 64-bit span id.
type (
	traceID [16]byte
	spanID  [8]byte
)

// String writes a trace id as Jaeger does: 16 hex digits when the high
// half is zero, 32 otherwise.
func (t traceID) String() string {
	if [8]byte(t[:8]) == ([8]byte{}) {
		return hex.EncodeToString(t[8:])
	}
	return hex.EncodeToString(t[:])
}

func (s spanID) String() string { return hex.EncodeToString(s[:]) }

// parseTraceID reads a trace id of 1 to 32 hex digits, as Jaeger's
// TraceIDFromString does (shorter ids are the low bits).
func parseTraceID(s string) (traceID, error) {
	var id traceID
	if s == "" || len(s) > 32 {
		return id, errors.New("trace id must be 1 to 32 hex digits")
	}
	padded := strings.Repeat("0", 32-len(s)) + s
	if _, err := hex.Decode(id[:], []byte(padded)); err != nil {
		return id, errors.New("trace id must be 1 to 32 hex digits")
	}
	return id, nil
}

// stored is one span as kept: its Jaeger form and what queries look at.
type stored struct {
	trace   traceID
	id      spanID
	process *Process
	procKey string // identifies equal processes within a trace
	span    Span   // ProcessID is filled per answer
	start   int64  // µs since the epoch
	dur     int64  // µs
	size    int64
}

// trace is the spans of one trace kept, in arrival order.
type trace struct {
	spans []*stored
}

// serviceIndex lists a service's operations (by name and span kind) and
// traces, each with how many kept spans refer to it.
type serviceIndex struct {
	ops    map[Operation]int
	traces map[traceID]int
}

// Stats counts what the store took in and let go.
type Stats struct {
	Spans, Bytes   int64 // kept now
	Received       int64 // spans accepted
	Rejected       int64 // spans refused (bad ids, too large)
	Evicted        int64 // spans dropped to stay within the bounds
	Traces         int   // traces kept now
	Services       int   // services kept now
	MaxSpans       int
	MaxBytes       int64
	DuplicateSpans int64 // spans received again and ignored
	DiskBytes      int64 // bytes of the on-disk segments (0 without Dir)
}

// Store keeps a bounded window of spans. It is safe for concurrent use.
type Store struct {
	opts Options
	disk *disk // nil without Options.Dir

	mu       sync.RWMutex
	queue    []*stored // arrival order; queue[head] is the oldest
	head     int
	bytes    int64
	traces   map[traceID]*trace
	services map[string]*serviceIndex
	stats    Stats
}

// New returns an empty store kept in memory only (Options.Dir is
// ignored; see Open).
func New(opts Options) *Store {
	opts.setDefaults()
	return &Store{opts: opts, traces: map[traceID]*trace{}, services: map[string]*serviceIndex{}}
}

// Open returns a store; with Options.Dir it first replays the spans kept
// there, and keeps new ones there too.
func Open(opts Options) (*Store, error) {
	s := New(opts)
	if s.opts.Dir == "" {
		return s, nil
	}
	d, err := openDisk(s.opts.Dir, s.opts.MaxDiskBytes, s.opts.Logger, func(rss []*tracepb.ResourceSpans) { s.add(rss) })
	if err != nil {
		return nil, err
	}
	s.disk = d
	return s, nil
}

// Close closes the store's files; the store still answers queries.
func (s *Store) Close() error {
	if s.disk == nil {
		return nil
	}
	return s.disk.close()
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.stats
	st.Spans = int64(len(s.queue) - s.head)
	st.Bytes = s.bytes
	st.Traces = len(s.traces)
	st.Services = len(s.services)
	st.MaxSpans, st.MaxBytes = s.opts.MaxSpans, s.opts.MaxBytes
	if s.disk != nil {
		st.DiskBytes = s.disk.usage()
	}
	return st
}

// rejection says why some spans of an export were refused.
type rejection struct {
	count int64
	first string
}

func (r *rejection) add(msg string) {
	if r.count == 0 {
		r.first = msg
	}
	r.count++
}

// Add stores the spans of an OTLP export (and, with Options.Dir, appends
// the export to disk). It returns how many spans were refused and why
// (the first reason), for OTLP's partial success.
func (s *Store) Add(rss []*tracepb.ResourceSpans) (rejected int64, reason string) {
	rejected, reason, kept := s.add(rss)
	if kept > 0 && s.disk != nil {
		s.disk.append(rss)
	}
	return rejected, reason
}

// add stores the spans of an export in memory and counts them.
func (s *Store) add(rss []*tracepb.ResourceSpans) (rejected int64, reason string, kept int) {
	var rej rejection
	var batch []*stored
	for _, rs := range rss {
		proc := processOf(rs.GetResource())
		pkey := proc.key()
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				st, msg := convert(sp, ss.GetScope().GetName(), ss.GetScope().GetVersion())
				if st == nil {
					rej.add(msg)
					continue
				}
				st.process, st.procKey = proc, pkey
				st.size = int64(proto.Size(sp)) + spanOverhead
				if st.size > s.opts.MaxBytes {
					rej.add("span " + st.id.String() + " is larger than the store's byte budget")
					continue
				}
				batch = append(batch, st)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range batch {
		s.insert(st)
	}
	s.stats.Rejected += rej.count
	return rej.count, rej.first, len(batch)
}

// insert keeps one span, evicting the oldest while over a bound. The
// caller holds mu.
func (s *Store) insert(st *stored) {
	tr := s.traces[st.trace]
	if tr != nil {
		for _, o := range tr.spans {
			if o.id == st.id && o.procKey == st.procKey {
				s.stats.DuplicateSpans++
				return
			}
		}
	} else {
		tr = &trace{}
		s.traces[st.trace] = tr
	}
	tr.spans = append(tr.spans, st)
	s.queue = append(s.queue, st)
	s.bytes += st.size
	s.stats.Received++
	svc := s.services[st.process.ServiceName]
	if svc == nil {
		svc = &serviceIndex{ops: map[Operation]int{}, traces: map[traceID]int{}}
		s.services[st.process.ServiceName] = svc
	}
	svc.ops[Operation{Name: st.span.OperationName, SpanKind: spanKindOf(st)}]++
	svc.traces[st.trace]++
	for len(s.queue)-s.head > s.opts.MaxSpans || s.bytes > s.opts.MaxBytes {
		s.evictOldest()
	}
}

// evictOldest drops the oldest span. Spans leave in arrival order, so it
// is also the first span of its trace.
func (s *Store) evictOldest() {
	st := s.queue[s.head]
	s.queue[s.head] = nil
	s.head++
	if s.head > 1024 && s.head*2 > len(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.bytes -= st.size
	s.stats.Evicted++
	if tr := s.traces[st.trace]; tr != nil {
		if i := slices.Index(tr.spans, st); i >= 0 {
			tr.spans = slices.Delete(tr.spans, i, i+1)
		}
		if len(tr.spans) == 0 {
			delete(s.traces, st.trace)
		}
	}
	svc := s.services[st.process.ServiceName]
	op := Operation{Name: st.span.OperationName, SpanKind: spanKindOf(st)}
	if svc.ops[op]--; svc.ops[op] <= 0 {
		delete(svc.ops, op)
	}
	if svc.traces[st.trace]--; svc.traces[st.trace] <= 0 {
		delete(svc.traces, st.trace)
	}
	if len(svc.traces) == 0 {
		delete(s.services, st.process.ServiceName)
	}
}

// Services lists the services that have spans in the store, sorted.
func (s *Store) Services() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.services))
	for name := range s.services {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Operation is a span name with the span kind it was seen with, as
// Jaeger's /api/operations lists them.
type Operation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind"`
}

// Operations lists a service's operations, sorted by name then kind;
// kind, when set, keeps only that span kind.
func (s *Store) Operations(service, kind string) []Operation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []Operation{}
	if svc := s.services[service]; svc != nil {
		for op := range svc.ops {
			if kind == "" || op.SpanKind == kind {
				out = append(out, op)
			}
		}
	}
	slices.SortFunc(out, func(a, b Operation) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.SpanKind, b.SpanKind))
	})
	return out
}

// Dependency is a caller and a callee service and how many spans of the
// callee have a parent span of the caller (Jaeger's DependencyLink).
type Dependency struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount uint64 `json:"callCount"`
}

// Dependencies counts the calls between services among the spans that
// started in [from, to], sorted by parent then child.
func (s *Store) Dependencies(from, to time.Time) []Dependency {
	lo, hi := from.UnixMicro(), to.UnixMicro()
	counts := map[[2]string]uint64{}
	s.mu.RLock()
	for _, tr := range s.traces {
		svcOf := make(map[string]string, len(tr.spans))
		for _, st := range tr.spans {
			svcOf[st.span.SpanID] = st.process.ServiceName
		}
		for _, st := range tr.spans {
			if st.start < lo || st.start > hi {
				continue
			}
			for _, ref := range st.span.References {
				if ref.RefType != refChildOf {
					continue
				}
				if parent, ok := svcOf[ref.SpanID]; ok && parent != st.process.ServiceName {
					counts[[2]string{parent, st.process.ServiceName}]++
				}
			}
		}
	}
	s.mu.RUnlock()
	out := make([]Dependency, 0, len(counts))
	for k, n := range counts {
		out = append(out, Dependency{Parent: k[0], Child: k[1], CallCount: n})
	}
	slices.SortFunc(out, func(a, b Dependency) int {
		return cmp.Or(cmp.Compare(a.Parent, b.Parent), cmp.Compare(a.Child, b.Child))
	})
	return out
}

// Trace returns the kept spans of a trace in Jaeger's form, or nil.
func (s *Store) Trace(id traceID) *Trace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tr := s.traces[id]
	if tr == nil {
		return nil
	}
	return render(id, tr.spans)
}

// Find returns the traces with at least one span that matches q, newest
// first, at most q.Limit of them.
func (s *Store) Find(q Query) []*Trace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	svc := s.services[q.Service]
	if svc == nil {
		return []*Trace{}
	}
	type hit struct {
		id    traceID
		start int64
	}
	var hits []hit
	for id := range svc.traces {
		tr := s.traces[id]
		matched, first := false, int64(0)
		for i, st := range tr.spans {
			if i == 0 || st.start < first {
				first = st.start
			}
			if !matched && q.matches(st) {
				matched = true
			}
		}
		if matched {
			hits = append(hits, hit{id, first})
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		return cmp.Or(cmp.Compare(b.start, a.start), strings.Compare(a.id.String(), b.id.String()))
	})
	if len(hits) > q.Limit {
		hits = hits[:q.Limit]
	}
	out := make([]*Trace, len(hits))
	for i, h := range hits {
		out[i] = render(h.id, s.traces[h.id].spans)
	}
	return out
}

// matches reports whether one span satisfies every condition of q, as
// Jaeger's stores judge a span: its service, operation, start within
// [Start, End], duration within [MinDuration, MaxDuration], and every
// tag found among its tags, its process's tags or its log fields.
func (q *Query) matches(st *stored) bool {
	if st.process.ServiceName != q.Service {
		return false
	}
	if q.Operation != "" && st.span.OperationName != q.Operation {
		return false
	}
	if st.start < q.Start.UnixMicro() || st.start > q.End.UnixMicro() {
		return false
	}
	if q.MinDuration > 0 && st.dur < q.MinDuration.Microseconds() {
		return false
	}
	if q.MaxDuration > 0 && st.dur > q.MaxDuration.Microseconds() {
		return false
	}
	for k, v := range q.Tags {
		if !hasTag(st, k, v) {
			return false
		}
	}
	return true
}

func hasTag(st *stored, k, v string) bool {
	for _, kv := range st.span.Tags {
		if kv.Key == k && kv.str() == v {
			return true
		}
	}
	for _, kv := range st.process.Tags {
		if kv.Key == k && kv.str() == v {
			return true
		}
	}
	for _, l := range st.span.Logs {
		for _, kv := range l.Fields {
			if kv.Key == k && kv.str() == v {
				return true
			}
		}
	}
	return false
}

// render assembles a trace's answer: spans sorted by start time, each
// naming its process by an id (p1, p2, ...) in the order first seen.
func render(id traceID, spans []*stored) *Trace {
	sorted := slices.Clone(spans)
	slices.SortStableFunc(sorted, func(a, b *stored) int { return cmp.Compare(a.start, b.start) })
	t := &Trace{TraceID: id.String(), Spans: make([]Span, len(sorted)), Processes: map[string]Process{}}
	ids := map[string]string{}
	for i, st := range sorted {
		pid, ok := ids[st.procKey]
		if !ok {
			pid = "p" + itoa(len(ids)+1)
			ids[st.procKey] = pid
			t.Processes[pid] = *st.process
		}
		t.Spans[i] = st.span
		t.Spans[i].ProcessID = pid
	}
	return t
}

// spanKindOf is the span kind tag's value, "" when unspecified.
func spanKindOf(st *stored) string {
	for _, kv := range st.span.Tags {
		if kv.Key == tagSpanKind {
			return kv.str()
		}
	}
	return ""
}

// processOf builds the Jaeger process of a resource: the service name
// and the other attributes as tags.
func processOf(r *resourcepb.Resource) *Process {
	p := &Process{ServiceName: noServiceName, Tags: []KeyValue{}}
	for _, kv := range r.GetAttributes() {
		if kv.GetKey() == "service.name" {
			if name := kv.GetValue().GetStringValue(); name != "" {
				p.ServiceName = name
			}
			continue
		}
		p.Tags = append(p.Tags, keyValue(kv.GetKey(), kv.GetValue()))
	}
	return p
}
