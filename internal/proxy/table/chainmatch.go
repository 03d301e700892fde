package table

import (
	"net/netip"
	"strings"
)

// Filter-chain selection for a new connection, as Envoy's
// filter_chain_match.

// ConnInfo is what filter chain selection reads from a new connection.
type ConnInfo struct {
	// Dest is the connection's destination: the original destination
	// for a listener with OriginalDst, else the local address.
	Dest netip.AddrPort
	// ServerName is the TLS SNI, lower case ("" without TLS).
	ServerName string
	// TransportProtocol is "tls" when the TLS inspector saw a
	// ClientHello, "raw_buffer" otherwise.
	TransportProtocol string
	// ApplicationProtocols are the ALPN values offered by a TLS client,
	// or what the HTTP inspector found ("http/1.1" or "h2c").
	ApplicationProtocols []string
}

// MatchChain selects the filter chain for a connection as Envoy does:
// level by level (destination port, destination prefix, server name,
// transport protocol, application protocol), keeping at each level only
// the most specific chains that match, and never coming back to a less
// specific level: a connection to a port that some chain names is never
// served by a chain without a port. It returns Default when nothing
// matches (nil when there is none). It does not allocate for listeners of
// up to 64 chains.
func (l *Listener) MatchChain(c ConnInfo) *FilterChain {
	// Each level narrows a bit set over Chains; listeners with more than
	// 64 chains take the slower path with a per-call slice.
	if len(l.Chains) > 64 {
		return l.matchChainSlow(c)
	}
	all := uint64(1)<<len(l.Chains) - 1
	if len(l.Chains) == 64 {
		all = ^uint64(0)
	}
	set := l.narrowPort(all, c.Dest.Port())
	set = l.narrowPrefix(set, c.Dest.Addr())
	set = l.narrowServerName(set, c.ServerName)
	set = l.narrowTransport(set, c.TransportProtocol)
	set = l.narrowALPN(set, c.ApplicationProtocols)
	if set == 0 {
		return l.Default
	}
	for i := range l.Chains {
		if set&(1<<i) != 0 {
			return l.Chains[i]
		}
	}
	return l.Default
}

func (l *Listener) narrowPort(set uint64, port uint16) uint64 {
	var exact, any uint64
	for i, ch := range l.Chains {
		switch {
		case set&(1<<i) == 0:
		case ch.DestinationPort == uint32(port):
			exact |= 1 << i
		case ch.DestinationPort == 0:
			any |= 1 << i
		}
	}
	if exact != 0 {
		return exact
	}
	return any
}

func (l *Listener) narrowPrefix(set uint64, addr netip.Addr) uint64 {
	best, out := -1, uint64(0)
	for i, ch := range l.Chains {
		if set&(1<<i) == 0 {
			continue
		}
		bits := -1
		if len(ch.PrefixRanges) == 0 {
			bits = 0
		}
		for _, p := range ch.PrefixRanges {
			if p.Contains(addr.Unmap()) && p.Bits() > bits {
				bits = p.Bits()
			}
		}
		switch {
		case bits < 0:
		case bits > best:
			best, out = bits, 1<<i
		case bits == best:
			out |= 1 << i
		}
	}
	return out
}

func (l *Listener) narrowServerName(set uint64, sni string) uint64 {
	// Exact name, then the longest wildcard, then chains without names.
	var exact, none uint64
	bestWild, wild := -1, uint64(0)
	for i, ch := range l.Chains {
		if set&(1<<i) == 0 {
			continue
		}
		if len(ch.ServerNames) == 0 {
			none |= 1 << i
			continue
		}
		for _, n := range ch.ServerNames {
			switch {
			case n == sni && sni != "":
				exact |= 1 << i
			case strings.HasPrefix(n, "*.") && len(sni) > len(n)-1 && strings.HasSuffix(sni, n[1:]):
				if len(n) > bestWild {
					bestWild, wild = len(n), 1<<i
				} else if len(n) == bestWild {
					wild |= 1 << i
				}
			}
		}
	}
	switch {
	case exact != 0:
		return exact
	case wild != 0:
		return wild
	}
	return none
}

func (l *Listener) narrowTransport(set uint64, tp string) uint64 {
	var exact, any uint64
	for i, ch := range l.Chains {
		switch {
		case set&(1<<i) == 0:
		case ch.TransportProtocol == "":
			any |= 1 << i
		case ch.TransportProtocol == tp:
			exact |= 1 << i
		}
	}
	if exact != 0 {
		return exact
	}
	return any
}

func (l *Listener) narrowALPN(set uint64, offered []string) uint64 {
	// Envoy tries the offered protocols in the client's order.
	for _, p := range offered {
		var hit uint64
		for i, ch := range l.Chains {
			if set&(1<<i) != 0 && contains(ch.ApplicationProtocols, p) {
				hit |= 1 << i
			}
		}
		if hit != 0 {
			return hit
		}
	}
	var none uint64
	for i, ch := range l.Chains {
		if set&(1<<i) != 0 && len(ch.ApplicationProtocols) == 0 {
			none |= 1 << i
		}
	}
	return none
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// matchChainSlow is MatchChain for listeners with more than 64 chains:
// the same levels over a slice of flags instead of a bit set. It
// allocates, which such listeners are rare enough to afford. It is one
// list of keep calls, one per filter_chain_match criterion in Envoy's
// order, kept in one function so that the order reads as Envoy
// documents it.
func (l *Listener) matchChainSlow(c ConnInfo) *FilterChain {
	in := make([]bool, len(l.Chains))
	for i := range in {
		in[i] = true
	}
	keep := func(pred func(ch *FilterChain) int) {
		// pred returns a specificity (-1 = no match); keep the best.
		best := -1
		for i, ch := range l.Chains {
			if in[i] {
				best = max(best, pred(ch))
			}
		}
		for i, ch := range l.Chains {
			in[i] = in[i] && best >= 0 && pred(ch) == best
		}
	}
	port := uint32(c.Dest.Port())
	keep(func(ch *FilterChain) int {
		switch ch.DestinationPort {
		case port:
			return 1
		case 0:
			return 0
		}
		return -1
	})
	addr := c.Dest.Addr().Unmap()
	keep(func(ch *FilterChain) int {
		if len(ch.PrefixRanges) == 0 {
			return 0
		}
		bits := -1
		for _, p := range ch.PrefixRanges {
			if p.Contains(addr) {
				bits = max(bits, p.Bits())
			}
		}
		return bits
	})
	keep(func(ch *FilterChain) int {
		if len(ch.ServerNames) == 0 {
			return 0
		}
		best := -1
		for _, n := range ch.ServerNames {
			switch {
			case n == c.ServerName && c.ServerName != "":
				best = max(best, 1<<20)
			case strings.HasPrefix(n, "*.") && len(c.ServerName) > len(n)-1 && strings.HasSuffix(c.ServerName, n[1:]):
				best = max(best, len(n))
			}
		}
		return best
	})
	keep(func(ch *FilterChain) int {
		switch ch.TransportProtocol {
		case c.TransportProtocol:
			if c.TransportProtocol != "" {
				return 1
			}
			return 0
		case "":
			return 0
		}
		return -1
	})
	keep(func(ch *FilterChain) int {
		if len(ch.ApplicationProtocols) == 0 {
			return 0
		}
		for k, p := range c.ApplicationProtocols {
			if contains(ch.ApplicationProtocols, p) {
				return len(c.ApplicationProtocols) - k
			}
		}
		return -1
	})
	for i, ch := range l.Chains {
		if in[i] {
			return ch
		}
	}
	return l.Default
}
