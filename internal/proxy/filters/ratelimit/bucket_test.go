package ratelimit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBucketSequence(t *testing.T) {
	t.Parallel()
	const ms = int64(time.Millisecond)
	type step struct {
		at    int64 // ns after start
		ok    bool
		retry time.Duration
	}
	tests := []struct {
		name     string
		max, per uint32
		interval time.Duration
		steps    []step
	}{
		{"starts full then empties", 2, 1, 100 * time.Millisecond, []step{
			{0, true, 0}, {1 * ms, true, 0}, {2 * ms, false, 98 * time.Millisecond},
		}},
		{"refills at the boundary, not before", 1, 1, 100 * time.Millisecond, []step{
			{0, true, 0}, {99 * ms, false, time.Millisecond}, {100 * ms, true, 0}, {150 * ms, false, 50 * time.Millisecond},
		}},
		{"tokens_per_fill per interval, capped at max", 3, 2, 100 * time.Millisecond, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, false, 100 * time.Millisecond},
			{100 * ms, true, 0}, {100 * ms, true, 0}, {100 * ms, false, 100 * time.Millisecond},
			// A long idle refills only up to max.
			{10_000 * ms, true, 0}, {10_000 * ms, true, 0}, {10_000 * ms, true, 0}, {10_000 * ms, false, 100 * time.Millisecond},
		}},
		{"tokens_per_fill above max fills the bucket", 2, 10, time.Second, []step{
			{0, true, 0}, {0, true, 0}, {0, false, time.Second}, {1000 * ms, true, 0}, {1000 * ms, true, 0}, {1000 * ms, false, time.Second},
		}},
		{"a stale clock reading never over-grants", 1, 1, 100 * time.Millisecond, []step{
			{150 * ms, true, 0}, {150 * ms, false, 50 * time.Millisecond}, {50 * ms, false, 50 * time.Millisecond},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const start = int64(1e12)
			b := NewBucket(tc.max, tc.per, tc.interval, start)
			for i, s := range tc.steps {
				ok, retry := b.Allow(start + s.at)
				if ok != s.ok || retry != s.retry {
					t.Fatalf("step %d at %v: Allow = %v, %v; want %v, %v", i, time.Duration(s.at), ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

func TestBucketRemaining(t *testing.T) {
	t.Parallel()
	b := NewBucket(5, 1, time.Second, 0)
	if r := b.Remaining(0); r != 5 {
		t.Fatalf("remaining = %d, want 5", r)
	}
	b.Allow(0)
	b.Allow(0)
	if r := b.Remaining(0); r != 3 {
		t.Fatalf("remaining = %d, want 3", r)
	}
	if r := b.Remaining(int64(time.Second)); r != 4 {
		t.Fatalf("remaining after a fill = %d, want 4", r)
	}
	if b.MaxTokens() != 5 {
		t.Fatal("MaxTokens")
	}
}

// Concurrent takers never get more tokens than the bucket holds: with the
// clock fixed, exactly max_tokens succeed, whatever the interleaving.
func TestBucketConcurrent(t *testing.T) {
	t.Parallel()
	const max = 1000
	b := NewBucket(max, 1, time.Hour, 0)
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if ok, _ := b.Allow(int64(time.Minute)); ok {
					got.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got.Load() != max {
		t.Fatalf("%d tokens granted, bucket held %d", got.Load(), max)
	}
}

func TestBucketAllocs(t *testing.T) {
	b := NewBucket(100, 10, time.Second, Now())
	if n := testing.AllocsPerRun(1000, func() { b.Allow(Now()) }); n != 0 {
		t.Fatalf("Allow allocates %v times", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	bk := NewBucket(1<<30, 1<<20, time.Second, Now())
	b.ReportAllocs()
	for b.Loop() {
		bk.Allow(Now())
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	bk := NewBucket(1<<30, 1<<20, time.Second, Now())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Allow(Now())
		}
	})
}
