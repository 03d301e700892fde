package stats

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingSink keeps what it was handed.
type recordingSink struct {
	mu    sync.Mutex
	snaps []*Snapshot
	err   error
}

func (r *recordingSink) Flush(_ context.Context, s *Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, s)
	return r.err
}

func (r *recordingSink) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

func TestFlusherDeltasAndSelection(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	sc := s.Scope("cluster.c.")
	c := sc.Counter("upstream_rq_total")
	sc.Counter("never")
	g := sc.Gauge("upstream_cx_active")
	sc.Gauge("never_g")
	h := sc.Histogram("upstream_rq_time", Milliseconds)
	sc.Histogram("never_h", Milliseconds)
	rec := &recordingSink{}
	f := NewFlusher(s, time.Hour, nil, rec)
	f.now = func() time.Time { return fixedTime }

	c.Add(4)
	g.Set(2)
	h.Record(10)
	h.Record(10)
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Add(3)
	h.Record(20)
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.snaps) != 3 {
		t.Fatalf("%d snapshots", len(rec.snaps))
	}
	for i, want := range []uint64{4, 3, 0} {
		snap := rec.snaps[i]
		if len(snap.Counters) != 1 || snap.Counters[0].Delta != want || snap.Counters[0].Metric.Name != "cluster.c.upstream_rq_total" {
			t.Errorf("flush %d counters = %+v, want one with delta %d", i, snap.Counters, want)
		}
		if len(snap.Gauges) != 1 || snap.Gauges[0].Value != 2 {
			t.Errorf("flush %d gauges = %+v", i, snap.Gauges)
		}
		if !snap.Time.Equal(fixedTime) {
			t.Errorf("flush %d time %v", i, snap.Time)
		}
	}
	for i, want := range []uint64{2, 1, 0} {
		hs := rec.snaps[i].Histograms
		if len(hs) != 1 || hs[0].Interval.Count != want || hs[0].Unit != Milliseconds {
			t.Errorf("flush %d histograms = %+v, want interval count %d", i, hs, want)
		}
	}
}

func TestFlusherLogsFailureOnce(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	s.Scope("").Counter("c").Inc()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	bad := &recordingSink{err: errors.New("agent down")}
	good := &recordingSink{}
	f := NewFlusher(s, 0, log, bad, good)
	if f.Interval() != DefaultFlushInterval {
		t.Errorf("interval %v", f.Interval())
	}
	for range 3 {
		if err := f.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "agent down") {
			t.Fatalf("err = %v", err)
		}
	}
	if good.count() != 3 {
		t.Errorf("good sink got %d snapshots", good.count())
	}
	if n := strings.Count(logs.String(), "stats sink flush failed"); n != 1 {
		t.Errorf("failure logged %d times:\n%s", n, logs.String())
	}
	bad.mu.Lock()
	bad.err = nil
	bad.mu.Unlock()
	if err := f.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "flushing again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}

func TestFlusherRun(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	c := s.Scope("").Counter("c")
	c.Inc()
	rec := &recordingSink{}
	f := NewFlusher(s, 5*time.Millisecond, nil, rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for rec.count() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no periodic flush")
		}
		time.Sleep(time.Millisecond)
	}
	c.Add(5)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	// The final flush carried the last increments.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var total uint64
	for _, snap := range rec.snaps {
		for _, cv := range snap.Counters {
			total += cv.Delta
		}
	}
	if total != 6 {
		t.Errorf("deltas add up to %d, want 6", total)
	}
}
