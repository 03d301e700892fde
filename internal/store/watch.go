package store

import (
	"context"
	"sync"
	"sync/atomic"
)

// hub holds a store's current snapshot and hands every new one to the
// Watch channels. Both backends embed it, so watches behave alike.
type hub struct {
	snap atomic.Pointer[Snapshot]

	wmu      sync.Mutex // guards watchers and done, and orders snapshot swaps with watch registration
	watchers map[*watcher]struct{}
	done     bool // closeWatchers ran: no new watch is registered
}

// watcher is one Watch channel. Its buffer of one holds the newest
// snapshot the reader has not taken yet: publishing replaces a pending
// snapshot instead of queueing behind it, so a slow reader costs nothing
// and always catches up to the latest state.
type watcher struct {
	ch   chan *Snapshot
	stop func() bool // unregisters the context.AfterFunc
}

// watch returns a channel that receives the current snapshot at once and
// then the newest snapshot after every committed change; see Store.Watch.
// It starts no goroutine: the channel is fed by publish and closed by
// context.AfterFunc or closeWatchers. A channel asked for after
// closeWatchers, or with a ctx already done, is returned closed.
func (h *hub) watch(ctx context.Context) <-chan *Snapshot {
	w := &watcher{ch: make(chan *Snapshot, 1)}
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if h.done || ctx.Err() != nil {
		close(w.ch)
		return w.ch
	}
	if h.watchers == nil {
		h.watchers = map[*watcher]struct{}{}
	}
	h.watchers[w] = struct{}{}
	w.ch <- h.snap.Load() // the buffer is empty: never blocks
	// Registered under wmu: if ctx ends right away, the callback waits
	// for the registration to finish and then undoes it.
	w.stop = context.AfterFunc(ctx, func() { h.dropWatcher(w) })
	return w.ch
}

// publish makes next the current snapshot and hands it to every watcher.
// Swapping under wmu orders it with watch: a new watcher gets either the
// old snapshot and then next, or next alone.
func (h *hub) publish(next *Snapshot) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.snap.Store(next)
	for w := range h.watchers {
		// This is the only sender (publish runs under wmu) and the
		// reader only takes, so after the drain the send cannot block.
		select {
		case w.ch <- next:
		default:
			select {
			case <-w.ch: // drop the older pending snapshot
			default:
			}
			w.ch <- next
		}
	}
}

// dropWatcher closes one watcher whose context ended.
func (h *hub) dropWatcher(w *watcher) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if _, ok := h.watchers[w]; ok {
		delete(h.watchers, w)
		close(w.ch)
	}
}

// closeWatchers closes every watcher and refuses new ones; Close calls it
// once.
func (h *hub) closeWatchers() {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.done = true
	for w := range h.watchers {
		w.stop()
		delete(h.watchers, w)
		close(w.ch)
	}
}

// Watch returns a channel that receives the current snapshot at once and
// then the newest snapshot after every committed change; see Store.Watch.
func (b *Bolt) Watch(ctx context.Context) <-chan *Snapshot { return b.hub.watch(ctx) }
