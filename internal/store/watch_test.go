package store

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// recv takes one snapshot, failing if none comes or the channel closed.
func recv(t *testing.T, ch <-chan *Snapshot) *Snapshot {
	t.Helper()
	select {
	case s, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot delivered")
	}
	return nil
}

// pending reports whether a snapshot is waiting, without blocking.
func pending(ch <-chan *Snapshot) (*Snapshot, bool) {
	select {
	case s, ok := <-ch:
		return s, ok
	default:
		return nil, false
	}
}

// closedSoon waits for ch to close, draining what is left.
func closedSoon(t *testing.T, ch <-chan *Snapshot) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("watch channel did not close")
		}
	}
}

func TestWatchDeliversInitialThenLatest(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t, nil)
	ctx := context.Background()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		t.Fatal(err)
	}
	ch := s.Watch(t.Context())
	if got := recv(t, ch); got != s.Snapshot() || got.Revision() != 1 {
		t.Fatalf("initial snapshot at revision %d, want the current one (1)", got.Revision())
	}
	if _, ok := pending(ch); ok {
		t.Fatal("a second snapshot before any write")
	}

	if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", 1)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch); got.Revision() != 2 || got.Get(vnKey("m", "a")) == nil {
		t.Fatalf("after a write: revision %d", got.Revision())
	}

	// A slow reader: five writes, one pending snapshot, the newest.
	for i := range 5 {
		if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", 10+i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := recv(t, ch); got != s.Snapshot() || got.Revision() != 7 {
		t.Fatalf("coalesced snapshot at revision %d, want 7", got.Revision())
	}
	if s, ok := pending(ch); ok {
		t.Fatalf("an older snapshot (revision %d) was queued behind the newest", s.Revision())
	}

	// Unchanged writes and refused writes wake nobody.
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", 14)}, nil); err != nil {
		t.Fatal(err)
	}
	refuse := func(*Snapshot, []v1alpha1.Key) error { return fmt.Errorf("no") }
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "b", 1)}, refuse); err == nil {
		t.Fatal("refused write succeeded")
	}
	if _, ok := pending(ch); ok {
		t.Fatal("a write that changed nothing woke the watcher")
	}

	// Deletes are changes too.
	if _, err := s.Delete(ctx, vnKey("m", "a"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch); got.Revision() != 8 || got.Get(vnKey("m", "a")) != nil {
		t.Fatalf("after delete: revision %d", got.Revision())
	}
}

func TestWatchCloses(t *testing.T) {
	t.Parallel()
	t.Run("on cancel", func(t *testing.T) {
		t.Parallel()
		s, _ := openTemp(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		ch := s.Watch(ctx)
		other := s.Watch(t.Context())
		recv(t, ch)
		cancel()
		closedSoon(t, ch)
		// Other watchers carry on.
		recv(t, other)
		if _, err := s.Apply(context.Background(), []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, other); got.Revision() != 1 {
			t.Fatalf("other watcher got revision %d", got.Revision())
		}
	})
	t.Run("ctx already done", func(t *testing.T) {
		t.Parallel()
		s, _ := openTemp(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		closedSoon(t, s.Watch(ctx))
	})
	t.Run("on store close", func(t *testing.T) {
		t.Parallel()
		s, _ := openTemp(t, nil)
		ch := s.Watch(t.Context())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		closedSoon(t, ch)
	})
}

// TestWatchNoGoroutineLeak: watches hold no goroutine while open, and
// none is left behind once their contexts end or the store closes.
// Not parallel: it counts the process's goroutines.
func TestWatchNoGoroutineLeak(t *testing.T) {
	s, _ := openTemp(t, nil)
	base := runtime.NumGoroutine()

	var cancels []context.CancelFunc
	var chans []<-chan *Snapshot
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		chans = append(chans, s.Watch(ctx))
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Errorf("50 open watches run %d goroutines", n-base)
	}
	for _, cancel := range cancels[:25] {
		cancel()
	}
	for _, ch := range chans[:25] {
		closedSoon(t, ch)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans[25:] {
		closedSoon(t, ch)
	}
	for _, cancel := range cancels[25:] {
		cancel() // after Close: the AfterFuncs were stopped, nothing runs
	}
	waitFor(t, "watch goroutines to exit", func() bool { return runtime.NumGoroutine() <= base })
	s.wmu.Lock()
	left := len(s.watchers)
	s.wmu.Unlock()
	if left != 0 {
		t.Fatalf("%d watchers still registered", left)
	}
}

// TestWatchWithConcurrentWrites: every watcher sees revisions only grow
// and ends on the last one, while watches come and go.
func TestWatchWithConcurrentWrites(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t, nil)
	ctx := context.Background()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		t.Fatal(err)
	}
	const writes = 40
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range writes {
			if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", fmt.Sprintf("n%d", i%4), i)}, nil); err != nil {
				t.Error(err)
				return
			}
		}
	})
	final := uint64(1 + writes)
	for w := range 4 {
		wg.Go(func() {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var last uint64
			for snap := range s.Watch(wctx) {
				if snap.Revision() < last {
					t.Errorf("watcher %d: revision went back from %d to %d", w, last, snap.Revision())
					return
				}
				last = snap.Revision()
				if last == final {
					return
				}
			}
			t.Errorf("watcher %d: channel closed at revision %d", w, last)
		})
	}
	// Short-lived watches racing with the writes.
	wg.Go(func() {
		for range 30 {
			wctx, cancel := context.WithCancel(ctx)
			ch := s.Watch(wctx)
			<-ch
			cancel()
		}
	})
	wg.Wait()
}
