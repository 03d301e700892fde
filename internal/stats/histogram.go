package stats

import (
	"math"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Unit is what a histogram's integer samples measure. It decides how
// RecordDuration converts, and the unit sinks report (EMF's Unit).
type Unit uint8

// Histogram units, as Envoy's Histogram::Unit.
const (
	Unspecified Unit = iota
	Bytes
	Microseconds
	Milliseconds
)

// String is the unit's CloudWatch name.
func (u Unit) String() string {
	switch u {
	case Bytes:
		return "Bytes"
	case Microseconds:
		return "Microseconds"
	case Milliseconds:
		return "Milliseconds"
	}
	return "None"
}

// Quantiles is what /stats reports for every histogram, as Envoy does.
var Quantiles = [...]float64{0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1}

// quantileLabels are Quantiles×100 as Envoy prints them (P99.5, ...).
var quantileLabels = [len(Quantiles)]string{"0", "25", "50", "75", "90", "95", "99", "99.5", "99.9", "100"}

// Buckets are Envoy's default histogram bucket bounds, the le values of
// /stats/prometheus.
var Buckets = [...]float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// The sample layout is Envoy's log-linear histogram (libcircllhist) with
// two significant decimal digits, restricted to non-negative integers:
// one bin for 0, then for each decade 10^k (k = 0..19, which covers
// uint64) 90 bins of width 10^k/10 whose lower bounds are 1.0..9.9 × 10^k.
// Integers below 100 therefore land in bins holding exactly one value.
// Keeping Envoy's bins, not just its bucket bounds, is what makes the
// quantiles /stats prints and the counts /stats/prometheus prints equal
// to Envoy's for the same samples.
const (
	numDecades    = 20
	binsPerDecade = 90
	numBins       = 1 + numDecades*binsPerDecade
)

var (
	pow10u [numDecades]uint64
	pow10f [numDecades]float64
)

func init() {
	p := uint64(1)
	for k := range numDecades {
		pow10u[k] = p
		pow10f[k] = float64(p)
		p *= 10
	}
}

// binOf returns v's flat bin index: 0 for zero, else 1 + k*90 + m.
func binOf(v uint64) int {
	if v == 0 {
		return 0
	}
	k := bits.Len64(v) * 1233 >> 12 // floor(log10(v)) or one more
	if v < pow10u[k] {
		k--
	}
	var val uint64
	if k == 0 {
		val = v * 10
	} else {
		val = v / pow10u[k-1]
	}
	return 1 + k*binsPerDecade + int(val) - 10
}

// binBounds returns a bin's lower bound and width computed exactly as
// libcircllhist does (val/10 × 10^exp), so that boundary comparisons
// round the same way Envoy's do.
func binBounds(idx int) (lower, width float64) {
	if idx == 0 {
		return 0, 0
	}
	k := (idx - 1) / binsPerDecade
	val := (idx-1)%binsPerDecade + 10
	return (float64(val) / 10.0) * pow10f[k], pow10f[k] / 10.0
}

// decade is one decade's bins.
type decade [binsPerDecade]atomic.Uint64

// histShard is one independently updated copy of the bins. Recording
// goroutines spread over shards so that a hot histogram's bins and sum do
// not bounce one cache line between every core.
type histShard struct {
	zero atomic.Uint64
	sum  atomic.Uint64
	dec  [numDecades]atomic.Pointer[decade]
	_    [64]byte // keep the next shard's counters off this cache line
}

// histShards is how many shards each histogram has: the next power of two
// at or above GOMAXPROCS at start-up, at most 8.
var histShards = func() int {
	n := 1
	for n < runtime.GOMAXPROCS(0) && n < 8 {
		n <<= 1
	}
	return n
}()

// shardHint picks a shard for the calling goroutine from the address of
// its stack: different goroutines (and so, mostly, different cores) get
// different shards, a goroutine keeps its shard, and it costs a multiply
// where math/rand/v2 costs a few nanoseconds more per sample. Only the
// address is used; the variable stays on the stack.
func shardHint() uint32 {
	var x byte
	p := uint64(uintptr(unsafe.Pointer(&x)))
	return uint32((p >> 10) * 0x9E3779B97F4A7C15 >> 40)
}

// Histogram records a distribution of non-negative integers (durations
// in its Unit, sizes). Record costs two or three atomic adds and never
// allocates except the first time a shard sees a new decade of values. A
// nil *Histogram is a valid no-op.
//
// Statistics are computed when the Store merges histograms (the Flusher
// does, every flush interval, as Envoy does): /stats then shows the
// quantiles of the last interval and of all time, and Prometheus the
// cumulative buckets, as of that merge.
type Histogram struct {
	shards []histShard
	mask   uint32
	unit   Unit
	m      *Metric
	refs   int
	// ex holds the latest exemplar of each Prometheus bucket; nil until
	// the first ObserveWithExemplar.
	ex atomic.Pointer[exemplarSlots]

	mu         sync.Mutex
	last       []binCount // cumulative bins at the previous merge
	lastSum    uint64
	interval   HistogramStats
	cumulative HistogramStats
	intervalQ  [len(Quantiles)]float64
	cumQ       [len(Quantiles)]float64
	buckets    [len(Buckets)]uint64
	used       bool
}

type binCount struct {
	idx int
	n   uint64
}

func newHistogram(m *Metric, unit Unit) *Histogram {
	h := &Histogram{shards: make([]histShard, histShards), mask: uint32(histShards - 1), unit: unit, m: m}
	for i := range h.intervalQ {
		h.intervalQ[i] = math.NaN()
		h.cumQ[i] = math.NaN()
	}
	return h
}

// Record adds one sample.
func (h *Histogram) Record(v uint64) {
	if h == nil {
		return
	}
	s := &h.shards[shardHint()&h.mask]
	if v == 0 {
		s.zero.Add(1)
	} else {
		idx := binOf(v) - 1
		k := idx / binsPerDecade
		d := s.dec[k].Load()
		if d == nil {
			d = s.newDecade(k)
		}
		d[idx%binsPerDecade].Add(1)
	}
	s.sum.Add(v)
}

func (s *histShard) newDecade(k int) *decade {
	d := new(decade)
	if s.dec[k].CompareAndSwap(nil, d) {
		return d
	}
	return s.dec[k].Load()
}

// RecordDuration records d in the histogram's unit (milliseconds unless
// the unit is Microseconds), truncating as Envoy does. Negative durations
// record as zero.
func (h *Histogram) RecordDuration(d time.Duration) {
	if h == nil {
		return
	}
	if d < 0 {
		d = 0
	}
	if h.unit == Microseconds {
		h.Record(uint64(d.Microseconds()))
		return
	}
	h.Record(uint64(d.Milliseconds()))
}

// Unit is what the samples measure.
func (h *Histogram) Unit() Unit {
	if h == nil {
		return Unspecified
	}
	return h.unit
}

// Metric is the histogram's identity.
func (h *Histogram) Metric() *Metric {
	if h == nil {
		return nil
	}
	return h.m
}

// Used reports whether any sample had been recorded at the last merge.
func (h *Histogram) Used() bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.used
}

// Interval is the samples recorded between the last two merges.
func (h *Histogram) Interval() HistogramStats {
	if h == nil {
		return HistogramStats{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.interval
}

// Cumulative is every sample recorded up to the last merge.
func (h *Histogram) Cumulative() HistogramStats {
	if h == nil {
		return HistogramStats{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cumulative
}

// merge folds the shards into cumulative bins and computes the interval
// since the previous merge, then the statistics outputs print. It runs on
// the flushing goroutine; recording goes on concurrently, and a sample in
// flight lands in this interval or the next.
func (h *Histogram) merge() {
	// Merges are serialized: each one's interval starts where the
	// previous one's ended.
	h.mu.Lock()
	defer h.mu.Unlock()
	var tmp [binsPerDecade]uint64
	cur := make([]binCount, 0, len(h.last)+8)
	var zero, sum uint64
	for i := range h.shards {
		zero += h.shards[i].zero.Load()
		sum += h.shards[i].sum.Load()
	}
	if zero > 0 {
		cur = append(cur, binCount{0, zero})
	}
	for k := range numDecades {
		found := false
		for i := range h.shards {
			d := h.shards[i].dec[k].Load()
			if d == nil {
				continue
			}
			if !found {
				tmp = [binsPerDecade]uint64{}
				found = true
			}
			for m := range d {
				tmp[m] += d[m].Load()
			}
		}
		if !found {
			continue
		}
		for m, n := range tmp {
			if n > 0 {
				cur = append(cur, binCount{1 + k*binsPerDecade + m, n})
			}
		}
	}

	// Interval = current - last, both sorted by bin index.
	var iv []binCount
	j := 0
	for _, b := range cur {
		for j < len(h.last) && h.last[j].idx < b.idx {
			j++
		}
		n := b.n
		if j < len(h.last) && h.last[j].idx == b.idx {
			n -= min(n, h.last[j].n)
		}
		if n > 0 {
			iv = append(iv, binCount{b.idx, n})
		}
	}
	intervalSum := sum - min(sum, h.lastSum)
	h.last, h.lastSum = cur, sum
	h.cumulative = newStats(cur, sum)
	h.interval = newStats(iv, intervalSum)
	h.cumulative.quantiles(Quantiles[:], h.cumQ[:])
	h.interval.quantiles(Quantiles[:], h.intervalQ[:])
	for i, le := range Buckets {
		h.buckets[i] = h.cumulative.CountBelow(le)
	}
	h.used = h.cumulative.Count > 0
}

func newStats(bins []binCount, sum uint64) HistogramStats {
	st := HistogramStats{Sum: sum}
	if len(bins) > 0 {
		st.Bins = make([]Bin, len(bins))
	}
	for i, b := range bins {
		lo, w := binBounds(b.idx)
		st.Bins[i] = Bin{Lower: lo, Width: w, Count: b.n}
		st.Count += b.n
	}
	return st
}

// HistogramStats is a histogram's samples over some period, as bins.
type HistogramStats struct {
	// Count is the number of samples, Sum their exact total (Envoy
	// reports an approximation computed from bin midpoints; the exact
	// sum makes sum/count the true mean).
	Count uint64
	Sum   uint64
	// Bins are the non-empty bins in increasing order.
	Bins []Bin
}

// Bin is one log-linear bin: samples v with Lower <= v < Lower+Width (a
// zero Width is the bin of zero).
type Bin struct {
	Lower, Width float64
	Count        uint64
}

// Representative is the one value that stands for the bin's samples in
// push sinks: exact for bins that hold one integer (every value below
// 100), else the bin's midpoint (within 5% of every sample in it), as an
// integer since samples are integers.
func (b Bin) Representative() float64 {
	if b.Width <= 1 {
		return math.Round(b.Lower)
	}
	return math.Round(b.Lower + b.Width/2)
}

// Quantile is Envoy's approximate quantile (libcircllhist's
// hist_approx_quantile): the bin holding the q-th sample, interpolated
// linearly inside it. NaN when there are no samples.
func (s HistogramStats) Quantile(q float64) float64 {
	var out [1]float64
	s.quantiles([]float64{q}, out[:])
	return out[0]
}

// quantiles computes several increasing quantiles in one walk.
func (s HistogramStats) quantiles(qs, out []float64) {
	var total float64
	for _, b := range s.Bins {
		total += float64(b.Count)
	}
	if total == 0 {
		for i := range qs {
			out[i] = math.NaN()
		}
		return
	}
	i := 0
	lowerCnt, upperCnt := 0.0, float64(s.Bins[0].Count)
	left, width := s.Bins[0].Lower, s.Bins[0].Width
	for qi, q := range qs {
		target := total * q
		for i < len(s.Bins)-1 && upperCnt < target {
			i++
			lowerCnt = upperCnt
			upperCnt = lowerCnt + float64(s.Bins[i].Count)
			left, width = s.Bins[i].Lower, s.Bins[i].Width
		}
		switch {
		case lowerCnt == target:
			out[qi] = left
		case upperCnt == target:
			out[qi] = left + width
		case width == 0:
			out[qi] = left
		default:
			out[qi] = left + (target-lowerCnt)/(upperCnt-lowerCnt)*width
		}
	}
}

// CountBelow is the number of samples in bins lying entirely at or below
// le (libcircllhist's hist_approx_count_below), which is what Envoy
// exports as the Prometheus bucket le. For integer samples it counts the
// values strictly below an integer bound: a 5 ms request is not in le=5,
// which is right for durations truncated to whole milliseconds.
func (s HistogramStats) CountBelow(le float64) uint64 {
	var n uint64
	for _, b := range s.Bins {
		if b.Lower+b.Width > le {
			break
		}
		n += b.Count
	}
	return n
}
