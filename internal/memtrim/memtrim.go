// Package memtrim gives a process's freed memory back to the system once
// the process goes quiet after a busy stretch.
//
// Go's runtime keeps the heap it grew to (up to twice the live heap under
// GOGC=100) and returns unused pages to the system only slowly, so a
// sidecar that served a burst, or accepted thousands of keep-alive
// connections, then sits idle holds the garbage of that work in its RSS
// for minutes. A sidecar is idle most of its life on most nodes, and its
// RSS is what the node pays for. The Trimmer watches the bytes the
// process allocates (runtime/metrics, a few atomic reads): when a whole
// interval allocated less than Quiet bytes and at least Worth bytes were
// allocated since the last trim, it collects and returns free memory
// (debug.FreeOSMemory) once. A busy process never trims (it allocates
// more than Quiet per interval), and an idle one trims once per idle
// stretch, so the cost is one collection per burst.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults.
const (
	DefaultInterval = 500 * time.Millisecond
	DefaultQuiet    = 256 << 10 // bytes allocated in an interval below which the process is idle
	DefaultWorth    = 2 << 20   // bytes allocated since the last trim that make a trim worth its collection
)

// Trimmer decides when to give memory back. The zero value uses the
// defaults.
type Trimmer struct {
	Interval time.Duration
	Quiet    uint64
	Worth    uint64
	// OnTrim, if set, is called after each trim (for stats and tests).
	OnTrim func()

	sample      [1]metrics.Sample
	last        uint64 // allocated bytes at the previous tick
	trimmed     uint64 // allocated bytes at the last trim
	started     bool
	freeOS      func() // debug.FreeOSMemory; replaced in tests
	allocatedFn func() uint64
}

const allocsMetric = "/gc/heap/allocs:bytes"

func (t *Trimmer) allocated() uint64 {
	if t.allocatedFn != nil {
		return t.allocatedFn()
	}
	t.sample[0].Name = allocsMetric
	metrics.Read(t.sample[:])
	if t.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return t.sample[0].Value.Uint64()
}

// Tick looks at the allocations since the previous tick and trims if the
// process just went quiet after enough work. It reports whether it
// trimmed. Run calls it every Interval.
func (t *Trimmer) Tick() bool {
	now := t.allocated()
	if !t.started {
		// The first tick only takes the baseline: everything the process
		// allocated while starting counts toward the first trim.
		t.started, t.last = true, now
		return false
	}
	quiet, worth := t.Quiet, t.Worth
	if quiet == 0 {
		quiet = DefaultQuiet
	}
	if worth == 0 {
		worth = DefaultWorth
	}
	since := now - t.last
	t.last = now
	if since >= quiet || now-t.trimmed < worth {
		return false
	}
	if t.freeOS != nil {
		t.freeOS()
	} else {
		debug.FreeOSMemory()
	}
	// What the collection itself allocated does not count as work.
	t.trimmed = t.allocated()
	t.last = t.trimmed
	if t.OnTrim != nil {
		t.OnTrim()
	}
	return true
}

// Run ticks every Interval until ctx ends.
func (t *Trimmer) Run(ctx context.Context) {
	iv := t.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	tick := time.NewTicker(iv)
	defer tick.Stop()
	t.Tick()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.Tick()
		}
	}
}
