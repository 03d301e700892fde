package sidecar

import (
	"net"
	"net/netip"
	"strings"

	"github.com/meshlens/meshlens/internal/meshdns"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// EnvDNSUpstream lists the resolvers the DNS server forwards non-mesh
// names to (IP or IP:PORT, comma-separated), instead of /etc/resolv.conf's.
const EnvDNSUpstream = "MESHLENS_DNS_UPSTREAM"

// dnsConfig is the DNS server's configuration from cfg (--dns-addr,
// --dns-upstream or MESHLENS_DNS_UPSTREAM).
func dnsConfig(cfg Config) (meshdns.Config, error) {
	c := meshdns.Config{Addr: cfg.DNSAddr}
	ups := firstNonEmpty(cfg.DNSUpstream, cfg.Getenv(EnvDNSUpstream))
	if ups != "" {
		var err error
		if c.Upstreams, err = meshdns.ParseUpstreams(ups); err != nil {
			return c, configf("--dns-upstream (%s): %v", EnvDNSUpstream, err)
		}
	}
	return c, nil
}

// meshNames are the names the snapshot's outbound listeners route: the
// exact domains of their HTTP virtual hosts (without a port) and the
// virtual services of their TCP chains. These, and nothing else, resolve
// to mesh addresses: a name the proxy would not route is left to the
// real DNS.
func meshNames(s *table.Snapshot) []string {
	var out []string
	add := func(name string) {
		name = strings.TrimSpace(name)
		if name == "" || strings.Contains(name, "*") {
			return
		}
		if _, err := netip.ParseAddr(name); err == nil {
			return
		}
		out = append(out, name)
	}
	for _, l := range s.Listeners {
		if l.Direction != table.Outbound {
			continue
		}
		chains := l.Chains
		if l.Default != nil {
			chains = append(chains[:len(chains):len(chains)], l.Default)
		}
		for _, c := range chains {
			if c.TCP != nil {
				add(c.Meta.VirtualService)
			}
			if c.HTTP == nil || c.HTTP.Routes == nil {
				continue
			}
			for _, vh := range c.HTTP.Routes.VirtualHosts {
				for _, d := range vh.Domains {
					if h, _, err := net.SplitHostPort(d); err == nil {
						d = h
					}
					add(d)
				}
			}
		}
	}
	return out
}

// newDNSTable is the DNS table of a snapshot.
func newDNSTable(s *table.Snapshot) *meshdns.Table { return meshdns.NewTable(meshNames(s)) }
