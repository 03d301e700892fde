package sidecar

// gcBallastBytes is heap the garbage collector counts as live but the
// sidecar never reads or writes.
//
// Why: the collector runs when the heap has grown by GOGC percent (100)
// over what the last collection found live, and at least every 4 MB. A
// sidecar's live heap is small (about 1.2 MB idle and configured, since
// it no longer registers Envoy's generated types), so under load it
// collected at every 4 MB allocated: at the maximum rate through two
// gRPC hops that measured 7 to 15 % less throughput than the same build
// with this ballast (BENCHMARKS.md). With it, the heap target is about
// twice (live + 4 MB), where it was when the descriptors held 5 MB.
//
// The ballast costs no resident memory: a large allocation takes fresh
// pages from the system, which are zero already, so they are never
// written and never become resident (TestBallastIsNotResident). The
// garbage the larger target lets accumulate is given back when the
// sidecar goes quiet (internal/memtrim). A user who sets GOGC has tuned
// the collector and gets no ballast.
const gcBallastBytes = 4 << 20

// gcBallast keeps the ballast live for the process's life.
var gcBallast []byte

// setGCBallast allocates the ballast unless GOGC is set.
func setGCBallast(getenv func(string) string) {
	if getenv("GOGC") != "" || gcBallast != nil {
		return
	}
	gcBallast = make([]byte, gcBallastBytes)
}
