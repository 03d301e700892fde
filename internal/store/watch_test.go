package store

import (
	"context"
	"runtime"
	"testing"
	"time"
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
