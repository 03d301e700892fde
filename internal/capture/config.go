package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Defaults as ECS's proxyConfiguration examples and App Mesh's init
// container set them.
const (
	DefaultIngressPort = 15000
	DefaultEgressPort  = 15001
	DefaultIgnoreUID   = 1337
	// DefaultDNSPort is where the sidecar answers DNS (meshlens's own
	// addition; MESHLENS_DNS_PORT, 0 turns DNS capture off).
	DefaultDNSPort = 15053
	// DefaultEgressIgnoredIPs are ECS's task metadata and credentials
	// endpoint and EC2's instance metadata service.
	DefaultEgressIgnoredIPs = "169.254.170.2,169.254.169.254"
	// sshPort is always ignored on egress, as App Mesh's init container
	// did: a captured SSH session would go nowhere useful.
	sshPort = 22
)

// Environment variables, App Mesh's names (the init container's), and
// the ECS proxyConfiguration property each one stands for.
const (
	EnvAppPorts           = "APPMESH_APP_PORTS"            // AppPorts
	EnvIngressPort        = "APPMESH_ENVOY_INGRESS_PORT"   // ProxyIngressPort
	EnvEgressPort         = "APPMESH_ENVOY_EGRESS_PORT"    // ProxyEgressPort
	EnvIgnoreUID          = "APPMESH_IGNORE_UID"           // IgnoredUID
	EnvIgnoreGID          = "APPMESH_IGNORE_GID"           // IgnoredGID
	EnvEgressIgnoredIP    = "APPMESH_EGRESS_IGNORED_IP"    // EgressIgnoredIPs
	EnvEgressIgnoredPorts = "APPMESH_EGRESS_IGNORED_PORTS" // EgressIgnoredPorts
	EnvDNSPort            = "MESHLENS_DNS_PORT"            // (meshlens)
	EnvIptables           = "MESHLENS_IPTABLES"            // (meshlens) the iptables binary
)

// Config is what to capture. The zero value captures nothing; use
// FromEnv for App Mesh's defaults.
type Config struct {
	// AppPorts are the application's TCP ports: inbound connections to
	// them go to IngressPort. Empty: no inbound capture (a client-only
	// task).
	AppPorts []uint16
	// IngressPort and EgressPort are the sidecar's listeners.
	IngressPort, EgressPort uint16
	// IgnoreUID and IgnoreGID: what processes of this user or group send
	// is never captured (the sidecar runs as them). -1: unset; at least
	// one must be set.
	IgnoreUID, IgnoreGID int64
	// EgressIgnoredIPs are destinations (addresses or CIDRs) outbound
	// capture skips. IPv6 entries are kept but unused: only IPv4 is
	// captured.
	EgressIgnoredIPs []netip.Prefix
	// EgressIgnoredPorts are destination ports outbound capture skips;
	// 22 is always among them.
	EgressIgnoredPorts []uint16
	// DNSPort receives the application's DNS queries (UDP and TCP 53);
	// 0: DNS is not captured.
	DNSPort uint16
}

// FromEnv reads the configuration from App Mesh's environment variables,
// with the defaults of ECS's examples where one is unset or empty. An
// error names the variable and says what is wrong with its value.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{IngressPort: DefaultIngressPort, EgressPort: DefaultEgressPort, IgnoreUID: -1, IgnoreGID: -1, DNSPort: DefaultDNSPort}
	var err error
	if v := strings.TrimSpace(getenv(EnvAppPorts)); v != "" {
		if c.AppPorts, err = ParsePorts(v); err != nil {
			return c, fmt.Errorf("%s: %w", EnvAppPorts, err)
		}
	}
	for _, p := range []struct {
		name string
		dst  *uint16
	}{{EnvIngressPort, &c.IngressPort}, {EnvEgressPort, &c.EgressPort}} {
		if v := strings.TrimSpace(getenv(p.name)); v != "" {
			if *p.dst, err = ParsePort(v); err != nil {
				return c, fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	for _, id := range []struct {
		name string
		dst  *int64
	}{{EnvIgnoreUID, &c.IgnoreUID}, {EnvIgnoreGID, &c.IgnoreGID}} {
		if v := strings.TrimSpace(getenv(id.name)); v != "" {
			if *id.dst, err = parseID(v); err != nil {
				return c, fmt.Errorf("%s: %w", id.name, err)
			}
		}
	}
	if c.IgnoreUID < 0 && c.IgnoreGID < 0 {
		c.IgnoreUID = DefaultIgnoreUID
	}
	ips := DefaultEgressIgnoredIPs
	if v, set := lookup(getenv, EnvEgressIgnoredIP); set {
		ips = v
	}
	if c.EgressIgnoredIPs, err = ParsePrefixes(ips); err != nil {
		return c, fmt.Errorf("%s: %w", EnvEgressIgnoredIP, err)
	}
	if v := strings.TrimSpace(getenv(EnvEgressIgnoredPorts)); v != "" {
		if c.EgressIgnoredPorts, err = ParsePorts(v); err != nil {
			return c, fmt.Errorf("%s: %w", EnvEgressIgnoredPorts, err)
		}
	}
	if v := strings.TrimSpace(getenv(EnvDNSPort)); v != "" {
		if v == "off" {
			c.DNSPort = 0
		} else if c.DNSPort, err = parsePortOrZero(v); err != nil {
			return c, fmt.Errorf("%s: %w", EnvDNSPort, err)
		}
	}
	return c, c.Validate()
}

// lookup reads name; an empty value counts as unset except for the
// ignored IPs, where "none" says "ignore nothing".
func lookup(getenv func(string) string, name string) (string, bool) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return "", false
	}
	if v == "none" {
		return "", true
	}
	return v, true
}

// Validate checks that the ports do not collide in ways that would loop
// traffic or make a listener unreachable.
func (c Config) Validate() error {
	if c.IngressPort == 0 || c.EgressPort == 0 {
		return fmt.Errorf("the proxy's ingress and egress ports must be set (%s, %s)", EnvIngressPort, EnvEgressPort)
	}
	if c.IngressPort == c.EgressPort {
		return fmt.Errorf("%s and %s are both %d: the proxy needs two ports", EnvIngressPort, EnvEgressPort, c.IngressPort)
	}
	if c.IgnoreUID < 0 && c.IgnoreGID < 0 {
		return fmt.Errorf("%s or %s must be set: the proxy's own traffic would be captured and loop", EnvIgnoreUID, EnvIgnoreGID)
	}
	for _, p := range c.AppPorts {
		if p == c.IngressPort || p == c.EgressPort || (c.DNSPort != 0 && p == c.DNSPort) {
			return fmt.Errorf("%s: port %d is one of the proxy's own ports", EnvAppPorts, p)
		}
	}
	if c.DNSPort != 0 && (c.DNSPort == c.IngressPort || c.DNSPort == c.EgressPort) {
		return fmt.Errorf("%s %d is one of the proxy's listener ports", EnvDNSPort, c.DNSPort)
	}
	return nil
}

// ignoredPorts is EgressIgnoredPorts with 22, sorted, each once.
func (c Config) ignoredPorts() []uint16 {
	out := append(slices.Clone(c.EgressIgnoredPorts), sshPort)
	slices.Sort(out)
	return slices.Compact(out)
}

// ParsePorts reads a comma-separated list of TCP ports ("8080,8443"),
// as ECS's AppPorts and EgressIgnoredPorts and App Mesh's variables hold
// them. Spaces around entries are allowed; duplicates are dropped.
func ParsePorts(s string) ([]uint16, error) {
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := ParsePort(f)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: no port", s)
	}
	return out, nil
}

// ParsePort reads one port, 1 to 65535.
func ParsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q: want a port from 1 to 65535", s)
	}
	return uint16(n), nil
}

func parsePortOrZero(s string) (uint16, error) {
	if strings.TrimSpace(s) == "0" {
		return 0, nil
	}
	return ParsePort(s)
}

// parseID reads a UID or GID.
func parseID(s string) (int64, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return -1, fmt.Errorf("%q: want a numeric user or group id", s)
	}
	return int64(n), nil
}

// ParsePrefixes reads a comma-separated list of addresses and CIDRs
// ("169.254.170.2,10.0.0.0/8"); an address is its own /32 (or /128).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(f, "/") {
			var err error
			if p, err = netip.ParsePrefix(f); err != nil {
				return nil, fmt.Errorf("%q: want an IP address or CIDR", f)
			}
			p = p.Masked()
		} else {
			a, err := netip.ParseAddr(f)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q: want an IP address or CIDR", f)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// IgnoredEnv returns a warning for each variable of App Mesh's init
// container that is set but not honoured: IPv6 capture
// (APPMESH_ENABLE_IPV6). APPMESH_START_ENABLED needs none: the rules are
// always installed at once.
func IgnoredEnv(getenv func(string) string) []string {
	var out []string
	if v := strings.TrimSpace(getenv("APPMESH_ENABLE_IPV6")); v != "" && v != "0" && !strings.EqualFold(v, "false") {
		out = append(out, "APPMESH_ENABLE_IPV6 is ignored: only IPv4 traffic is captured, and mesh names resolve to IPv4 addresses")
	}
	return out
}
