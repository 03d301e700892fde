package h2frame

import (
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// AckDelay is the longest a PING's acknowledgement waits for the
// connection's next write.
//
// A gRPC peer (grpc-go's flow-control estimator) sends a PING with
// nearly every call's data, and an acknowledgement sent at once goes in a
// write of its own that the peer reads on its own: a system call at each
// end and a wake-up per call. Held back, it goes with the next frames
// the connection sends anyway (the next call's request or response),
// which on a busy connection follow within a millisecond or two. RFC
// 9113 asks for a response, first among the frames sent (it is: a batch
// starts with it), not for one within a given time; peers that time
// PINGs (keepalives, health checks) allow seconds.
const AckDelay = 5 * time.Millisecond

// PingAcks holds a connection's PING acknowledgements until its next
// write, or AckDelay. Its methods are called under the connection's
// lock (mu of Init). When AckDelay passed with no write, it takes that
// lock and calls wake, which wakes the connection's writer.
type PingAcks struct {
	mu      sync.Locker
	wake    func()
	pending [][8]byte
	timer   *time.Timer
}

// Init sets the connection's lock and writer wake-up.
func (a *PingAcks) Init(mu sync.Locker, wake func()) { a.mu, a.wake = mu, wake }

// Add queues the acknowledgement of a PING carrying data, unless it and
// the connection's queued control frames (ctrl) would exceed limit: it
// then returns false, and the connection's flood limit is its answer.
func (a *PingAcks) Add(data [8]byte, ctrl, limit int) bool {
	if ctrl+len(a.pending) >= limit {
		return false
	}
	a.pending = append(a.pending, data)
	if len(a.pending) > 1 {
		return true // the timer runs already
	}
	if a.timer == nil {
		a.timer = time.AfterFunc(AckDelay, a.flush)
		return true
	}
	a.timer.Reset(AckDelay)
	return true
}

// flush wakes the writer for acknowledgements that waited AckDelay with
// nothing else written.
func (a *PingAcks) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) > 0 {
		a.wake()
	}
}

// Len is how many acknowledgements wait.
func (a *PingAcks) Len() int { return len(a.pending) }

// Write writes the waiting acknowledgements with fr and stops the timer.
func (a *PingAcks) Write(fr *http2.Framer) {
	if len(a.pending) == 0 {
		return
	}
	for _, d := range a.pending {
		_ = fr.WritePing(true, d)
	}
	a.pending = a.pending[:0]
	a.timer.Stop()
}

// Stop forgets the waiting acknowledgements (the connection ends).
func (a *PingAcks) Stop() {
	a.pending = nil
	if a.timer != nil {
		a.timer.Stop()
	}
}
