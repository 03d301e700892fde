package memtrim

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTickDecides walks a process through start-up, a burst, quiet,
// trickles and steady load, and checks when the trimmer collects.
func TestTickDecides(t *testing.T) {
	var alloc uint64
	trims := 0
	tr := &Trimmer{Quiet: 100, Worth: 1000}
	tr.allocatedFn = func() uint64 { return alloc }
	tr.freeOS = func() { trims++; alloc += 10 } // a collection allocates a little
	steps := []struct {
		name  string
		add   uint64
		trims bool
	}{
		{"baseline", 5000, false},               // start-up: the first tick takes the baseline
		{"quiet after start-up", 0, true},       // start-up's 5000 bytes are worth a trim
		{"still quiet", 0, false},               // once per idle stretch
		{"busy", 600, false},                    // allocating more than Quiet: not idle
		{"busy", 600, false},                    //
		{"quiet again", 50, true},               // 1250 since the trim
		{"trickle", 50, false},                  // idle, but not worth a collection
		{"trickle", 50, false},                  //
		{"burst", 2000, false},                  //
		{"quiet after the burst", 99, true},     //
		{"just under Quiet is idle", 99, false}, // and nothing worth it
	}
	for i, s := range steps {
		alloc += s.add
		if got := tr.Tick(); got != s.trims {
			t.Fatalf("step %d (%s): trimmed %v, want %v", i, s.name, got, s.trims)
		}
	}
	if trims != 3 {
		t.Fatalf("%d collections, want 3", trims)
	}
}

// TestSteadyLoadNeverTrims: a process that allocates more than Quiet in
// every interval is never collected by the trimmer, however much it
// allocated.
func TestSteadyLoadNeverTrims(t *testing.T) {
	var alloc uint64
	tr := &Trimmer{Quiet: 100, Worth: 1000}
	tr.allocatedFn = func() uint64 { return alloc }
	tr.freeOS = func() { t.Fatal("trimmed under load") }
	for range 1000 {
		alloc += 100 + alloc%37
		tr.Tick()
	}
}

func readUint(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

var sink [][]byte

// TestRunReturnsMemory: after a burst of garbage, a running trimmer gives
// the freed heap back to the system once the process goes quiet.
func TestRunReturnsMemory(t *testing.T) {
	var trims atomic.Int32
	tr := &Trimmer{Interval: 20 * time.Millisecond, OnTrim: func() { trims.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tr.Run(ctx)
	time.Sleep(100 * time.Millisecond) // the baseline is taken, and what came before trimmed
	// A burst: 64 MiB allocated, 16 MiB of it live at the end, then dropped.
	for range 4096 {
		sink = append(sink, make([]byte, 16<<10))
		if len(sink) > 1024 {
			sink = sink[1:]
		}
	}
	sink = nil
	runtime.GC()
	unreleased := func() uint64 { return readUint("/memory/classes/heap/free:bytes") }
	before, n := unreleased(), trims.Load()
	for deadline := time.Now().Add(10 * time.Second); trims.Load() == n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no trim after the burst")
		}
	}
	after := unreleased()
	t.Logf("free heap not returned to the system: %d KiB before the trim, %d KiB after", before>>10, after>>10)
	if before < 8<<20 {
		t.Skipf("the runtime had already returned the burst's memory (%d KiB left)", before>>10)
	}
	if after > before/2 {
		t.Fatalf("the trim kept %d of %d KiB of free heap from the system", after>>10, before>>10)
	}
}

// The zero Trimmer uses the documented defaults: half a second under
// 256 KiB is quiet, and 8 MiB since the last trim is worth one.
func TestDefaults(t *testing.T) {
	var alloc uint64
	trims := 0
	tr := &Trimmer{}
	tr.allocatedFn = func() uint64 { return alloc }
	tr.freeOS = func() { trims++ }
	tr.Tick()                 // baseline
	alloc += DefaultWorth / 2 // busy
	tr.Tick()
	alloc += DefaultQuiet - 1 // quiet, but 4 MiB is not worth a trim
	if tr.Tick() {
		t.Fatal("trimmed before 8 MiB were allocated")
	}
	alloc += DefaultWorth / 2 // busy
	tr.Tick()
	alloc += DefaultQuiet - 1 // quiet after 8 MiB: trims
	tr.Tick()
	if trims != 1 {
		t.Fatalf("%d trims after 8 MiB and a quiet interval, want 1", trims)
	}
	alloc += DefaultWorth
	tr.Tick() // busy
	alloc += DefaultQuiet
	if tr.Tick() {
		t.Fatal("an interval allocating 256 KiB counted as quiet")
	}
	if DefaultInterval != 500*time.Millisecond || DefaultQuiet != 256<<10 || DefaultWorth != 8<<20 {
		t.Fatal("the defaults differ from docs/proxy.md's --memory-trim")
	}
}

// TestBallastWhileBusy: the ballast is taken after two busy intervals in
// a row (one is a burst) and let go at the first quiet one.
func TestBallastWhileBusy(t *testing.T) {
	var alloc uint64
	tr := &Trimmer{Quiet: 100, Worth: 1 << 30, Busy: 500, Ballast: 1 << 10}
	tr.allocatedFn = func() uint64 { return alloc }
	tr.freeOS = func() {}
	steps := []struct {
		name    string
		add     uint64
		ballast bool
	}{
		{"baseline", 0, false},
		{"below Busy", 400, false},
		{"a burst", 500, false},
		{"below Busy again", 200, false},
		{"busy", 600, false},
		{"busy twice", 600, true},
		{"still busy", 900, true},
		{"between Quiet and Busy", 300, true},
		{"quiet", 10, false},
		{"busy once", 600, false},
	}
	for i, s := range steps {
		alloc += s.add
		tr.Tick()
		if got := tr.ballast != nil; got != s.ballast {
			t.Fatalf("step %d (%s): ballast held %v, want %v", i, s.name, got, s.ballast)
		}
	}
}

// rssAnon is the process's resident anonymous memory in bytes.
func rssAnon(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("RssAnon %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no RssAnon in /proc/self/status")
	return 0
}

// TestBallastIsNotResident: a ballast raises the collector's heap
// target by its size and adds no resident memory. Not parallel: it reads
// the process's RSS.
func TestBallastIsNotResident(t *testing.T) {
	const size = 4 << 20
	var alloc uint64
	tr := &Trimmer{Ballast: size}
	tr.allocatedFn = func() uint64 { return alloc }
	runtime.GC()
	before := rssAnon(t)
	tr.Tick()
	for range busyTicksForBallast {
		alloc += DefaultBusy
		tr.Tick()
	}
	if len(tr.ballast) != size {
		t.Fatalf("ballast of %d bytes, want %d", len(tr.ballast), size)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc < size {
		t.Errorf("heap in use %d bytes after GC: the ballast is not counted", ms.HeapAlloc)
	}
	if grew := rssAnon(t) - before; grew > size/4 {
		t.Errorf("resident anonymous memory grew by %d bytes with a %d-byte ballast", grew, size)
	}
	runtime.KeepAlive(tr)
}

// The trim frees what sync.Pools hold: a pooled object does not survive
// it (one collection alone would keep it in the pool's victim cache).
func TestFreeMemoryEmptiesPools(t *testing.T) {
	var made atomic.Int32
	pool := sync.Pool{New: func() any { made.Add(1); return new([4096]byte) }}
	pool.Put(pool.Get())
	before := made.Load()
	freeMemory()
	pool.Get()
	if made.Load() == before {
		t.Error("a pooled object survived the trim")
	}
}
