//go:build linux

package listener

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and
// IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h): both 80, at
// SOL_IP and SOL_IPV6 respectively.
const soOriginalDst = 80

// originalDst returns where a TCP connection was going before iptables
// (REDIRECT or DNAT) sent it to us. A connection that was not redirected
// yields its local address (when conntrack tracks it) or an error (when it
// does not); callers treat both as "not redirected".
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	local, _ := c.LocalAddr().(*net.TCPAddr)
	level := unix.SOL_IP
	if local != nil && local.IP.To4() == nil {
		level = unix.SOL_IPV6
	}
	var buf [28]byte
	size := uint32(len(buf))
	var serr syscall.Errno
	cerr := rc.Control(func(fd uintptr) {
		_, _, serr = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if cerr != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", cerr)
	}
	if serr != 0 {
		return netip.AddrPort{}, fmt.Errorf("original destination: getsockopt: %w: %w", serr, errNotRedirected)
	}
	if size > uint32(len(buf)) {
		size = uint32(len(buf))
	}
	return parseSockaddr(buf[:size])
}
