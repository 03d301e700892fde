package fault

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/stats"
)

// StatsPrefix is the scope prefix of the filter's stats, given the HTTP
// connection manager's stat_prefix: http.<stat_prefix>.fault.
func StatsPrefix(hcmStatPrefix string) string { return "http." + hcmStatPrefix + ".fault." }

// Stats are the filter's counters, with Envoy's names. nil handles are
// no-ops.
type Stats struct {
	DelaysInjected *stats.Counter // delays_injected
	AbortsInjected *stats.Counter // aborts_injected
	FaultsOverflow *stats.Counter // faults_overflow
	ActiveFaults   *stats.Gauge   // active_faults
}

// NewStats creates the stats in sc, which the caller acquired at
// StatsPrefix(...) and releases when the listener goes. A nil sc gives
// no-op stats.
func NewStats(sc *stats.Scope) Stats {
	if sc == nil {
		return Stats{}
	}
	return Stats{
		DelaysInjected: sc.Counter("delays_injected"),
		AbortsInjected: sc.Counter("aborts_injected"),
		FaultsOverflow: sc.Counter("faults_overflow"),
		ActiveFaults:   sc.Gauge("active_faults"),
	}
}

// Filter is the per-listener state of the filter: its stats and its count
// of active faults, which max_active_faults bounds (shared by every route
// of the listener, as Envoy's active_faults gauge is). It is safe for
// concurrent use.
type Filter struct {
	stats  Stats
	active atomic.Int64
}

// NewFilter returns the filter state for one listener.
func NewFilter(s Stats) *Filter { return &Filter{stats: s} }

// Active is the number of streams holding an active fault.
func (f *Filter) Active() int64 { return f.active.Load() }

// Inject carries out d for one stream under configuration cfg (the one d
// was decided with).
//
// A decision with no fault returns at once. Otherwise, when cfg's
// max_active_faults is reached the fault is skipped (faults_overflow is
// counted, the request goes on unharmed: the zero Decision, held false).
// Else the stream takes an active-fault slot (held true: the caller must
// call Release once the stream ends, whatever happens), waits d.Delay
// (delays_injected), and returns the abort to answer with, if any
// (aborts_injected). If ctx ends during the delay Inject returns ctx's
// error and no abort is counted.
func (f *Filter) Inject(ctx context.Context, cfg *Config, d Decision) (abort Decision, held bool, err error) {
	if !d.Faulted() || cfg == nil {
		return Decision{}, false, nil
	}
	if !f.admit(cfg) {
		f.stats.FaultsOverflow.Inc()
		return Decision{}, false, nil
	}
	f.stats.ActiveFaults.Add(1)
	if d.Delay > 0 {
		f.stats.DelaysInjected.Inc()
		t := time.NewTimer(d.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Decision{}, true, ctx.Err()
		}
	}
	if d.Abort == 0 {
		return Decision{}, true, nil
	}
	f.stats.AbortsInjected.Inc()
	d.Delay = 0
	return d, true, nil
}

// admit takes an active-fault slot unless max_active_faults are already
// active. Unlike Envoy's check-then-add it cannot overshoot the bound.
func (f *Filter) admit(cfg *Config) bool {
	max, ok := cfg.MaxActiveFaults()
	if !ok {
		f.active.Add(1)
		return true
	}
	for {
		n := f.active.Load()
		if n >= int64(max) {
			return false
		}
		if f.active.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release gives back the active-fault slot Inject took (held true).
func (f *Filter) Release() {
	f.active.Add(-1)
	f.stats.ActiveFaults.Add(-1)
}
