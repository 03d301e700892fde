package capture

import (
	"fmt"
	"strconv"
	"strings"
)

// The chains meshlens owns in the nat table, and the built-in chains that
// jump to them.
const (
	ChainInbound  = "MESHLENS_INBOUND"
	ChainOutbound = "MESHLENS_OUTBOUND"
)

// jumps are the only rules meshlens adds to built-in chains: one
// unconditional jump each, so that removing them is exact.
var jumps = []struct{ from, to string }{
	{"PREROUTING", ChainInbound},
	{"OUTPUT", ChainOutbound},
}

// multiportMax is how many ports one multiport match takes.
const multiportMax = 15

// Rules is the iptables-restore input (nat table only) that installs c:
//
//   - MESHLENS_INBOUND (from PREROUTING): TCP from another host to one of
//     AppPorts is redirected to IngressPort. Connections from this host
//     (the proxy itself calling the application) are left alone.
//   - MESHLENS_OUTBOUND (from OUTPUT): nothing the ignored UID or GID
//     sends is touched; DNS (UDP and TCP 53, to any resolver, local or
//     not) goes to DNSPort; TCP to a local address, an ignored port or an
//     ignored address is left alone; every other TCP connection goes to
//     EgressPort.
//
// The chain declarations create the chains or flush the ones a previous
// run left, within the same transaction as the rules.
func Rules(c Config) string {
	var b strings.Builder
	b.WriteString("*nat\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", ChainInbound, ChainOutbound)
	if len(c.AppPorts) > 0 {
		fmt.Fprintf(&b, "-A %s -p tcp -m addrtype --src-type LOCAL -j RETURN\n", ChainInbound)
		for _, ports := range chunks(c.AppPorts) {
			fmt.Fprintf(&b, "-A %s -p tcp -m multiport --dports %s -j REDIRECT --to-ports %d\n", ChainInbound, ports, c.IngressPort)
		}
	}
	if c.IgnoreUID >= 0 {
		fmt.Fprintf(&b, "-A %s -m owner --uid-owner %d -j RETURN\n", ChainOutbound, c.IgnoreUID)
	}
	if c.IgnoreGID >= 0 {
		fmt.Fprintf(&b, "-A %s -m owner --gid-owner %d -j RETURN\n", ChainOutbound, c.IgnoreGID)
	}
	if c.DNSPort != 0 {
		fmt.Fprintf(&b, "-A %s -p udp -m udp --dport 53 -j REDIRECT --to-ports %d\n", ChainOutbound, c.DNSPort)
		fmt.Fprintf(&b, "-A %s -p tcp -m tcp --dport 53 -j REDIRECT --to-ports %d\n", ChainOutbound, c.DNSPort)
	}
	fmt.Fprintf(&b, "-A %s -p tcp -m addrtype --dst-type LOCAL -j RETURN\n", ChainOutbound)
	for _, ports := range chunks(c.ignoredPorts()) {
		fmt.Fprintf(&b, "-A %s -p tcp -m multiport --dports %s -j RETURN\n", ChainOutbound, ports)
	}
	for _, p := range c.EgressIgnoredIPs {
		if p.Addr().Is4() {
			fmt.Fprintf(&b, "-A %s -d %s -p tcp -j RETURN\n", ChainOutbound, p)
		}
	}
	fmt.Fprintf(&b, "-A %s -p tcp -j REDIRECT --to-ports %d\n", ChainOutbound, c.EgressPort)
	for _, j := range jumps {
		fmt.Fprintf(&b, "-A %s -j %s\n", j.from, j.to)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// chunks joins ports into comma-separated groups a multiport match takes.
func chunks(ports []uint16) []string {
	var out []string
	for i := 0; i < len(ports); i += multiportMax {
		end := min(i+multiportMax, len(ports))
		s := make([]string, 0, end-i)
		for _, p := range ports[i:end] {
			s = append(s, strconv.Itoa(int(p)))
		}
		out = append(out, strings.Join(s, ","))
	}
	return out
}
