//go:build unix

package h1client

import (
	"net"
	"syscall"
)

// peekAlive looks at the socket without blocking and without consuming:
// an idle connection that is readable has either been closed by the
// upstream or carries bytes nobody asked for. Connections that are not
// sockets are assumed alive.
func peekAlive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true
	})
	return err == nil && alive
}
