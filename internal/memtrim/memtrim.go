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
// allocated since the last trim, it collects (twice, to free what
// sync.Pools held) and returns free memory (debug.FreeOSMemory) once. A busy process never trims (it allocates
// more than Quiet per interval), and an idle one trims once per idle
// stretch, so the cost is one collection per burst.
//
// While the process is busy the Trimmer can also hold a GC ballast: heap
// the collector counts as live but nothing writes. The collector runs
// whenever the heap has grown by GOGC percent over what the last
// collection found live, and at least every 4 MB; a sidecar's live heap
// is about 1.2 MB, so under load it collected at every 4 MB allocated,
// and a 4 MB ballast measured 7-15 % more throughput at the maximum rate
// through two gRPC hops (BENCHMARKS.md). The ballast is taken when two
// intervals in a row allocated Busy bytes or more each and let go at the
// first quiet interval, so an idle process holds none and a burst (the
// first configuration's decoding) takes none: a process that has never
// collected has not touched the pages a collection reads (about 1 MB),
// and a ballast taken then would force that first collection. Its pages come fresh
// from the system, zero already, and are never written, so they never
// become resident (TestBallastIsNotResident).
package memtrim

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults.
const (
	DefaultInterval = 500 * time.Millisecond
	DefaultQuiet    = 256 << 10 // bytes allocated in an interval below which the process is idle
	DefaultWorth    = 8 << 20   // bytes allocated since the last trim that make a trim worth its collection
	DefaultBusy     = 1 << 20   // bytes allocated in an interval at or above which the process is busy
)

// Trimmer decides when to give memory back. The zero value uses the
// defaults.
type Trimmer struct {
	Interval time.Duration
	Quiet    uint64
	Worth    uint64
	// Ballast is the size in bytes of the GC ballast held while the
	// process is busy (0: none), and Busy the bytes an interval
	// allocates that make it busy.
	Ballast int
	Busy    uint64
	// OnTrim, if set, is called after each trim (for stats and tests).
	OnTrim func()

	sample      [1]metrics.Sample
	last        uint64 // allocated bytes at the previous tick
	trimmed     uint64 // allocated bytes at the last trim
	started     bool
	ballast     []byte // held while busy
	busyTicks   int    // consecutive busy intervals
	freeOS      func() // freeMemory; replaced in tests
	allocatedFn func() uint64
}

const allocsMetric = "/gc/heap/allocs:bytes"

// busyTicksForBallast is how many busy intervals in a row take the
// ballast: a burst such as decoding a large configuration is not load.
const busyTicksForBallast = 2

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
	busy := t.Busy
	if busy == 0 {
		busy = DefaultBusy
	}
	switch {
	case since >= busy:
		t.busyTicks++
		if t.Ballast > 0 && t.ballast == nil && t.busyTicks >= busyTicksForBallast {
			t.ballast = make([]byte, t.Ballast)
		}
	case since < quiet:
		t.busyTicks = 0
		t.ballast = nil // idle: the collector may run at the heap's own pace
	default:
		t.busyTicks = 0
	}
	if since >= quiet || now-t.trimmed < worth {
		return false
	}
	if t.freeOS != nil {
		t.freeOS()
	} else {
		freeMemory()
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

// freeMemory collects twice and returns free memory to the system. The
// first collection moves what sync.Pools hold (buffers of connections
// and requests since gone) to their victim caches, the second frees it;
// a single one would keep it until the next, which an idle process may
// not run for minutes.
func freeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}
