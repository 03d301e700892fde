//go:build !linux

package listener

import (
	"net"
	"net/netip"
)

// originalDst is Linux-only (SO_ORIGINAL_DST); elsewhere no connection is
// ever considered redirected.
func originalDst(*net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errNotRedirected
}
