package metricshistory

import (
	"context"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Defaults of Options.
const (
	DefaultResolution = 10 * time.Second
	DefaultRetention  = time.Hour
	DefaultMaxSeries  = 20000
	DefaultMaxBytes   = 256 << 20
	// maxStreamSeries bounds the cumulative values one stream keeps to
	// compute deltas.
	maxStreamSeries = 20000
	// maxCodes bounds the distinct error codes one series keeps.
	maxCodes = 16
)

// Options bound a Store.
type Options struct {
	// Resolution is the width of one slot (default 10s).
	Resolution time.Duration
	// Retention is how far back the history goes (default 1h).
	Retention time.Duration
	// MaxSeries and MaxBytes cap the history; when either is reached the
	// series that saw traffic longest ago is dropped to make room.
	MaxSeries int
	MaxBytes  int64
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Resolution <= 0 {
		o.Resolution = DefaultResolution
	}
	if o.Retention < o.Resolution {
		o.Retention = DefaultRetention
		if o.Retention < o.Resolution {
			o.Retention = o.Resolution
		}
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is the in-memory history: for every series, a ring of slots of
// Resolution holding the requests, errors, error codes and latency
// histogram counted in the slot. A series idle for the whole retention is
// evicted; the caps drop the least recently active series first.
type Store struct {
	opts  Options
	slots int

	mu     sync.Mutex
	series map[Labels]*series
	bytes  int64
}

// series is one Labels' ring. stamp[i] is the slot number (time /
// resolution) slot i holds; a slot whose stamp is not the one asked for
// is empty.
type series struct {
	labels Labels
	last   int64 // newest slot number with data
	stamp  []int64
	req    []uint32
	err    []uint32
	hist   []uint32 // slots × numBuckets, allocated on the first sample
	codes  map[string][]uint32
}

// New returns an empty Store.
func New(opts Options) *Store {
	opts.setDefaults()
	return &Store{opts: opts, slots: int(opts.Retention / opts.Resolution), series: map[Labels]*series{}}
}

// Len is the number of series kept.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.series)
}

// Bytes is the memory the series' rings take, as the MaxBytes cap counts
// it.
func (s *Store) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

const seriesOverhead = 256 // the struct, map entry and label strings, roughly

func (s *Store) baseBytes() int64 { return seriesOverhead + int64(s.slots)*(8+4+4) }
func (s *Store) histBytes() int64 { return int64(s.slots) * numBuckets * 4 }
func (s *Store) codeBytes() int64 { return 32 + int64(s.slots)*4 }

func (s *Store) slotOf(t time.Time) int64 { return t.UnixNano() / int64(s.opts.Resolution) }

// Sample is the traffic one series saw since the previous sample, as the
// deltas of cumulative metrics.
type Sample struct {
	Labels   Labels
	Requests uint64
	Errors   uint64
	// Codes counts errors per code; Buckets counts latency samples per
	// bucket (not cumulative), seconds as in Buckets.
	Codes   map[string]uint64
	Buckets *[numBuckets]uint64
}

// Add records samples at time t.
func (s *Store) Add(t time.Time, samples []Sample) {
	slot := s.slotOf(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range samples {
		s.add(slot, &samples[i])
	}
	s.evictLocked(slot)
}

func (s *Store) add(slot int64, sm *Sample) {
	if sm.Requests == 0 && sm.Buckets == nil && len(sm.Codes) == 0 {
		return
	}
	se := s.series[sm.Labels]
	if se == nil {
		for len(s.series) >= s.opts.MaxSeries || s.bytes+s.baseBytes() > s.opts.MaxBytes {
			if !s.dropOldestLocked() {
				return
			}
		}
		se = &series{labels: sm.Labels, stamp: make([]int64, s.slots), req: make([]uint32, s.slots), err: make([]uint32, s.slots)}
		for i := range se.stamp {
			se.stamp[i] = -1
		}
		s.series[sm.Labels] = se
		s.bytes += s.baseBytes()
	}
	i := int(slot % int64(s.slots))
	if se.stamp[i] != slot {
		se.stamp[i] = slot
		se.req[i], se.err[i] = 0, 0
		if se.hist != nil {
			clear(se.hist[i*numBuckets : (i+1)*numBuckets])
		}
		for _, c := range se.codes {
			c[i] = 0
		}
	}
	if slot > se.last {
		se.last = slot
	}
	se.req[i] = sat(se.req[i], sm.Requests)
	se.err[i] = sat(se.err[i], sm.Errors)
	for code, n := range sm.Codes {
		c := se.codes[code]
		if c == nil {
			if len(se.codes) >= maxCodes || s.bytes+s.codeBytes() > s.opts.MaxBytes {
				continue
			}
			if se.codes == nil {
				se.codes = map[string][]uint32{}
			}
			c = make([]uint32, s.slots)
			se.codes[code] = c
			s.bytes += s.codeBytes()
		}
		c[i] = sat(c[i], n)
	}
	if sm.Buckets != nil {
		if se.hist == nil {
			if s.bytes+s.histBytes() > s.opts.MaxBytes {
				return
			}
			se.hist = make([]uint32, s.slots*numBuckets)
			s.bytes += s.histBytes()
		}
		h := se.hist[i*numBuckets : (i+1)*numBuckets]
		for b, n := range sm.Buckets {
			h[b] = sat(h[b], n)
		}
	}
}

func sat(a uint32, b uint64) uint32 {
	if s := uint64(a) + b; s < math.MaxUint32 {
		return uint32(s)
	}
	return math.MaxUint32
}

func (s *Store) seriesBytes(se *series) int64 {
	b := s.baseBytes() + int64(len(se.codes))*s.codeBytes()
	if se.hist != nil {
		b += s.histBytes()
	}
	return b
}

// dropOldestLocked removes the series whose newest data is oldest.
func (s *Store) dropOldestLocked() bool {
	var oldest *series
	for _, se := range s.series {
		if oldest == nil || se.last < oldest.last {
			oldest = se
		}
	}
	if oldest == nil {
		return false
	}
	s.removeLocked(oldest)
	return true
}

func (s *Store) removeLocked(se *series) {
	delete(s.series, se.labels)
	s.bytes -= s.seriesBytes(se)
}

// evictLocked drops the series with no data in the retention ending at
// slot now.
func (s *Store) evictLocked(now int64) {
	for _, se := range s.series {
		if se.last <= now-int64(s.slots) {
			s.removeLocked(se)
		}
	}
}

// Evict drops the series idle for the whole retention; Add does it too,
// so that a store with no traffic is the only one that needs a timer.
func (s *Store) Evict() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evictLocked(s.slotOf(s.opts.Now()))
}

// acc sums slots.
type acc struct {
	req, err uint64
	codes    map[string]uint64
	hist     [numBuckets]uint64
	hasHist  bool
}

func (a *acc) addSlot(se *series, slot int64) {
	i := int(slot % int64(len(se.stamp)))
	if slot < 0 || se.stamp[i] != slot {
		return
	}
	a.req += uint64(se.req[i])
	a.err += uint64(se.err[i])
	for code, c := range se.codes {
		if c[i] != 0 {
			if a.codes == nil {
				a.codes = map[string]uint64{}
			}
			a.codes[code] += uint64(c[i])
		}
	}
	if se.hist != nil {
		for b, n := range se.hist[i*numBuckets : (i+1)*numBuckets] {
			if n != 0 {
				a.hist[b] += uint64(n)
				a.hasHist = true
			}
		}
	}
}

// counts turns the sums into Counts.
func (a *acc) counts() Counts {
	c := Counts{Requests: a.req, Errors: a.err, Codes: a.codes}
	if a.hasHist {
		c.Buckets = append([]uint64(nil), a.hist[:]...)
	}
	return c
}

// slotRange is the slots (from, to] a window of d ending at t covers,
// whole slots only: the window is rounded up to slots.
func (s *Store) slotRange(t time.Time, d time.Duration) (from, to int64) {
	to = s.slotOf(t)
	n := int64((d + s.opts.Resolution - 1) / s.opts.Resolution)
	if n > int64(s.slots) {
		n = int64(s.slots)
	}
	return to - n, to
}

// Stats implements Reader. The window is rounded up to whole slots and
// its rates are per second of those slots.
func (s *Store) Stats(ctx context.Context, q Query) ([]Stat, error) {
	p, err := s.Counts(q)
	if err != nil {
		return nil, err
	}
	return Merge([]*Partial{p})
}

// Counts answers q with the sums Stats computes its rates and quantiles
// from, which Merge adds to other stores' (a window of whole slots).
func (s *Store) Counts(q Query) (*Partial, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	at := q.At
	if at.IsZero() {
		at = s.opts.Now()
	}
	from, to := s.slotRange(at, q.Window)
	seconds := float64(to-from) * s.opts.Resolution.Seconds()
	groups := map[Labels]*acc{}
	s.mu.Lock()
	for _, se := range s.series {
		if !se.labels.matches(q.Selector) || se.last <= from {
			continue
		}
		g := se.labels.group(q.GroupBy)
		a := groups[g]
		if a == nil {
			a = &acc{}
			groups[g] = a
		}
		for sl := from + 1; sl <= to; sl++ {
			a.addSlot(se, sl)
		}
	}
	s.mu.Unlock()
	out := &Partial{Seconds: seconds, Groups: make([]GroupCounts, 0, len(groups))}
	for l, a := range groups {
		out.Groups = append(out.Groups, GroupCounts{Labels: l, Counts: a.counts()})
	}
	sort.Slice(out.Groups, func(i, j int) bool { return lessLabels(out.Groups[i].Labels, out.Groups[j].Labels) })
	return out, nil
}

// Range implements Reader. Steps are rounded up to whole slots.
func (s *Store) Range(ctx context.Context, q RangeQuery) ([]Series, error) {
	p, err := s.RangeCounts(q)
	if err != nil {
		return nil, err
	}
	return MergeRange([]*RangePartial{p})
}

// RangeCounts answers q with the sums Range computes its points from,
// which MergeRange adds to other stores'. Point times are multiples of
// the resolution, the same in every store of that resolution.
func (s *Store) RangeCounts(q RangeQuery) (*RangePartial, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	stepSlots := int64((q.Step + s.opts.Resolution - 1) / s.opts.Resolution)
	seconds := float64(stepSlots) * s.opts.Resolution.Seconds()
	end := s.slotOf(q.End)
	start := s.slotOf(q.Start)
	if oldest := end - int64(s.slots); start < oldest {
		start = oldest
	}
	n := int((end-start)/stepSlots) + 1
	groups := map[Labels][]acc{}
	s.mu.Lock()
	for _, se := range s.series {
		if !se.labels.matches(q.Selector) || se.last <= start-stepSlots {
			continue
		}
		g := se.labels.group(q.GroupBy)
		accs := groups[g]
		if accs == nil {
			accs = make([]acc, n)
			groups[g] = accs
		}
		for k := range n {
			p := start + int64(k)*stepSlots
			for sl := p - stepSlots + 1; sl <= p; sl++ {
				accs[k].addSlot(se, sl)
			}
		}
	}
	s.mu.Unlock()
	out := &RangePartial{StepSeconds: seconds, Series: make([]SeriesCounts, 0, len(groups))}
	for l, accs := range groups {
		sr := SeriesCounts{Labels: l, Points: make([]PointCounts, n)}
		for k := range accs {
			t := time.Unix(0, (start+int64(k)*stepSlots+1)*int64(s.opts.Resolution))
			sr.Points[k] = PointCounts{Time: t, Counts: accs[k].counts()}
		}
		out.Series = append(out.Series, sr)
	}
	sort.Slice(out.Series, func(i, j int) bool { return lessLabels(out.Series[i].Labels, out.Series[j].Labels) })
	return out, nil
}

func sortStats(st []Stat) {
	sort.Slice(st, func(i, j int) bool { return lessLabels(st[i].Labels, st[j].Labels) })
}

func lessLabels(a, b Labels) bool {
	for _, n := range labelNames {
		if x, y := a.Get(n), b.Get(n); x != y {
			return x < y
		}
	}
	return false
}

// Stream turns one proxy's cumulative metrics, pushed again and again on
// one metrics service stream, into the deltas a Store records. The first
// push of a stream is the baseline: its counts happened before the
// stream and are not counted (they may have been counted on an earlier
// stream); a series that appears later started from zero and counts
// whole.
type Stream struct {
	store *Store
	prev  map[rawKey]*cumulative
	first bool
}

type rawKey struct {
	Labels
	code, grpc string
}

type cumulative struct {
	requests uint64
	buckets  [numBuckets]uint64 // cumulative, as exported
}

// NewStream starts the deltas of one stream.
func (s *Store) NewStream() *Stream {
	return &Stream{store: s, prev: map[rawKey]*cumulative{}, first: true}
}

// Push records one message's metric families at time t.
func (st *Stream) Push(t time.Time, families []*dto.MetricFamily) {
	samples := map[Labels]*Sample{}
	sample := func(l Labels) *Sample {
		sm := samples[l]
		if sm == nil {
			sm = &Sample{Labels: l}
			samples[l] = sm
		}
		return sm
	}
	for _, f := range families {
		switch f.GetName() {
		case RequestsTotal:
			for _, m := range f.GetMetric() {
				k, ok := st.key(m)
				if !ok {
					continue
				}
				v := counterUint(counterValue(m))
				c := st.cum(k)
				if c == nil {
					continue
				}
				d := v - c.requests
				if v < c.requests {
					d = v // restarted
				}
				c.requests = v
				if st.first || d == 0 {
					continue
				}
				sm := sample(k.Labels)
				sm.Requests += d
				code, isErr := classify(k.code, k.grpc)
				if isErr {
					sm.Errors += d
				}
				if code != "" {
					if sm.Codes == nil {
						sm.Codes = map[string]uint64{}
					}
					sm.Codes[code] += d
				}
			}
		case RequestDuration:
			for _, m := range f.GetMetric() {
				k, ok := st.key(m)
				if !ok || m.GetHistogram() == nil {
					continue
				}
				cur := bucketCounts(m.GetHistogram())
				kh := k
				kh.code = "hist:" + k.code
				c := st.cum(kh)
				if c == nil {
					continue
				}
				var delta [numBuckets]uint64
				var any, reset bool
				for b := range cur {
					if cur[b] < c.buckets[b] {
						reset = true
					}
				}
				for b := range cur {
					d := cur[b] - c.buckets[b]
					if reset {
						d = cur[b]
					}
					delta[b] = d
					any = any || d != 0
				}
				c.buckets = cur
				if st.first || !any {
					continue
				}
				// cumulative -> per bucket
				for b := numBuckets - 1; b > 0; b-- {
					delta[b] -= min(delta[b], delta[b-1])
				}
				sm := sample(k.Labels)
				if sm.Buckets == nil {
					sm.Buckets = new([numBuckets]uint64)
				}
				for b := range delta {
					sm.Buckets[b] += delta[b]
				}
			}
		}
	}
	st.first = false
	out := make([]Sample, 0, len(samples))
	for _, sm := range samples {
		out = append(out, *sm)
	}
	st.store.Add(t, out)
}

// cum is the stream's cumulative state of k, created from zero when the
// stream has room (nil when it has not).
func (st *Stream) cum(k rawKey) *cumulative {
	if c := st.prev[k]; c != nil {
		return c
	}
	if len(st.prev) >= maxStreamSeries {
		return nil
	}
	c := &cumulative{}
	st.prev[k] = c
	return c
}

func (st *Stream) key(m *dto.Metric) (rawKey, bool) {
	var k rawKey
	for _, lp := range m.GetLabel() {
		switch lp.GetName() {
		case LabelResponseCode:
			k.code = lp.GetValue()
		case LabelGRPCStatus:
			k.grpc = lp.GetValue()
		default:
			k.Set(lp.GetName(), lp.GetValue())
		}
	}
	return k, k.Reporter != ""
}

// counterUint converts a counter's value, treating what no counter can
// be (negative, NaN) as zero and capping at 2^53.
func counterUint(f float64) uint64 {
	if !(f > 0) {
		return 0
	}
	return uint64(min(f, 1<<53))
}

func counterValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	if u := m.GetUntyped(); u != nil {
		return u.GetValue()
	}
	return 0
}

// bucketCounts maps a histogram's cumulative buckets onto Buckets (by
// upper bound; an unknown bound goes to the next known one) and +Inf.
func bucketCounts(h *dto.Histogram) [numBuckets]uint64 {
	var out [numBuckets]uint64
	for _, b := range h.GetBucket() {
		ub := b.GetUpperBound()
		i := sort.SearchFloat64s(Buckets, ub*(1-1e-9))
		if i < len(Buckets) {
			out[i] = max(out[i], b.GetCumulativeCount())
		}
	}
	out[numBuckets-1] = h.GetSampleCount()
	for i := 1; i < numBuckets; i++ {
		out[i] = max(out[i], out[i-1])
	}
	return out
}

// classify says which code a request is plotted under among errors by
// code (a 4xx or 5xx response code, or "grpc:<status>" for a gRPC status
// other than OK when the metric carries one; "" for a success) and
// whether it counts as an error in the error ratio (5xx and gRPC
// failures: a 4xx is the caller's mistake, not the service's).
func classify(code, grpc string) (string, bool) {
	if grpc != "" && grpc != "0" {
		return "grpc:" + grpc, true
	}
	if n, err := strconv.Atoi(code); err == nil && n >= 400 && n < 600 {
		return code, n >= 500
	}
	return "", false
}
