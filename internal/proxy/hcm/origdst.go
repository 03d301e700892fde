package hcm

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/listener"
)

// OrigDstEndpoint is the endpoint of an ORIGINAL_DST cluster for one
// connection: its original destination when it was redirected; for HTTP
// through a non-intercepted (HTTP_PROXY-style) listener, the request's
// authority, port 80 by default. ok is false when there is nowhere to go.
func OrigDstEndpoint(v *cluster.View, ci *listener.Info, authority string) (*cluster.Endpoint, bool) {
	var addr string
	switch {
	case ci != nil && ci.Redirected:
		addr = ci.Dst.String()
	case authority != "":
		addr = authority
		if _, _, err := net.SplitHostPort(authority); err != nil {
			addr = net.JoinHostPort(authority, "80")
		}
	default:
		return nil, false
	}
	if ci != nil && loopsBack(addr, ci.Local) {
		return nil, false
	}
	return v.OrigDstHost(addr), true
}

// loopsBack reports whether addr names the listener a connection came in
// on, so that forwarding there would loop: the listener's own address, or
// its port on localhost, a loopback or the unspecified address.
func loopsBack(addr string, local netip.AddrPort) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != strconv.Itoa(int(local.Port())) {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && (ip.Unmap() == local.Addr().Unmap() || ip.IsLoopback() || ip.IsUnspecified())
}
