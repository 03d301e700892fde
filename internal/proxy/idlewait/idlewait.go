// Package idlewait waits for idle connections' next bytes without a
// goroutine each. A server whose connection has nothing left to read
// parks it in the connection's Slot with the function that reads on
// (Park); one goroutine of the process waits on every parked socket at
// once (epoll, on Linux) and starts that function on a goroutine of its
// own when the socket has bytes to read, has hung up or failed, when the
// deadline given to Park passes, or when the connection's owner wakes it
// (Wake: the connection's Close, or a new read deadline). So a parked
// connection holds no goroutine and no goroutine stack (about 2.5 KiB
// together), as the event loops of HAProxy and Envoy hold none for an
// idle connection.
//
// A wake-up is never lost and may come early: the function then reads as
// it would have on a goroutine of its own, blocking until the bytes or
// the deadline come. Where parking is not possible (another platform, a
// connection with no socket of its own, one whose wrapper buffers bytes
// such as TLS), Park reports false and the caller waits on a goroutine as
// before.
package idlewait

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Slot is what one connection needs to be parked: nothing until its
// first Park but the connection's read deadline. Park is called by the
// connection's reader only; Wake and SetReadDeadline by anyone.
type Slot struct {
	p atomic.Pointer[parked]
	// rdl is the connection's read deadline (Unix nanoseconds, 0 for
	// none) as its owner last set it, and rdlSet counts the settings: a
	// parked wait ends by that deadline, as a blocked read would, even
	// when it was set while the reader was on its way to Park.
	rdl    atomic.Int64
	rdlSet atomic.Uint64
}

// parked is a connection's registration with the process's poller.
type parked struct {
	rc syscall.RawConn
	// ctl serializes the connection's registrations: the socket's event
	// can start the function, and the function park the connection
	// again, before the Park that armed it has returned.
	ctl sync.Mutex
	// registered: the socket is in the poller's set (armed or, after an
	// event, disarmed); guarded by ctl.
	registered bool
	// waiting: the connection is parked, its function not yet started.
	// Its key, deadline (Unix nanoseconds, 0 for none) and fn are the
	// poller's, guarded by its lock.
	waiting  atomic.Bool
	key      uint64
	deadline int64
	fn       func()
}

// Park waits for nc to have bytes to read without a goroutine, then
// runs fn on a goroutine of its own (see the package comment for what
// ends the wait). It reports false, having done nothing, when nc cannot
// be parked: the caller then runs fn itself. nc must be the socket
// itself (a *net.TCPConn or *net.UnixConn), with nothing buffered above
// it that fn would read.
//
// The wait also ends by the connection's read deadline, as its owner
// last told SetReadDeadline, whichever is earlier; a deadline set while
// Park runs wakes the connection once it is parked.
func (s *Slot) Park(nc net.Conn, deadline time.Time, fn func()) bool {
	set := s.rdlSet.Load()
	p := s.p.Load()
	if p == nil {
		sc, ok := nc.(syscall.Conn)
		if !ok || !supported() {
			return false
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		p = &parked{rc: rc}
		s.p.Store(p)
	}
	var d int64
	if !deadline.IsZero() {
		d = deadline.UnixNano()
	}
	if r := s.rdl.Load(); r != 0 && (d == 0 || r < d) {
		d = r
	}
	key, ok := park(p, d, fn)
	if !ok {
		return false
	}
	if s.rdlSet.Load() != set {
		// The deadline changed after it was read: its setter's Wake
		// may have come before the connection was parked. Only this
		// wait is ended: if an event started fn meanwhile, fn reads
		// under the new deadline, or parks again after reading it.
		wake(p, key)
	}
	return true
}

// SetReadDeadline records the connection's new read deadline (which the
// caller has set on it) and wakes the connection if it is parked, as a
// new deadline ends a blocked read: the function then reads under it.
func (s *Slot) SetReadDeadline(t time.Time) {
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	s.rdl.Store(d)
	s.rdlSet.Add(1)
	s.Wake()
}

// Wake ends the connection's wait, if it is parked: its function starts
// now. Close and a change of the read deadline call it, as either ends a
// read blocked on a goroutine.
func (s *Slot) Wake() {
	p := s.p.Load()
	if p == nil || !p.waiting.Load() {
		return
	}
	wake(p, 0)
}

// Conn is a connection whose reader may park it: Close and the deadline
// setters wake it. The proxy's listener connections do the same
// themselves; Conn is for connections served without one.
type Conn struct {
	net.Conn
	slot Slot
}

// WaitReadable parks the connection (Slot.Park).
func (c *Conn) WaitReadable(deadline time.Time, fn func()) bool {
	return c.slot.Park(c.Conn, deadline, fn)
}

// Close wakes a parked reader, which then finds the connection closed.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.slot.Wake()
	return err
}

// SetReadDeadline sets the deadline and wakes a parked reader, which
// then reads under it.
func (c *Conn) SetReadDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	c.slot.SetReadDeadline(t)
	return err
}

// SetDeadline is SetReadDeadline for both directions.
func (c *Conn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	c.slot.SetReadDeadline(t)
	return err
}

// NetConn returns the wrapped connection.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes the wrapped connection.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// Parker is a connection its reader may park: WaitReadable parks it
// (Slot.Park) and reports false when it cannot.
type Parker interface {
	WaitReadable(deadline time.Time, fn func()) bool
}

// Supported reports whether connections can be parked here (Linux, with
// its epoll set made).
func Supported() bool { return supported() }

// ParkOrGo parks nc when it is a Parker that can park, and otherwise
// runs fn on a goroutine of its own at once.
func ParkOrGo(nc net.Conn, deadline time.Time, fn func()) {
	if p, ok := nc.(Parker); ok && p.WaitReadable(deadline, fn) {
		return
	}
	go fn()
}
