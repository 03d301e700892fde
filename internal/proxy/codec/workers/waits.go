package workers

import "sync/atomic"

// DefaultWaits is how many connections of one server may wait at once
// on the goroutine that served their last request (Waits).
const DefaultWaits = 64

// Waits bounds the connections that wait for their next request on the
// goroutine that served their last one, holding its grown stack (8 KiB
// and more) where a fresh goroutine's is 2 KiB. Such a wait saves, per
// request, the goroutine a detached wait starts and the stack it grows
// again (and, for HTTP/1.1, the hand-off to a worker). The connections an
// application keeps busy are few; thousands of idle ones beyond the bound
// wait detached (parked, with no goroutine, where the connection allows:
// internal/proxy/idlewait).
type Waits struct {
	// Max is how many may wait at once: DefaultWaits when 0, none when
	// negative.
	Max   int32
	taken atomic.Int32
}

// Take takes one of the waits, if one is free.
func (w *Waits) Take() bool {
	limit := w.Max
	if limit == 0 {
		limit = DefaultWaits
	}
	if w.taken.Add(1) > limit {
		w.taken.Add(-1)
		return false
	}
	return true
}

// Give gives back a wait Take took.
func (w *Waits) Give() { w.taken.Add(-1) }

// Taken is how many waits are taken.
func (w *Waits) Taken() int32 { return w.taken.Load() }
