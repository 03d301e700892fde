package tunnel

import (
	"context"
	"net"
	"sync"
)

// Pair is one proxied connection pair: a TCP proxy session, or an HTTP
// connection upgraded or CONNECTed into a tunnel.
type Pair struct {
	down, up  net.Conn
	closeOnce sync.Once
}

// Close tears both sides down (idempotent).
func (s *Pair) Close() {
	s.closeOnce.Do(func() {
		_ = s.down.Close()
		if s.up != nil {
			_ = s.up.Close()
		}
	})
}

// Set is the open sessions of a listener (TCP proxy) or an HTTP
// server (upgraded connections), which a drain waits for and then closes.
type Set struct {
	mu       sync.Mutex
	set      map[*Pair]struct{}
	wg       sync.WaitGroup
	draining bool
}

// Add registers s, unless the drain has begun.
func (t *Set) Add(s *Pair) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return false
	}
	if t.set == nil {
		t.set = map[*Pair]struct{}{}
	}
	t.set[s] = struct{}{}
	t.wg.Add(1)
	return true
}

// SetUp records s's upstream connection, which a drain closes too.
func (t *Set) SetUp(s *Pair, up net.Conn) {
	t.mu.Lock()
	s.up = up
	t.mu.Unlock()
}

// Remove unregisters s, which has ended.
func (t *Set) Remove(s *Pair) {
	t.mu.Lock()
	delete(t.set, s)
	t.mu.Unlock()
	t.wg.Done()
}

// Drain refuses new sessions, lets the open ones run until ctx ends, then
// closes what is left and waits for it.
func (t *Set) Drain(ctx context.Context) {
	t.mu.Lock()
	t.draining = true
	t.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		return
	case <-ctx.Done():
	}
	t.mu.Lock()
	for s := range t.set {
		s.Close()
	}
	t.mu.Unlock()
	<-idle
}

// NewPair makes a pair of down and up; up may be nil until connected
// (Set.SetUp).
func NewPair(down, up net.Conn) *Pair { return &Pair{down: down, up: up} }
