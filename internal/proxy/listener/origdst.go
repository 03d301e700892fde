package listener

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Address families as the kernel writes them in a sockaddr (Linux values;
// SO_ORIGINAL_DST exists only there).
const (
	afInet  = 2
	afInet6 = 10
)

// errNotRedirected says a connection has no original destination other
// than the address it reached: it was not redirected by iptables, or the
// platform cannot tell.
var errNotRedirected = errors.New("connection was not redirected")

// parseSockaddr decodes the sockaddr_in or sockaddr_in6 that
// getsockopt(SO_ORIGINAL_DST) fills in: the family in host byte order
// (little endian on every platform meshlens builds for), then the port in
// network byte order, then the address.
func parseSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 2 {
		return netip.AddrPort{}, fmt.Errorf("sockaddr: %d bytes, want at least 2", len(b))
	}
	switch fam := binary.LittleEndian.Uint16(b); fam {
	case afInet:
		// family(2) port(2) addr(4) zero(8)
		if len(b) < 8 {
			return netip.AddrPort{}, fmt.Errorf("sockaddr_in: %d bytes, want 16", len(b))
		}
		port := binary.BigEndian.Uint16(b[2:4])
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), nil
	case afInet6:
		// family(2) port(2) flowinfo(4) addr(16) scope_id(4)
		if len(b) < 24 {
			return netip.AddrPort{}, fmt.Errorf("sockaddr_in6: %d bytes, want 28", len(b))
		}
		port := binary.BigEndian.Uint16(b[2:4])
		addr := netip.AddrFrom16([16]byte(b[8:24]))
		return netip.AddrPortFrom(addr.Unmap(), port), nil
	default:
		return netip.AddrPort{}, fmt.Errorf("sockaddr: unknown address family %d", fam)
	}
}
