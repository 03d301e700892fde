package stats

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Options configure a Store.
type Options struct {
	// FixedTags are added to every stat, after the tags its name yields
	// (App Mesh's appmesh.mesh / appmesh.virtual_node with
	// ENABLE_ENVOY_STATS_TAGS=1, Mesh / VirtualNode with the metrics
	// extension; see FixedTagsFromEnv).
	FixedTags []Tag
	// TagRules are the tag extractors; nil means DefaultTagRules (Envoy's
	// and App Mesh's). An empty non-nil slice disables extraction.
	TagRules []TagRule
	// PrometheusPrefix starts every metric name of WritePrometheus; empty
	// means "envoy_", Envoy's. The proxy's mesh metrics use "meshlens_".
	PrometheusPrefix string
	// PrometheusSeconds prints Milliseconds histograms in seconds (bucket
	// bounds and _sum divided by 1000), Prometheus's base unit, for
	// metrics that are not Envoy's; name such histograms ..._seconds.
	PrometheusSeconds bool
}

// Store owns every stat of one process. Creating handles (Scope, Counter,
// ...) takes a mutex and is meant for when configuration is applied;
// updating a handle is lock-free. Outputs (WriteText, WritePrometheus,
// sinks) read a consistent list of the live stats.
type Store struct {
	tags       *TagProducer
	fixedTags  []Tag
	promPrefix string
	promSecs   bool

	mu         sync.Mutex
	scopes     map[string]*scopeState
	counters   map[string]*Counter
	gauges     map[string]*Gauge
	histograms map[string]*Histogram
	texts      map[string]*TextReadout
}

// NewStore returns an empty store. It fails only when a tag rule does not
// compile.
func NewStore(opts Options) (*Store, error) {
	rules := opts.TagRules
	if rules == nil {
		rules = DefaultTagRules()
	}
	tp, err := NewTagProducer(rules)
	if err != nil {
		return nil, fmt.Errorf("stats store: %w", err)
	}
	return &Store{
		tags:       tp,
		fixedTags:  slices.Clone(opts.FixedTags),
		promPrefix: cmp.Or(opts.PrometheusPrefix, "envoy_"),
		promSecs:   opts.PrometheusSeconds,
		scopes:     map[string]*scopeState{},
		counters:   map[string]*Counter{},
		gauges:     map[string]*Gauge{},
		histograms: map[string]*Histogram{},
		texts:      map[string]*TextReadout{},
	}, nil
}

// Scope acquires the scope whose stats are named prefix+name, e.g.
// Scope("cluster.cds_egress_demo_greeting-v1_http_9080."). Acquiring a
// prefix that is already live shares its stats; every acquisition must be
// released once.
func (s *Store) Scope(prefix string) *Scope { return s.ScopeWithTags(prefix, nil) }

// ScopeWithTags acquires a scope whose stats carry tags in addition to
// those extracted from their names, e.g. App Mesh's metrics extension
// TargetVirtualNode and TargetVirtualService on the appmesh. stats of one
// target. So that full names stay unique, as Envoy's tagged stats do, the
// tags are also spelled into the full name after the prefix:
// ScopeWithTags("appmesh.", [{TargetVirtualNode, vn}]).Counter("RequestCountPerTarget")
// is appmesh.TargetVirtualNode.vn.RequestCountPerTarget in /stats and
// envoy_appmesh_RequestCountPerTarget{TargetVirtualNode="vn"} in
// Prometheus.
func (s *Store) ScopeWithTags(prefix string, tags []Tag) *Scope {
	key := scopeKey(prefix, tags)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.scopes[key]
	if st == nil {
		st = &scopeState{
			store:      s,
			key:        key,
			prefix:     prefix,
			namePrefix: embedTags(prefix, tags),
			tags:       slices.Clone(tags),
			counters:   map[string]*Counter{},
			gauges:     map[string]*Gauge{},
			histograms: map[string]*Histogram{},
			texts:      map[string]*TextReadout{},
		}
		empty := map[string]*CodeCounters{}
		st.codes.Store(&empty)
		s.scopes[key] = st
	}
	st.refs++
	return &Scope{st: st}
}

func scopeKey(prefix string, tags []Tag) string {
	if len(tags) == 0 {
		return prefix
	}
	var b strings.Builder
	b.WriteString(prefix)
	for _, t := range tags {
		b.WriteByte(0)
		b.WriteString(t.Name)
		b.WriteByte(0)
		b.WriteString(t.Value)
	}
	return b.String()
}

// embedTags spells a scope's tags into its stats' full names:
// "appmesh." + {A a, B b} -> "appmesh.A.a.B.b.".
func embedTags(prefix string, tags []Tag) string {
	if len(tags) == 0 {
		return prefix
	}
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(prefix, "."))
	for _, t := range tags {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(t.Name)
		b.WriteByte('.')
		b.WriteString(t.Value)
	}
	b.WriteByte('.')
	return b.String()
}

// ResetCounters sets every counter to zero, as Envoy's POST
// /reset_counters does. Gauges and histograms are left alone.
func (s *Store) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.counters {
		c.reset()
	}
}

// MergeHistograms computes every histogram's interval and cumulative
// statistics. The Flusher calls it once per flush interval; outputs show
// histograms as of the last merge.
func (s *Store) MergeHistograms() {
	for _, h := range s.snapshotHistograms() {
		h.merge()
	}
}

func (s *Store) snapshotHistograms() []*Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Histogram, 0, len(s.histograms))
	for _, h := range s.histograms {
		out = append(out, h)
	}
	return out
}

// newMetric computes a stat's identity: tags are extracted from the name
// as it would be without the scope's embedded tags, then the scope's tags
// and the store's fixed tags join them.
func (s *Store) newMetric(st *scopeState, name string) *Metric {
	full := st.namePrefix + name
	extracted, tags := s.tags.Extract(st.prefix + name)
	all := make([]Tag, 0, len(tags)+len(st.tags)+len(s.fixedTags))
	all = appendUniqueTags(all, tags)
	all = appendUniqueTags(all, st.tags)
	all = appendUniqueTags(all, s.fixedTags)
	m := &Metric{Name: full, TagExtractedName: extracted, Tags: all}
	m.promName, m.promLabels = promIdentity(m, s.promPrefix)
	return m
}

// appendUniqueTags appends the tags whose names are not there yet: a name
// has one value per stat.
func appendUniqueTags(dst, src []Tag) []Tag {
	for _, t := range src {
		if !slices.ContainsFunc(dst, func(d Tag) bool { return d.Name == t.Name }) {
			dst = append(dst, t)
		}
	}
	return dst
}

// Scope is one acquisition of a named group of stats (a cluster's, a
// listener's). Handles it returns stay valid after Release, but once the
// last acquisition of the scope is released its stats are dropped from
// every output and updates through old handles go nowhere; a later scope
// with the same prefix starts from zero, as Envoy's stats of a removed
// cluster do. Acquire the new configuration's scopes before releasing the
// old one's, and stats of a cluster that stays carry over.
type Scope struct {
	st       *scopeState
	released atomic.Bool
}

// scopeState is the shared state of every acquisition of one scope.
type scopeState struct {
	store      *Store
	key        string
	prefix     string // names are extracted from prefix+name
	namePrefix string // full names are namePrefix+name (tags embedded)
	tags       []Tag
	refs       int  // guarded by store.mu
	dead       bool // guarded by store.mu

	// Stats this scope holds a reference on, by full name.
	counters   map[string]*Counter
	gauges     map[string]*Gauge
	histograms map[string]*Histogram
	texts      map[string]*TextReadout
	// codes is copy-on-write so CounterByCode can look up without a lock.
	codes atomic.Pointer[map[string]*CodeCounters]
}

// Prefix is the scope's name prefix, without embedded tags.
func (sc *Scope) Prefix() string { return sc.st.prefix }

// Tags are the tags the scope was acquired with.
func (sc *Scope) Tags() []Tag { return slices.Clone(sc.st.tags) }

// Scope acquires a scope nested under this one: prefix sc.Prefix()+sub,
// with the same tags. It is released on its own.
func (sc *Scope) Scope(sub string) *Scope {
	return sc.st.store.ScopeWithTags(sc.st.prefix+sub, sc.st.tags)
}

// Release gives up this acquisition. Calling it again does nothing.
func (sc *Scope) Release() {
	if sc == nil || !sc.released.CompareAndSwap(false, true) {
		return
	}
	st := sc.st
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	st.refs--
	if st.refs > 0 {
		return
	}
	st.dead = true
	delete(s.scopes, st.key)
	for name, c := range st.counters {
		if c.refs--; c.refs == 0 {
			delete(s.counters, name)
		}
	}
	for name, g := range st.gauges {
		if g.refs--; g.refs == 0 {
			delete(s.gauges, name)
		}
	}
	for name, h := range st.histograms {
		if h.refs--; h.refs == 0 {
			delete(s.histograms, name)
		}
	}
	for name, t := range st.texts {
		if t.refs--; t.refs == 0 {
			delete(s.texts, name)
		}
	}
}

// Counter returns the counter prefix+name, creating it on first use.
// Repeated calls return the same handle.
func (sc *Scope) Counter(name string) *Counter {
	s := sc.st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	return sc.st.counterLocked(name)
}

func (st *scopeState) counterLocked(name string) *Counter {
	s := st.store
	full := st.namePrefix + name
	if c := st.counters[full]; c != nil {
		return c
	}
	if st.dead {
		return &Counter{m: s.newMetric(st, name)}
	}
	c := s.counters[full]
	if c == nil {
		c = &Counter{m: s.newMetric(st, name)}
		s.counters[full] = c
	}
	c.refs++
	st.counters[full] = c
	return c
}

// Gauge returns the gauge prefix+name, creating it on first use.
func (sc *Scope) Gauge(name string) *Gauge {
	st := sc.st
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	full := st.namePrefix + name
	if g := st.gauges[full]; g != nil {
		return g
	}
	if st.dead {
		return &Gauge{m: s.newMetric(st, name)}
	}
	g := s.gauges[full]
	if g == nil {
		g = &Gauge{m: s.newMetric(st, name)}
		s.gauges[full] = g
	}
	g.refs++
	st.gauges[full] = g
	return g
}

// Histogram returns the histogram prefix+name, creating it on first use
// with the given unit (a later call's unit is ignored).
func (sc *Scope) Histogram(name string, unit Unit) *Histogram {
	st := sc.st
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	full := st.namePrefix + name
	if h := st.histograms[full]; h != nil {
		return h
	}
	if st.dead {
		return newHistogram(s.newMetric(st, name), unit)
	}
	h := s.histograms[full]
	if h == nil {
		h = newHistogram(s.newMetric(st, name), unit)
		s.histograms[full] = h
	}
	h.refs++
	st.histograms[full] = h
	return h
}

// TextReadout returns the text readout prefix+name, creating it on first
// use.
func (sc *Scope) TextReadout(name string) *TextReadout {
	st := sc.st
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	full := st.namePrefix + name
	if t := st.texts[full]; t != nil {
		return t
	}
	if st.dead {
		return &TextReadout{m: s.newMetric(st, name)}
	}
	t := s.texts[full]
	if t == nil {
		t = &TextReadout{m: s.newMetric(st, name)}
		s.texts[full] = t
	}
	t.refs++
	st.texts[full] = t
	return t
}

// CodeCounters returns the per-response-code counter family
// prefix_<code> / prefix_<class>xx of this scope (e.g. "upstream_rq"),
// creating it on first use. Resolve it when configuration is applied.
func (sc *Scope) CodeCounters(prefix string) *CodeCounters {
	st := sc.st
	if cc := (*st.codes.Load())[prefix]; cc != nil {
		return cc
	}
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *st.codes.Load()
	if cc := old[prefix]; cc != nil {
		return cc
	}
	cc := &CodeCounters{scope: st, prefix: prefix}
	next := make(map[string]*CodeCounters, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[prefix] = cc
	st.codes.Store(&next)
	return cc
}

// CounterByCode is the counter prefix_<code> (upstream_rq_503). After the
// first call for a prefix and code it is a lock-free lookup that does not
// allocate, so it may be called per request; resolving CodeCounters once
// is cheaper still. It returns nil (a no-op counter) for codes outside
// 100..599.
func (sc *Scope) CounterByCode(prefix string, code int) *Counter {
	return sc.CodeCounters(prefix).Code(code)
}
