package table

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"

	"github.com/meshlens/meshlens/internal/proxy/filters/ratelimit"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// Compiling listeners and their filter chains.

func (c *compiler) listener(l *listenerv3.Listener) (*Listener, error) {
	if l.GetApiListener() != nil {
		return nil, nil
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	out := &Listener{Name: l.GetName(), BindToPort: true}
	addr, err := socketAddress(l.GetAddress())
	if err != nil {
		return nil, fmt.Errorf("address: %w", err)
	}
	out.Address = addr
	if b := l.GetBindToPort(); b != nil {
		out.BindToPort = b.GetValue()
	}
	out.OriginalDst = l.GetUseOriginalDst().GetValue()
	out.Direction = c.direction(l)
	if err := listenerFilters(l, out); err != nil {
		return nil, err
	}
	if l.GetFilterChainMatcher() != nil {
		return nil, fmt.Errorf("filter_chain_matcher " + errNotSupported + "; use filter_chain_match")
	}
	if l.GetFcdsConfig() != nil {
		return nil, fmt.Errorf("fcds_config " + errNotSupported)
	}
	if len(l.GetFilterChains()) == 0 && l.GetDefaultFilterChain() == nil {
		return nil, errors.New("no filter chains")
	}
	for i, fc := range l.GetFilterChains() {
		ch, err := c.filterChain(fc)
		if err != nil {
			return nil, fmt.Errorf("filter_chains[%d]: %w", i, err)
		}
		out.Chains = append(out.Chains, ch)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		if fc.GetFilterChainMatch() != nil {
			return nil, errors.New("default_filter_chain: filter_chain_match is not allowed")
		}
		ch, err := c.filterChain(fc)
		if err != nil {
			return nil, fmt.Errorf("default_filter_chain: %w", err)
		}
		out.Default = ch
	}
	if err := checkOverlap(out.Chains); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out.Chains, compareChains)
	enableInspectors(out)
	return out, nil
}

// direction is where a listener's traffic goes: a gateway's are all
// Gateway; otherwise the control plane's listener names say it, else the
// listener's traffic_direction.
func (c *compiler) direction(l *listenerv3.Listener) Direction {
	switch {
	case c.opts.Gateway:
		return Gateway
	case xdsmeta.IsInboundListener(l.GetName()):
		return Inbound
	case xdsmeta.IsOutboundListener(l.GetName()):
		return Outbound
	case l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND:
		return Inbound
	}
	return Outbound
}

// listenerFilters reads the listener filters meshlens runs (original
// destination, TLS and HTTP inspectors) into out.
func listenerFilters(l *listenerv3.Listener, out *Listener) error {
	for i, f := range l.GetListenerFilters() {
		switch {
		case f.GetName() == nameOriginalDst || f.GetTypedConfig().GetTypeUrl() == typeOriginalDst:
			out.OriginalDst = true
		case f.GetName() == nameTLSInspector || f.GetTypedConfig().GetTypeUrl() == typeTLSInspector:
			out.TLSInspector = true
		case f.GetName() == nameHTTPInspector || f.GetTypedConfig().GetTypeUrl() == typeHTTPInspector:
			out.HTTPInspector = true
		case f.GetFilterDisabled() != nil:
			return fmt.Errorf("listener_filters[%d]: filter_disabled "+errNotSupported, i)
		}
	}
	return nil
}

// enableInspectors turns on the inspectors the chains' matches need:
// server names, a tls transport or application protocols over TLS need
// the TLS inspector, application protocols in plaintext the HTTP one.
func enableInspectors(out *Listener) {
	for _, ch := range out.Chains {
		if len(ch.ServerNames) > 0 || ch.TransportProtocol == "tls" {
			out.TLSInspector = true
		}
		for _, p := range ch.ApplicationProtocols {
			if ch.TransportProtocol == "tls" {
				out.TLSInspector = true
			} else if isHTTPInspectorProtocol(p) {
				out.HTTPInspector = true
			}
		}
	}
}

// isHTTPInspectorProtocol reports whether Envoy's HTTP inspector can
// report p for a plaintext connection.
func isHTTPInspectorProtocol(p string) bool {
	return p == "http/1.0" || p == "http/1.1" || p == "h2c"
}

// compareChains orders chains by Envoy's precedence: a chain with a
// destination port first, then longer destination prefixes, then server
// names, transport protocol and application protocols.
func compareChains(a, b *FilterChain) int {
	if c := cmp.Compare(boolInt(b.DestinationPort != 0), boolInt(a.DestinationPort != 0)); c != 0 {
		return c
	}
	if c := cmp.Compare(maxBits(b.PrefixRanges), maxBits(a.PrefixRanges)); c != 0 {
		return c
	}
	if c := cmp.Compare(boolInt(len(b.ServerNames) > 0), boolInt(len(a.ServerNames) > 0)); c != 0 {
		return c
	}
	if c := cmp.Compare(boolInt(b.TransportProtocol != ""), boolInt(a.TransportProtocol != "")); c != 0 {
		return c
	}
	return cmp.Compare(boolInt(len(b.ApplicationProtocols) > 0), boolInt(len(a.ApplicationProtocols) > 0))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func maxBits(ps []netip.Prefix) int {
	m := -1
	for _, p := range ps {
		m = max(m, p.Bits())
	}
	return m
}

// checkOverlap rejects two chains with the same match, which Envoy
// rejects too: the choice between them would be arbitrary.
func checkOverlap(chains []*FilterChain) error {
	seen := map[string]int{}
	for i, ch := range chains {
		ranges := []string{""}
		if len(ch.PrefixRanges) > 0 {
			ranges = ranges[:0]
			for _, p := range ch.PrefixRanges {
				ranges = append(ranges, p.String())
			}
		}
		names := orAny(ch.ServerNames)
		alpns := orAny(ch.ApplicationProtocols)
		for _, r := range ranges {
			for _, n := range names {
				for _, a := range alpns {
					k := strconv.FormatUint(uint64(ch.DestinationPort), 10) + "|" + r + "|" + n + "|" + ch.TransportProtocol + "|" + a
					if j, dup := seen[k]; dup && j != i {
						return fmt.Errorf("filter_chains[%d] and filter_chains[%d] (in precedence order) have overlapping matching rules", j, i)
					}
					seen[k] = i
				}
			}
		}
	}
	return nil
}

func orAny(s []string) []string {
	if len(s) == 0 {
		return []string{""}
	}
	return s
}

func (c *compiler) filterChain(fc *listenerv3.FilterChain) (*FilterChain, error) {
	out := &FilterChain{Name: fc.GetName(), Meta: meshMetadata(fc.GetMetadata())}
	if err := chainMatch(fc.GetFilterChainMatch(), out); err != nil {
		return nil, err
	}
	if ts := fc.GetTransportSocket(); ts != nil {
		switch {
		case ts.GetName() == nameTLS || ts.GetTypedConfig().GetTypeUrl() == typeDownstreamTLS:
			tls, err := downstreamTLS(ts)
			if err != nil {
				return nil, fmt.Errorf("transport_socket: %w", err)
			}
			out.TLS = tls
		case ts.GetName() == nameRawBuffer || ts.GetTypedConfig().GetTypeUrl() == typeRawBuffer:
		default:
			return nil, fmt.Errorf("transport_socket: %q "+errNotSupported, ts.GetName())
		}
	}
	filters := fc.GetFilters()
	if len(filters) == 0 {
		return nil, errors.New("no network filters")
	}
	for i, f := range filters {
		terminal := isFilter(f, nameHCM, typeHCM) || isFilter(f, nameTCPProxy, typeTCPProxy)
		last := i == len(filters)-1
		switch {
		case terminal && !last:
			return nil, fmt.Errorf("filters[%d]: %s must be the last filter", i, f.GetName())
		case !last && isFilter(f, ratelimit.NetworkName, ratelimit.NetworkTypeURL):
			if f.GetTypedConfig() == nil {
				return nil, fmt.Errorf("filters[%d]: %s: typed_config is required", i, f.GetName())
			}
			if out.NetRateLimit != nil {
				return nil, fmt.Errorf("filters[%d]: %s appears twice", i, ratelimit.NetworkName)
			}
			rl, err := ratelimit.DecodeNetwork(f.GetTypedConfig(), c.now)
			if err != nil {
				return nil, fmt.Errorf("filters[%d]: %w", i, err)
			}
			out.NetRateLimit = rl
			continue
		case !last:
			out.IgnoredFilters = append(out.IgnoredFilters, f.GetName())
			continue
		case f.GetConfigDiscovery() != nil:
			return nil, fmt.Errorf("filters[%d]: config_discovery "+errNotSupported, i)
		case isFilter(f, nameHCM, typeHCM):
			if out.NetRateLimit != nil {
				// The runtime limits connections where a TCP proxy
				// session starts only.
				return nil, fmt.Errorf("filters: %s before %s %s; it limits tcp_proxy connections only", ratelimit.NetworkName, nameHCM, errNotSupported)
			}
			h, err := c.httpManager(f.GetTypedConfig())
			if err != nil {
				return nil, fmt.Errorf("http_connection_manager: %w", err)
			}
			out.HTTP = h
		case isFilter(f, nameTCPProxy, typeTCPProxy):
			t, err := c.tcpProxy(f.GetTypedConfig())
			if err != nil {
				return nil, fmt.Errorf("tcp_proxy: %w", err)
			}
			out.TCP = t
		default:
			return nil, fmt.Errorf("filters[%d]: the last filter is %q; want %s or %s", i, f.GetName(), nameHCM, nameTCPProxy)
		}
	}
	return out, nil
}

// chainMatch reads a filter chain's filter_chain_match into out; the
// criteria meshlens cannot honour are refused, not ignored.
func chainMatch(m *listenerv3.FilterChainMatch, out *FilterChain) error {
	if m == nil {
		return nil
	}
	if p := m.GetDestinationPort(); p != nil {
		out.DestinationPort = p.GetValue()
	}
	for i, r := range m.GetPrefixRanges() {
		p, err := cidr(r)
		if err != nil {
			return fmt.Errorf("filter_chain_match.prefix_ranges[%d]: %w", i, err)
		}
		out.PrefixRanges = append(out.PrefixRanges, p)
	}
	for _, n := range m.GetServerNames() {
		n = strings.ToLower(n)
		if strings.Contains(n[min(len(n), 1):], "*") || (strings.HasPrefix(n, "*") && !strings.HasPrefix(n, "*.")) {
			return fmt.Errorf("filter_chain_match.server_names: %q: only a leading \"*.\" wildcard is allowed", n)
		}
		out.ServerNames = append(out.ServerNames, n)
	}
	out.TransportProtocol = m.GetTransportProtocol()
	out.ApplicationProtocols = m.GetApplicationProtocols()
	switch {
	case len(m.GetSourcePrefixRanges()) > 0:
		return fmt.Errorf("filter_chain_match.source_prefix_ranges " + errNotSupported)
	case len(m.GetDirectSourcePrefixRanges()) > 0:
		return fmt.Errorf("filter_chain_match.direct_source_prefix_ranges " + errNotSupported)
	case len(m.GetSourcePorts()) > 0:
		return fmt.Errorf("filter_chain_match.source_ports " + errNotSupported)
	case m.GetSourceType() != listenerv3.FilterChainMatch_ANY:
		return fmt.Errorf("filter_chain_match.source_type " + errNotSupported)
	}
	return nil
}

// isFilter tells a network filter by its typed_config type, or by its
// name when it has no typed config.
func isFilter(f *listenerv3.Filter, name, typeURL string) bool {
	if tc := f.GetTypedConfig(); tc != nil {
		return tc.GetTypeUrl() == typeURL
	}
	return f.GetName() == name
}

// socketAddress reads an IP socket address.
func socketAddress(a *corev3.Address) (netip.AddrPort, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return netip.AddrPort{}, errors.New("only socket addresses are supported")
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return netip.AddrPort{}, fmt.Errorf("protocol %s "+errNotSupported, sa.GetProtocol())
	}
	if sa.GetResolverName() != "" {
		return netip.AddrPort{}, fmt.Errorf("resolver_name " + errNotSupported)
	}
	if _, ok := sa.GetPortSpecifier().(*corev3.SocketAddress_NamedPort); ok {
		return netip.AddrPort{}, fmt.Errorf("named_port " + errNotSupported)
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IP address", sa.GetAddress())
	}
	if sa.GetPortValue() > 65535 {
		return netip.AddrPort{}, fmt.Errorf("port %d out of range", sa.GetPortValue())
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue())), nil
}

// cidr reads a CIDR range; Envoy ignores the host bits, so do we.
func cidr(r *corev3.CidrRange) (netip.Prefix, error) {
	ip, err := netip.ParseAddr(r.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address", r.GetAddressPrefix())
	}
	ip = ip.Unmap()
	bits := ip.BitLen()
	if r.GetPrefixLen() != nil {
		bits = int(r.GetPrefixLen().GetValue())
	}
	if bits > ip.BitLen() {
		return netip.Prefix{}, fmt.Errorf("prefix_len %d is longer than the address", bits)
	}
	return netip.PrefixFrom(ip, bits).Masked(), nil
}
