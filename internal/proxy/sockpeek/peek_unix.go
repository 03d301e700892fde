//go:build unix

package sockpeek

import (
	"errors"
	"net"
	"syscall"
)

func look(nc net.Conn) State {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return Unknown
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Unknown
	}
	st := Unknown
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
			st = Data
		case n == 0 && err == nil:
			st = Closed
		case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK):
			st = Quiet
		case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
			st = Closed
		}
		return true // never wait
	})
	if err != nil {
		return Unknown
	}
	return st
}
