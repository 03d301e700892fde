package stats

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// DefaultFlushInterval is Envoy's stats_flush_interval default.
const DefaultFlushInterval = 5 * time.Second

// Sink receives every flush's snapshot (Envoy's Stats::Sink). Flush is
// called from the Flusher's goroutine only, one snapshot at a time; it
// must not keep the snapshot after returning.
type Sink interface {
	Flush(ctx context.Context, snap *Snapshot) error
}

// Snapshot is what one flush hands to sinks: the stats that were ever
// used, sorted by full name.
type Snapshot struct {
	Time       time.Time
	Counters   []CounterValue
	Gauges     []GaugeValue
	Histograms []HistogramValue
}

// CounterValue is a counter at a flush: its value and its increase since
// the previous flush (what statsd's |c carries).
type CounterValue struct {
	Metric *Metric
	Value  uint64
	Delta  uint64
}

// GaugeValue is a gauge at a flush.
type GaugeValue struct {
	Metric *Metric
	Value  int64
}

// HistogramValue is a histogram's samples since the previous flush.
type HistogramValue struct {
	Metric   *Metric
	Unit     Unit
	Interval HistogramStats
}

// Snapshot merges histograms and latches counters, as one Envoy flush
// does. Counter deltas are relative to the previous call, so a Store must
// have a single flusher.
func (s *Store) Snapshot(now time.Time) *Snapshot {
	s.MergeHistograms()
	v := s.view()
	snap := &Snapshot{Time: now}
	for _, c := range v.counters {
		if c.Used() {
			val, d := c.latch()
			snap.Counters = append(snap.Counters, CounterValue{Metric: c.m, Value: val, Delta: d})
		}
	}
	for _, g := range v.gauges {
		if g.Used() {
			snap.Gauges = append(snap.Gauges, GaugeValue{Metric: g.m, Value: g.Value()})
		}
	}
	for _, h := range v.histograms {
		if h.Used() {
			snap.Histograms = append(snap.Histograms, HistogramValue{Metric: h.m, Unit: h.unit, Interval: h.Interval()})
		}
	}
	slices.SortFunc(snap.Counters, func(a, b CounterValue) int { return cmp.Compare(a.Metric.Name, b.Metric.Name) })
	slices.SortFunc(snap.Gauges, func(a, b GaugeValue) int { return cmp.Compare(a.Metric.Name, b.Metric.Name) })
	slices.SortFunc(snap.Histograms, func(a, b HistogramValue) int { return cmp.Compare(a.Metric.Name, b.Metric.Name) })
	return snap
}

// Flusher merges histograms and pushes snapshots to sinks every interval,
// as Envoy's stats flush timer does. Run one per Store, even without
// sinks: it is also what refreshes the histogram statistics /stats and
// /stats/prometheus print.
type Flusher struct {
	store    *Store
	interval time.Duration
	sinks    []Sink
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex // one flush at a time: counter deltas are latched
	lastErr []string   // per sink, to log a failure once, not every flush
}

// NewFlusher returns a flusher for store; interval <= 0 means
// DefaultFlushInterval, a nil logger slog.Default().
func NewFlusher(store *Store, interval time.Duration, log *slog.Logger, sinks ...Sink) *Flusher {
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	if log == nil {
		log = slog.Default()
	}
	return &Flusher{store: store, interval: interval, sinks: sinks, log: log, now: time.Now, lastErr: make([]string, len(sinks))}
}

// Interval is the flush period.
func (f *Flusher) Interval() time.Duration { return f.interval }

// Run flushes every interval until ctx is done, then flushes once more so
// that the last interval's counts reach the sinks. It returns ctx's error.
func (f *Flusher) Run(ctx context.Context) error {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.interval)
			_ = f.Flush(final)
			cancel()
			return ctx.Err()
		case <-t.C:
			_ = f.Flush(ctx)
		}
	}
}

// Flush takes one snapshot and hands it to every sink. A failing sink does
// not keep the others from receiving the snapshot; its failure is logged
// when it starts or changes (not at every flush while an agent is down)
// and the errors are returned joined.
func (f *Flusher) Flush(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	snap := f.store.Snapshot(f.now())
	var errs []error
	for i, s := range f.sinks {
		name := fmt.Sprintf("%T", s)
		err := s.Flush(ctx, snap)
		switch {
		case err != nil && err.Error() != f.lastErr[i]:
			f.log.Warn("stats sink flush failed", "sink", name, "err", err)
			f.lastErr[i] = err.Error()
		case err == nil && f.lastErr[i] != "":
			f.log.Info("stats sink flushing again", "sink", name)
			f.lastErr[i] = ""
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
