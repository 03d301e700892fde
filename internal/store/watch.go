package store

import "context"

// watcher is one Watch channel. Its buffer of one holds the newest
// snapshot the reader has not taken yet: publishing replaces a pending
// snapshot instead of queueing behind it, so a slow reader costs nothing
// and always catches up to the latest state.
type watcher struct {
	ch   chan *Snapshot
	stop func() bool // unregisters the context.AfterFunc
}

// Watch returns a channel that receives the current snapshot at once and
// then the newest snapshot after every committed change; see Store.Watch.
// It starts no goroutine: the channel is fed by the writer and closed by
// context.AfterFunc or Close. A channel asked for after Close, or with a
// ctx already done, is returned closed.
func (b *Bolt) Watch(ctx context.Context) <-chan *Snapshot {
	w := &watcher{ch: make(chan *Snapshot, 1)}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closed.Load() || ctx.Err() != nil {
		close(w.ch)
		return w.ch
	}
	b.watchers[w] = struct{}{}
	w.ch <- b.snap.Load() // the buffer is empty: never blocks
	// Registered under wmu: if ctx ends right away, the callback waits
	// for the registration to finish and then undoes it.
	w.stop = context.AfterFunc(ctx, func() { b.dropWatcher(w) })
	return w.ch
}

// publish makes next the current snapshot and hands it to every watcher.
// Swapping under wmu orders it with Watch: a new watcher gets either the
// old snapshot and then next, or next alone.
func (b *Bolt) publish(next *Snapshot) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.snap.Store(next)
	for w := range b.watchers {
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
func (b *Bolt) dropWatcher(w *watcher) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if _, ok := b.watchers[w]; ok {
		delete(b.watchers, w)
		close(w.ch)
	}
}

// closeWatchers closes every watcher; Close calls it once.
func (b *Bolt) closeWatchers() {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	for w := range b.watchers {
		w.stop()
		delete(b.watchers, w)
		close(w.ch)
	}
}
