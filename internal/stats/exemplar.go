package stats

import (
	"sync/atomic"
	"time"
)

// exemplarSlot holds one exemplar: the trace id of a sample, its value
// and when it was taken. It is a seqlock over atomics so that writing is
// lock-free and allocation-free and a reader never sees a torn exemplar:
// seq is odd while a writer fills the fields; a writer that finds it odd
// (another writer at work) drops its exemplar rather than wait, as any
// recent exemplar will do.
type exemplarSlot struct {
	seq    atomic.Uint64
	hi, lo atomic.Uint64
	value  atomic.Uint64
	nanos  atomic.Int64
}

// exemplarSlots are one slot per Prometheus bucket, +Inf last.
type exemplarSlots [len(Buckets) + 1]exemplarSlot

// Exemplar is a sample linked to the trace that produced it.
type Exemplar struct {
	TraceID [16]byte
	// Value is in the histogram's unit.
	Value uint64
	Time  time.Time
}

func (s *exemplarSlot) store(traceID *[16]byte, v uint64, nanos int64) {
	seq := s.seq.Load()
	if seq&1 == 1 || !s.seq.CompareAndSwap(seq, seq+1) {
		return
	}
	s.hi.Store(be64(traceID[:8]))
	s.lo.Store(be64(traceID[8:]))
	s.value.Store(v)
	s.nanos.Store(nanos)
	s.seq.Store(seq + 2)
}

func (s *exemplarSlot) load() (Exemplar, bool) {
	for range 8 {
		seq := s.seq.Load()
		if seq == 0 {
			return Exemplar{}, false
		}
		if seq&1 == 1 {
			continue
		}
		var e Exemplar
		putBE64(e.TraceID[:8], s.hi.Load())
		putBE64(e.TraceID[8:], s.lo.Load())
		e.Value = s.value.Load()
		nanos := s.nanos.Load()
		if s.seq.Load() == seq {
			e.Time = time.Unix(0, nanos)
			return e, true
		}
	}
	return Exemplar{}, false
}

func be64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func putBE64(b []byte, v uint64) {
	_ = b[7]
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// bucketOf is the index of the first Prometheus bucket whose bound holds
// v (len(Buckets) for +Inf).
func bucketOf(v uint64) int {
	f := float64(v)
	for i, le := range Buckets {
		if f <= le {
			return i
		}
	}
	return len(Buckets)
}

// ObserveWithExemplar records v, as Record does, and keeps it as the
// exemplar of its Prometheus bucket, linked to traceID; the OpenMetrics
// exposition prints the latest exemplar of each bucket. A zero traceID
// records v without an exemplar. It takes no lock and allocates nothing
// (but once per histogram, for the exemplar slots).
func (h *Histogram) ObserveWithExemplar(v uint64, traceID [16]byte) {
	if h == nil {
		return
	}
	h.Record(v)
	if traceID == [16]byte{} {
		return
	}
	slots := h.ex.Load()
	if slots == nil {
		h.ex.CompareAndSwap(nil, new(exemplarSlots))
		slots = h.ex.Load()
	}
	slots[bucketOf(v)].store(&traceID, v, time.Now().UnixNano())
}

// RecordDurationWithExemplar is RecordDuration with an exemplar.
func (h *Histogram) RecordDurationWithExemplar(d time.Duration, traceID [16]byte) {
	if h == nil {
		return
	}
	if d < 0 {
		d = 0
	}
	if h.unit == Microseconds {
		h.ObserveWithExemplar(uint64(d.Microseconds()), traceID)
		return
	}
	h.ObserveWithExemplar(uint64(d.Milliseconds()), traceID)
}

// Exemplars returns the latest exemplar of each Prometheus bucket (+Inf
// last) and whether it has one.
func (h *Histogram) Exemplars() (ex [len(Buckets) + 1]Exemplar, ok [len(Buckets) + 1]bool) {
	if h == nil {
		return ex, ok
	}
	slots := h.ex.Load()
	if slots == nil {
		return ex, ok
	}
	for i := range slots {
		ex[i], ok[i] = slots[i].load()
	}
	return ex, ok
}
