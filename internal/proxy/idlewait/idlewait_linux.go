package idlewait

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// earlyWake is how much before its deadline the deadline sweep may wake
// a connection: one sweep wakes every connection due within it, and the
// connection's own read deadline ends the read at the right time.
const earlyWake = 50 * time.Millisecond

// poller is the process's set of parked connections: an epoll instance
// a goroutine waits on (loop), the parked connections by key, and one
// timer for the earliest deadline among them.
type poller struct {
	once sync.Once
	epfd int
	err  error

	mu      sync.Mutex
	waits   map[uint64]*parked
	next    uint64
	timer   *time.Timer
	timerAt int64 // when timer fires (Unix nanoseconds); 0 when not set
}

var pl = poller{waits: make(map[uint64]*parked)}

func supported() bool {
	pl.once.Do(pl.init)
	return pl.err == nil
}

func (pl *poller) init() {
	pl.epfd, pl.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if pl.err != nil {
		slog.Warn("idle connections wait on goroutines of their own", "err", pl.err)
		return
	}
	go pl.loop()
}

// Parked is how many connections are parked now.
func Parked() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.waits)
}

// park enters p with a new key, then arms its socket in the epoll set
// with that key (one-shot: an event disarms it, the next park re-arms
// it). The socket is touched inside RawConn.Control, which keeps its
// descriptor from being closed, and so from being reused, meanwhile. It
// returns the key, and false when fn is the caller's to run.
func park(p *parked, deadline int64, fn func()) (uint64, bool) {
	pl.mu.Lock()
	pl.next++
	key := pl.next
	p.key, p.deadline, p.fn = key, deadline, fn
	pl.waits[key] = p
	p.waiting.Store(true)
	if deadline != 0 && (pl.timerAt == 0 || deadline < pl.timerAt) {
		pl.armTimerLocked(deadline)
	}
	pl.mu.Unlock()

	var ctlErr error
	p.ctl.Lock()
	err := p.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
		ev.Fd, ev.Pad = int32(uint32(key)), int32(uint32(key>>32))
		op := unix.EPOLL_CTL_MOD
		if !p.registered {
			op = unix.EPOLL_CTL_ADD
		}
		ctlErr = unix.EpollCtl(pl.epfd, op, int(fd), &ev)
		if errors.Is(ctlErr, unix.ENOENT) && op == unix.EPOLL_CTL_MOD {
			// No longer in the set (the descriptor was replaced).
			ctlErr = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
		if ctlErr == nil {
			p.registered = true
		}
	})
	p.ctl.Unlock()
	if err == nil && ctlErr == nil {
		return key, true
	}
	// Not armed (a closed connection, a full epoll set): take the wait
	// back and let the caller read on a goroutine. If a wake took it
	// meanwhile, fn runs already.
	pl.mu.Lock()
	mine := pl.takeLocked(p, key) != nil
	pl.mu.Unlock()
	return key, !mine
}

// wake starts p's function now, unless something else started it: its
// wait under key, or under any key when key is 0 (keys start at 1).
func wake(p *parked, key uint64) {
	pl.mu.Lock()
	if key == 0 {
		key = p.key
	}
	fn := pl.takeLocked(p, key)
	pl.mu.Unlock()
	if fn != nil {
		go fn()
	}
}

// takeLocked ends p's wait under key, if it still waits under it, and
// returns its function.
func (pl *poller) takeLocked(p *parked, key uint64) func() {
	if pl.waits[key] != p {
		return nil
	}
	delete(pl.waits, key)
	p.waiting.Store(false)
	fn := p.fn
	p.fn = nil
	return fn
}

// armTimerLocked makes the deadline sweep run at t.
func (pl *poller) armTimerLocked(t int64) {
	pl.timerAt = t
	d := time.Duration(t - time.Now().UnixNano())
	if pl.timer == nil {
		pl.timer = time.AfterFunc(d, pl.sweep)
		return
	}
	pl.timer.Reset(d)
}

// sweep wakes the connections whose deadline is past or due within
// earlyWake, and sets the timer for the earliest deadline left.
func (pl *poller) sweep() {
	var due []func()
	pl.mu.Lock()
	now := time.Now().UnixNano()
	var next int64
	for key, p := range pl.waits {
		switch {
		case p.deadline == 0:
		case p.deadline <= now+int64(earlyWake):
			due = append(due, pl.takeLocked(p, key))
		case next == 0 || p.deadline < next:
			next = p.deadline
		}
	}
	pl.timerAt = 0
	if next != 0 {
		pl.armTimerLocked(next)
	}
	pl.mu.Unlock()
	for _, fn := range due {
		go fn()
	}
}

// loop waits on the epoll set and starts the function of each parked
// connection whose socket is ready. An event whose key no longer waits
// (the connection was woken meanwhile) is dropped.
func (pl *poller) loop() {
	events := make([]unix.EpollEvent, 256)
	var ready []func()
	for {
		n, err := unix.EpollWait(pl.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			slog.Error("idle connection poller stopped: parked connections wake only when closed or at their deadline", "err", err)
			return
		}
		ready = ready[:0]
		pl.mu.Lock()
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if p := pl.waits[key]; p != nil {
				ready = append(ready, pl.takeLocked(p, key))
			}
		}
		pl.mu.Unlock()
		for i, fn := range ready {
			ready[i] = nil
			go fn()
		}
	}
}
