package table

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// Resources is one set of xDS resources, as the xDS client holds them
// after a round of responses: the input of Compile.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Versions is copied into the Snapshot, keyed by type URL.
	Versions map[string]string
}

// CompileOptions says what kind of data plane the resources are for and
// how strict to be about missing references.
type CompileOptions struct {
	// Gateway: the proxy runs as a virtual gateway, so every listener is
	// a Gateway listener. Otherwise it is a sidecar and listener names
	// decide (lds_ingress_* Inbound, lds_egress_* Outbound, otherwise the
	// listener's traffic_direction, Outbound when unspecified).
	Gateway bool
	// AllowMissing compiles a set whose route configurations or EDS
	// assignments have not all been received, as Envoy does when
	// initial_fetch_timeout expires: a missing assignment leaves its
	// cluster without endpoints (503) and a missing route configuration
	// is an empty table (404).
	AllowMissing bool
}

// Envoy's defaults for fields the resources leave unset.
const (
	defaultConnectTimeout    = 5 * time.Second
	defaultRouteTimeout      = 15 * time.Second
	defaultHTTPIdleTimeout   = time.Hour
	defaultStreamIdleTimeout = 5 * time.Minute
	defaultTCPIdleTimeout    = time.Hour
	defaultRetryBase         = 25 * time.Millisecond
	defaultPanicThreshold    = 50
)

// maxErrors bounds how many problems one Compile reports: enough to fix a
// config in one round, few enough for a NACK's error_detail.
const maxErrors = 10

// Well-known names and type URLs of the extensions Compile understands.
const (
	nameHCM            = "envoy.filters.network.http_connection_manager"
	nameTCPProxy       = "envoy.filters.network.tcp_proxy"
	nameRouter         = "envoy.filters.http.router"
	nameTLS            = "envoy.transport_sockets.tls"
	nameRawBuffer      = "envoy.transport_sockets.raw_buffer"
	nameOriginalDst    = "envoy.filters.listener.original_dst"
	nameTLSInspector   = "envoy.filters.listener.tls_inspector"
	nameHTTPInspector  = "envoy.filters.listener.http_inspector"
	nameFileLog        = "envoy.access_loggers.file"
	nameStdoutLog      = "envoy.access_loggers.stdout"
	nameStderrLog      = "envoy.access_loggers.stderr"
	nameHTTPProtocol   = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	typePrefix         = "type.googleapis.com/"
	typeHCM            = typePrefix + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	typeTCPProxy       = typePrefix + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	typeRouter         = typePrefix + "envoy.extensions.filters.http.router.v3.Router"
	typeDownstreamTLS  = typePrefix + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	typeUpstreamTLS    = typePrefix + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	typeRawBuffer      = typePrefix + "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
	typeOriginalDst    = typePrefix + "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
	typeTLSInspector   = typePrefix + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
	typeHTTPInspector  = typePrefix + "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
	typeFileLog        = typePrefix + "envoy.extensions.access_loggers.file.v3.FileAccessLog"
	typeStdoutLog      = typePrefix + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
	typeStderrLog      = typePrefix + "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
	typeHTTPProtocol   = typePrefix + nameHTTPProtocol
	typeRoundRobin     = typePrefix + "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin"
	typeLeastRequest   = typePrefix + "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest"
	typeRandom         = typePrefix + "envoy.extensions.load_balancing_policies.random.v3.Random"
	errNotSupported    = "is not supported"
	errNotSupportedFmt = "%s " + errNotSupported
)

// Compile builds a Snapshot from one set of resources: it resolves every
// reference (RDS names, cluster names, EDS service names), compiles
// regexes, applies Envoy's defaults and checks what Envoy would check.
// An error names the resource and the field, e.g.
//
//	route config rds_x: virtual_hosts[0].routes[2].match.safe_regex: error parsing regexp: ...
//
// and joins up to ten problems. Errors about references that were not
// received wrap ErrMissing. opts is at most one CompileOptions; none means
// a sidecar that requires every reference.
func Compile(res Resources, opts ...CompileOptions) (*Snapshot, error) {
	c := &compiler{
		cla:         map[string]*endpointv3.ClusterLoadAssignment{},
		routeCfgs:   map[string]*routev3.RouteConfiguration{},
		clusters:    map[string]*Cluster{},
		routes:      map[string]*RouteTable{},
		placeholder: map[string]*Cluster{},
	}
	if len(opts) > 0 {
		c.opts = opts[0]
	}
	return c.compile(res)
}

// compiler holds one Compile's indexes and problems.
type compiler struct {
	opts        CompileOptions
	errs        []error
	cla         map[string]*endpointv3.ClusterLoadAssignment
	routeCfgs   map[string]*routev3.RouteConfiguration
	clusters    map[string]*Cluster
	routes      map[string]*RouteTable
	placeholder map[string]*Cluster
}

// fail records one problem of a resource, up to maxErrors.
func (c *compiler) fail(kind, name string, err error) {
	if len(c.errs) < maxErrors {
		c.errs = append(c.errs, fmt.Errorf("%s %s: %w", kind, name, err))
	}
}

func (c *compiler) compile(res Resources) (*Snapshot, error) {
	snap := &Snapshot{
		Versions:  map[string]string{},
		Clusters:  c.clusters,
		Routes:    c.routes,
		Resources: map[string][]proto.Message{},
	}
	for k, v := range res.Versions {
		snap.Versions[k] = v
	}

	// Endpoints first: clusters need them.
	for i, cla := range res.Endpoints {
		name := cla.GetClusterName()
		if cla == nil {
			c.fail("cluster load assignment", "#"+strconv.Itoa(i), errors.New("nil resource"))
			continue
		}
		if err := cla.Validate(); err != nil {
			c.fail("cluster load assignment", name, err)
			continue
		}
		if _, dup := c.cla[name]; dup {
			c.fail("cluster load assignment", name, errors.New("received twice"))
			continue
		}
		c.cla[name] = cla
		snap.Resources[resourcev3.EndpointType] = append(snap.Resources[resourcev3.EndpointType], cla)
	}

	for i, cl := range res.Clusters {
		if cl == nil {
			c.fail("cluster", "#"+strconv.Itoa(i), errors.New("nil resource"))
			continue
		}
		snap.Resources[resourcev3.ClusterType] = append(snap.Resources[resourcev3.ClusterType], cl)
		if _, dup := c.clusters[cl.GetName()]; dup {
			c.fail("cluster", cl.GetName(), errors.New("received twice"))
			continue
		}
		out, err := c.cluster(cl)
		if err != nil {
			c.fail("cluster", cl.GetName(), err)
			continue
		}
		c.clusters[out.Name] = out
	}

	// Route configurations received over RDS: Envoy does not validate
	// their clusters unless told to.
	for i, rc := range res.Routes {
		if rc == nil {
			c.fail("route config", "#"+strconv.Itoa(i), errors.New("nil resource"))
			continue
		}
		snap.Resources[resourcev3.RouteType] = append(snap.Resources[resourcev3.RouteType], rc)
		if _, dup := c.routeCfgs[rc.GetName()]; dup {
			c.fail("route config", rc.GetName(), errors.New("received twice"))
			continue
		}
		c.routeCfgs[rc.GetName()] = rc
		rt, err := c.routeTable(rc, false)
		if err != nil {
			c.fail("route config", rc.GetName(), err)
			continue
		}
		c.routes[rt.Name] = rt
	}

	seen := map[string]bool{}
	bound := map[netip.AddrPort]string{}
	for i, l := range res.Listeners {
		if l == nil {
			c.fail("listener", "#"+strconv.Itoa(i), errors.New("nil resource"))
			continue
		}
		snap.Resources[resourcev3.ListenerType] = append(snap.Resources[resourcev3.ListenerType], l)
		if seen[l.GetName()] {
			c.fail("listener", l.GetName(), errors.New("received twice"))
			continue
		}
		seen[l.GetName()] = true
		out, err := c.listener(l)
		if err != nil {
			c.fail("listener", l.GetName(), err)
			continue
		}
		if out == nil {
			continue // api_listener: for proxyless clients
		}
		if out.BindToPort {
			if other, dup := bound[out.Address]; dup {
				c.fail("listener", out.Name, fmt.Errorf("address %s is already used by listener %s", out.Address, other))
				continue
			}
			bound[out.Address] = out.Name
		}
		snap.Listeners = append(snap.Listeners, out)
	}
	slices.SortFunc(snap.Listeners, func(a, b *Listener) int { return strings.Compare(a.Name, b.Name) })

	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return snap, nil
}

// ---- listeners ----

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
	switch {
	case c.opts.Gateway:
		out.Direction = Gateway
	case xdsmeta.IsInboundListener(out.Name):
		out.Direction = Inbound
	case xdsmeta.IsOutboundListener(out.Name):
		out.Direction = Outbound
	case l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND:
		out.Direction = Inbound
	default:
		out.Direction = Outbound
	}
	for i, f := range l.GetListenerFilters() {
		switch {
		case f.GetName() == nameOriginalDst || f.GetTypedConfig().GetTypeUrl() == typeOriginalDst:
			out.OriginalDst = true
		case f.GetName() == nameTLSInspector || f.GetTypedConfig().GetTypeUrl() == typeTLSInspector:
			out.TLSInspector = true
		case f.GetName() == nameHTTPInspector || f.GetTypedConfig().GetTypeUrl() == typeHTTPInspector:
			out.HTTPInspector = true
		case f.GetFilterDisabled() != nil:
			return nil, fmt.Errorf("listener_filters[%d]: filter_disabled "+errNotSupported, i)
		}
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
	return out, nil
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
	if m := fc.GetFilterChainMatch(); m != nil {
		if p := m.GetDestinationPort(); p != nil {
			out.DestinationPort = p.GetValue()
		}
		for i, r := range m.GetPrefixRanges() {
			p, err := cidr(r)
			if err != nil {
				return nil, fmt.Errorf("filter_chain_match.prefix_ranges[%d]: %w", i, err)
			}
			out.PrefixRanges = append(out.PrefixRanges, p)
		}
		for _, n := range m.GetServerNames() {
			n = strings.ToLower(n)
			if strings.Contains(n[min(len(n), 1):], "*") || (strings.HasPrefix(n, "*") && !strings.HasPrefix(n, "*.")) {
				return nil, fmt.Errorf("filter_chain_match.server_names: %q: only a leading \"*.\" wildcard is allowed", n)
			}
			out.ServerNames = append(out.ServerNames, n)
		}
		out.TransportProtocol = m.GetTransportProtocol()
		out.ApplicationProtocols = m.GetApplicationProtocols()
		switch {
		case len(m.GetSourcePrefixRanges()) > 0:
			return nil, fmt.Errorf("filter_chain_match.source_prefix_ranges " + errNotSupported)
		case len(m.GetDirectSourcePrefixRanges()) > 0:
			return nil, fmt.Errorf("filter_chain_match.direct_source_prefix_ranges " + errNotSupported)
		case len(m.GetSourcePorts()) > 0:
			return nil, fmt.Errorf("filter_chain_match.source_ports " + errNotSupported)
		case m.GetSourceType() != listenerv3.FilterChainMatch_ANY:
			return nil, fmt.Errorf("filter_chain_match.source_type " + errNotSupported)
		}
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
		case !last:
			out.IgnoredFilters = append(out.IgnoredFilters, f.GetName())
			continue
		case f.GetConfigDiscovery() != nil:
			return nil, fmt.Errorf("filters[%d]: config_discovery "+errNotSupported, i)
		case isFilter(f, nameHCM, typeHCM):
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

// ---- network filters ----

func (c *compiler) httpManager(a *anypb.Any) (*HTTPManager, error) {
	var hcm hcmv3.HttpConnectionManager
	if err := unpack(a, &hcm); err != nil {
		return nil, err
	}
	out := &HTTPManager{
		StatPrefix:        hcm.GetStatPrefix(),
		IdleTimeout:       defaultHTTPIdleTimeout,
		StreamIdleTimeout: defaultStreamIdleTimeout,
	}
	switch hcm.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO:
		out.Codec = CodecAuto
	case hcmv3.HttpConnectionManager_HTTP1:
		out.Codec = CodecHTTP1
	case hcmv3.HttpConnectionManager_HTTP2:
		out.Codec = CodecHTTP2
	default:
		return nil, fmt.Errorf("codec_type %s "+errNotSupported, hcm.GetCodecType())
	}
	if d := hcm.GetCommonHttpProtocolOptions().GetIdleTimeout(); d != nil {
		out.IdleTimeout = d.AsDuration()
	}
	if d := hcm.GetStreamIdleTimeout(); d != nil {
		out.StreamIdleTimeout = d.AsDuration()
	}
	out.RequestTimeout = hcm.GetRequestTimeout().AsDuration()
	if kb := hcm.GetMaxRequestHeadersKb(); kb != nil {
		out.MaxRequestHeaders = kb.GetValue() * 1024
	}
	out.MaxHeadersCount = DefaultMaxHeadersCount
	if n := hcm.GetCommonHttpProtocolOptions().GetMaxHeadersCount(); n != nil && n.GetValue() > 0 {
		out.MaxHeadersCount = n.GetValue()
	}
	logs, err := accessLogs(hcm.GetAccessLog())
	if err != nil {
		return nil, err
	}
	out.AccessLogs = logs
	for i, u := range hcm.GetUpgradeConfigs() {
		typ := strings.ToLower(u.GetUpgradeType())
		switch {
		case typ == "connect":
			return nil, fmt.Errorf("upgrade_configs[%d]: upgrade_type CONNECT "+errNotSupported, i)
		case len(u.GetFilters()) > 0:
			return nil, fmt.Errorf("upgrade_configs[%d].filters "+errNotSupported, i)
		case u.GetEnabled() != nil && !u.GetEnabled().GetValue():
			continue
		}
		out.Upgrades = append(out.Upgrades, typ)
	}

	filters := hcm.GetHttpFilters()
	for i, f := range filters {
		router := f.GetName() == nameRouter || f.GetTypedConfig().GetTypeUrl() == typeRouter
		switch {
		case router && i != len(filters)-1:
			return nil, fmt.Errorf("http_filters[%d]: %s must be the last filter", i, nameRouter)
		case !router && i == len(filters)-1:
			return nil, fmt.Errorf("http_filters[%d]: the last filter is %q; want %s", i, f.GetName(), nameRouter)
		case !router:
			out.IgnoredHTTPFilters = append(out.IgnoredHTTPFilters, f.GetName())
		}
	}

	switch rs := hcm.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		name := rs.Rds.GetRouteConfigName()
		out.RouteConfigName = name
		rt, ok := c.routes[name]
		switch {
		case ok:
			out.Routes = rt
		case c.routeCfgs[name] != nil:
			// Received but invalid: its own error is already reported.
			return nil, fmt.Errorf("route config %q is invalid", name)
		case c.opts.AllowMissing:
			out.Routes = emptyRouteTable(name)
			c.routes[name] = out.Routes
		default:
			return nil, fmt.Errorf("route config %q %w", name, ErrMissing)
		}
	case *hcmv3.HttpConnectionManager_RouteConfig:
		// Inline route configurations are "static" for Envoy: their
		// clusters are validated unless told otherwise.
		rt, err := c.routeTable(rs.RouteConfig, true)
		if err != nil {
			return nil, fmt.Errorf("route_config: %w", err)
		}
		out.RouteConfigName = rt.Name
		out.Routes = rt
		if _, taken := c.routes[rt.Name]; !taken && rt.Name != "" {
			c.routes[rt.Name] = rt
		}
	default:
		return nil, errors.New("scoped_routes " + errNotSupported + "; use rds or route_config")
	}
	return out, nil
}

func (c *compiler) tcpProxy(a *anypb.Any) (*TCPProxy, error) {
	var tp tcpproxyv3.TcpProxy
	if err := unpack(a, &tp); err != nil {
		return nil, err
	}
	if tp.GetTunnelingConfig() != nil {
		return nil, errors.New("tunneling_config " + errNotSupported)
	}
	if tp.GetOnDemand() != nil {
		return nil, errors.New("on_demand " + errNotSupported)
	}
	out := &TCPProxy{StatPrefix: tp.GetStatPrefix(), IdleTimeout: defaultTCPIdleTimeout}
	if d := tp.GetIdleTimeout(); d != nil {
		out.IdleTimeout = d.AsDuration()
	}
	switch cs := tp.GetClusterSpecifier().(type) {
	case *tcpproxyv3.TcpProxy_Cluster:
		cl, err := c.resolve(cs.Cluster, false)
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		out.Clusters = []WeightedCluster{{Name: cs.Cluster, Weight: 1, Cluster: cl}}
		out.TotalWeight = 1
	case *tcpproxyv3.TcpProxy_WeightedClusters:
		var total uint64
		for i, w := range cs.WeightedClusters.GetClusters() {
			cl, err := c.resolve(w.GetName(), false)
			if err != nil {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d]: %w", i, err)
			}
			out.Clusters = append(out.Clusters, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight(), Cluster: cl})
			total += uint64(w.GetWeight())
		}
		if err := checkTotal(total); err != nil {
			return nil, fmt.Errorf("weighted_clusters: %w", err)
		}
		out.TotalWeight = uint32(total)
	default:
		return nil, errors.New("no cluster or weighted_clusters")
	}
	logs, err := accessLogs(tp.GetAccessLog())
	if err != nil {
		return nil, err
	}
	out.AccessLogs = logs
	return out, nil
}

// checkTotal validates the sum of a weighted cluster set.
func checkTotal(total uint64) error {
	switch {
	case total == 0:
		return errors.New("the sum of the weights must be greater than 0")
	case total > 1<<32-1:
		return fmt.Errorf("the sum of the weights (%d) overflows uint32", total)
	}
	return nil
}

// resolve finds a cluster by name. A missing one is an error when the
// referrer validates clusters; otherwise it is a NotFound placeholder,
// one per name, so every referrer sees the same object.
func (c *compiler) resolve(name string, validate bool) (*Cluster, error) {
	if cl, ok := c.clusters[name]; ok {
		return cl, nil
	}
	if validate {
		return nil, fmt.Errorf("cluster %q not found (validate_clusters is on)", name)
	}
	if p, ok := c.placeholder[name]; ok {
		return p, nil
	}
	p := &Cluster{Name: name, ServiceName: name, NotFound: true, ConnectTimeout: defaultConnectTimeout, PanicThreshold: defaultPanicThreshold}
	c.placeholder[name] = p
	return p, nil
}

// ---- helpers ----

// unpack decodes a typed config into m after checking its type, then
// runs the proto's own validation (the constraints Envoy enforces).
func unpack(a *anypb.Any, m proto.Message) error {
	if a == nil {
		return errors.New("typed_config is required")
	}
	want := typePrefix + string(m.ProtoReflect().Descriptor().FullName())
	if a.GetTypeUrl() != want {
		return fmt.Errorf("typed_config is %q, want %q", a.GetTypeUrl(), want)
	}
	if err := anypb.UnmarshalTo(a, m, proto.UnmarshalOptions{}); err != nil {
		return fmt.Errorf("typed_config: %w", err)
	}
	if v, ok := m.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// duration converts a proto duration, using def when it is unset.
func duration(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}
