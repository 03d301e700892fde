package table

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	endpointv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/endpoint/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	corsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/fault/v3"
	lrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	netlrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/local_ratelimit/v3"
	tcpproxyv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// validSet is a small complete sidecar configuration that tests mutate:
// an egress HTTP listener on RDS, an ingress TCP listener, an EDS and a
// STATIC cluster.
func validSet(t testing.TB) Resources {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: "in", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "local"}}
	in := &listenerv3.Listener{
		Name:    "lds_ingress_0.0.0.0_15000",
		Address: sockAddr("0.0.0.0", 15000),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: nameTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, tp)},
		}}}},
	}
	local := &clusterv3.Cluster{
		Name:                 "local",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment:       cla("local", "127.0.0.1:8080"),
	}
	return Resources{
		Listeners: []*listenerv3.Listener{httpListener(t, "lds_egress_0.0.0.0_15001", 15001, "rds_egress_http_15001"), in},
		Routes: []*routev3.RouteConfiguration{{
			Name: "rds_egress_http_15001",
			VirtualHosts: []*routev3.VirtualHost{{
				Name: "svc", Domains: []string{"svc", "svc:80"},
				Routes: []*routev3.Route{prefixRoute("/", "svc")},
			}},
		}},
		Clusters:  []*clusterv3.Cluster{edsCluster("svc"), local},
		Endpoints: []*endpointv3.ClusterLoadAssignment{cla("svc", "10.0.0.1:80", "10.0.0.2:80")},
		Versions:  map[string]string{"type.googleapis.com/envoy.config.listener.v3.Listener": "1"},
	}
}

// hcmOf returns the connection manager of a listener's first chain, for
// editing; setHCM writes it back.
func hcmOf(t testing.TB, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	h := &hcmv3.HttpConnectionManager{}
	if err := xdsproto.UnmarshalAny(l.FilterChains[0].Filters[0].GetTypedConfig(), h); err != nil {
		t.Fatal(err)
	}
	return h
}

func setHCM(t testing.TB, l *listenerv3.Listener, h *hcmv3.HttpConnectionManager) {
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}
}

func TestCompileValid(t *testing.T) {
	t.Parallel()
	snap, err := Compile(validSet(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Listeners) != 2 || snap.Listeners[0].Name != "lds_egress_0.0.0.0_15001" || snap.Listeners[1].Name != "lds_ingress_0.0.0.0_15000" {
		t.Fatalf("listeners not sorted by name: %v", snap.Listeners)
	}
	egress, ingress := snap.Listeners[0], snap.Listeners[1]
	if egress.Direction != Outbound || ingress.Direction != Inbound {
		t.Errorf("directions %s %s, want OUTBOUND INBOUND", egress.Direction, ingress.Direction)
	}
	h := egress.Chains[0].HTTP
	if h.Routes != snap.Routes["rds_egress_http_15001"] {
		t.Error("the connection manager does not use the compiled RDS table")
	}
	if h.IdleTimeout != time.Hour || h.StreamIdleTimeout != 5*time.Minute || h.RequestTimeout != 0 {
		t.Errorf("HCM defaults %s %s %s, want Envoy's 1h 5m 0", h.IdleTimeout, h.StreamIdleTimeout, h.RequestTimeout)
	}
	_, r := h.Routes.Route(&testRequest{authority: "svc:80", path: "/x"})
	if r == nil || r.Clusters[0].Cluster != snap.Clusters["svc"] {
		t.Fatalf("route does not resolve to cluster svc: %v", r)
	}
	if r.Timeout != 15*time.Second {
		t.Errorf("route timeout %s, want Envoy's default 15s", r.Timeout)
	}
	svc := snap.Clusters["svc"]
	if svc.ConnectTimeout != time.Second || len(svc.Endpoints) != 2 || len(svc.Healthy) != 2 {
		t.Errorf("cluster svc: %+v", svc)
	}
	if tcp := ingress.Chains[0].TCP; tcp.PickCluster(0) != snap.Clusters["local"] || tcp.IdleTimeout != time.Hour {
		t.Errorf("tcp proxy: %+v", tcp)
	}
	if snap.Clusters["local"].ConnectTimeout != 5*time.Second {
		t.Errorf("connect timeout default %s, want 5s", snap.Clusters["local"].ConnectTimeout)
	}
	if snap.Versions["type.googleapis.com/envoy.config.listener.v3.Listener"] != "1" {
		t.Errorf("versions not kept: %v", snap.Versions)
	}
	if len(snap.Resources["type.googleapis.com/envoy.config.cluster.v3.Cluster"]) != 2 {
		t.Errorf("resources for config_dump not kept: %v", snap.Resources)
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edit    func(t *testing.T, r *Resources)
		want    string
		missing bool // errors.Is(err, ErrMissing)
	}{
		{
			name:    "route config not received",
			edit:    func(t *testing.T, r *Resources) { r.Routes = nil },
			want:    `listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: route config "rds_egress_http_15001" not received`,
			missing: true,
		},
		{
			name:    "EDS assignment not received",
			edit:    func(t *testing.T, r *Resources) { r.Endpoints = nil },
			want:    `cluster svc: endpoints for service "svc" not received`,
			missing: true,
		},
		{
			name: "invalid regex",
			edit: func(t *testing.T, r *Resources) {
				rc := r.Routes[0]
				rc.Name = "rds_x"
				r.Listeners = r.Listeners[1:]
				rc.VirtualHosts[0].Routes = []*routev3.Route{prefixRoute("/a", "svc"), prefixRoute("/b", "svc"), {
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/r/(["}}},
					Action: prefixRoute("/", "svc").Action,
				}}
			},
			want: "route config rds_x: virtual_hosts[0].routes[2].match.safe_regex: error parsing regexp: missing closing ]: `[`",
		},
		{
			name: "invalid header regex",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].Match.Headers = []*routev3.HeaderMatcher{hdr("x-a", "regex", "a(")}
			},
			want: "route config rds_egress_http_15001: virtual_hosts[0].routes[0].match.headers[0]: string_match.safe_regex: error parsing regexp: missing closing ): `a(`\n" +
				`listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: route config "rds_egress_http_15001" is invalid`,
		},
		{
			name: "missing cluster with validate_clusters",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].ValidateClusters = wrapperspb.Bool(true)
				r.Routes[0].VirtualHosts[0].Routes[0] = prefixRoute("/", "nope")
				r.Listeners = r.Listeners[1:]
			},
			want: `route config rds_egress_http_15001: virtual_hosts[0].routes[0].route: cluster: cluster "nope" not found (validate_clusters is on)`,
		},
		{
			name: "missing cluster in an inline route config",
			edit: func(t *testing.T, r *Resources) {
				l := r.Listeners[0]
				h := hcmOf(t, l)
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
					Name: "inline", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{prefixRoute("/", "nope")}}},
				}}
				setHCM(t, l, h)
			},
			want: `listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: route_config: virtual_hosts[0].routes[0].route: cluster: cluster "nope" not found (validate_clusters is on)`,
		},
		{
			name: "router not last",
			edit: func(t *testing.T, r *Resources) {
				l := r.Listeners[0]
				h := hcmOf(t, l)
				h.HttpFilters = append(h.HttpFilters, &hcmv3.HttpFilter{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: typePrefix + "envoy.extensions.filters.http.fault.v3.HTTPFault"}}})
				setHCM(t, l, h)
			},
			want: `listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: http_filters[0]: envoy.filters.http.router must be the last filter`,
		},
		{
			name: "no router",
			edit: func(t *testing.T, r *Resources) {
				l := r.Listeners[0]
				h := hcmOf(t, l)
				h.HttpFilters = []*hcmv3.HttpFilter{{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: typePrefix + "envoy.extensions.filters.http.fault.v3.HTTPFault"}}}}
				setHCM(t, l, h)
			},
			want: `listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: http_filters[0]: the last filter is "envoy.filters.http.fault"; want envoy.filters.http.router`,
		},
		{
			name: "unknown http filter",
			edit: func(t *testing.T, r *Resources) {
				l := r.Listeners[0]
				h := hcmOf(t, l)
				h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: typePrefix + "envoy.extensions.filters.http.rbac.v3.RBAC"}}}}, h.HttpFilters...)
				setHCM(t, l, h)
			},
			want: `listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: http_filters[0]: "envoy.filters.http.rbac" (type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC) is not supported; mark it is_optional to have it ignored`,
		},
		{
			name: "http filter twice",
			edit: func(t *testing.T, r *Resources) {
				l := r.Listeners[0]
				h := hcmOf(t, l)
				cors := &hcmv3.HttpFilter{Name: "envoy.filters.http.cors", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &corsv3.Cors{})}}
				h.HttpFilters = append([]*hcmv3.HttpFilter{cors, cors}, h.HttpFilters...)
				setHCM(t, l, h)
			},
			want: `listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: http_filters[1] (envoy.filters.http.cors): envoy.filters.http.cors appears twice`,
		},
		{
			name: "http filter from config_discovery",
			edit: func(t *testing.T, r *Resources) {
				l := r.Listeners[0]
				h := hcmOf(t, l)
				h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}, TypeUrls: []string{"type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}}}}}, h.HttpFilters...)
				setHCM(t, l, h)
			},
			want: `listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: http_filters[0] (envoy.filters.http.fault): config_discovery is not supported`,
		},
		{
			name: "bad fault filter",
			edit: func(t *testing.T, r *Resources) {
				l := r.Listeners[0]
				h := hcmOf(t, l)
				h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &faultv3.HTTPFault{UpstreamCluster: "x"})}}}, h.HttpFilters...)
				setHCM(t, l, h)
			},
			want: `listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: http_filters[0] (envoy.filters.http.fault): fault: upstream_cluster: not supported (select the route instead)`,
		},
		{
			name: "bad route rate limit",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].TypedPerFilterConfig = map[string]*anypb.Any{
					"envoy.filters.http.local_ratelimit": mustAny(t, &lrlv3.LocalRateLimit{}),
				}
			},
			want: `route config rds_egress_http_15001: virtual_hosts[0].routes[0].typed_per_filter_config["envoy.filters.http.local_ratelimit"]: local_ratelimit: stat_prefix: required
listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: route config "rds_egress_http_15001" is invalid`,
		},
		{
			name: "unknown per-route config",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].VirtualHosts[0].TypedPerFilterConfig = map[string]*anypb.Any{
					"envoy.filters.http.rbac": {TypeUrl: typePrefix + "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"},
				}
			},
			want: `route config rds_egress_http_15001: virtual_hosts[0].typed_per_filter_config["envoy.filters.http.rbac"]: type "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute" is not a per-route configuration meshlens knows; mark it is_optional in a FilterConfig to have it ignored
listener lds_egress_0.0.0.0_15001: filter_chains[0]: http_connection_manager: route config "rds_egress_http_15001" is invalid`,
		},
		{
			name: "weights sum to zero",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
					Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "svc", Weight: wrapperspb.UInt32(0)}},
				}}
				r.Listeners = r.Listeners[1:]
			},
			want: `route config rds_egress_http_15001: virtual_hosts[0].routes[0].route: weighted_clusters: the sum of the weights must be greater than 0`,
		},
		{
			name: "duplicate domain",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].VirtualHosts = append(r.Routes[0].VirtualHosts, &routev3.VirtualHost{Name: "other", Domains: []string{"SVC"}, Routes: []*routev3.Route{prefixRoute("/", "svc")}})
				r.Listeners = r.Listeners[1:]
			},
			want: `route config rds_egress_http_15001: virtual_hosts[1]: domain "SVC" is already used by virtual_hosts[0]`,
		},
		{
			name: "wildcard in the middle",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].VirtualHosts[0].Domains = []string{"a.*.com"}
				r.Listeners = r.Listeners[1:]
			},
			want: `route config rds_egress_http_15001: virtual_hosts[0].domains[0]: "a.*.com": a wildcard is allowed only as the first or last character`,
		},
		{
			name: "overlapping filter chains",
			edit: func(t *testing.T, r *Resources) {
				l := r.Listeners[1]
				l.FilterChains = append(l.FilterChains, xdsproto.Clone(l.FilterChains[0]))
			},
			want: `listener lds_ingress_0.0.0.0_15000: filter_chains[0] and filter_chains[1] (in precedence order) have overlapping matching rules`,
		},
		{
			name: "source prefix ranges",
			edit: func(t *testing.T, r *Resources) {
				r.Listeners[1].FilterChains[0].FilterChainMatch = &listenerv3.FilterChainMatch{SourcePrefixRanges: []*corev3.CidrRange{{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(8)}}}
			},
			want: `listener lds_ingress_0.0.0.0_15000: filter_chains[0]: filter_chain_match.source_prefix_ranges is not supported`,
		},
		{
			name: "runtime fraction",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].Match.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 50}}
				r.Listeners = r.Listeners[1:]
			},
			want: `route config rds_egress_http_15001: virtual_hosts[0].routes[0].match.runtime_fraction is not supported`,
		},
		{
			name: "redirect",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].Action = &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "x"}}
				r.Listeners = r.Listeners[1:]
			},
			want: `route config rds_egress_http_15001: virtual_hosts[0].routes[0].redirect is not supported`,
		},
		{
			name: "ring hash",
			edit: func(t *testing.T, r *Resources) { r.Clusters[0].LbPolicy = clusterv3.Cluster_RING_HASH },
			want: `cluster svc: lb_policy RING_HASH is not supported`,
		},
		{
			name: "listener address is a name",
			edit: func(t *testing.T, r *Resources) { r.Listeners[1].Address = sockAddr("localhost", 15000) },
			want: `listener lds_ingress_0.0.0.0_15000: address: "localhost" is not an IP address`,
		},
		{
			name: "two listeners on one address",
			edit: func(t *testing.T, r *Resources) { r.Listeners[1].Address = sockAddr("0.0.0.0", 15001) },
			want: `listener lds_ingress_0.0.0.0_15000: address 0.0.0.0:15001 is already used by listener lds_egress_0.0.0.0_15001`,
		},
		{
			name: "static endpoint is a name",
			edit: func(t *testing.T, r *Resources) { r.Clusters[1].LoadAssignment = cla("local", "localhost:8080") },
			want: `cluster local: load_assignment: endpoints[0].lb_endpoints[0].endpoint.address: "localhost" is not an IP address`,
		},
		{
			name: "regex rewrite names a missing group",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].GetRoute().RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
					Pattern: &matcherv3.RegexMatcher{Regex: "^/(a)"}, Substitution: `/\2`,
				}
				r.Listeners = r.Listeners[1:]
			},
			want: `route config rds_egress_http_15001: virtual_hosts[0].routes[0].route: regex_rewrite.substitution: \2 names a group the pattern does not have (it has 1)`,
		},
		{
			name: "prefix SAN matcher",
			edit: func(t *testing.T, r *Resources) {
				ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
					ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
						MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: strMatch("prefix", "svc")}},
					}},
				}}
				r.Clusters[0].TransportSocket = &corev3.TransportSocket{Name: nameTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, ctx)}}
			},
			want: `cluster svc: transport_socket: common_tls_context: validation_context: match_typed_subject_alt_names[0].matcher: only exact, case-sensitive SAN matchers are supported`,
		},
		{
			name: "inline private key",
			edit: func(t *testing.T, r *Resources) {
				ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{{
					CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/c.pem"}},
					PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "secret"}},
				}}}}
				r.Clusters[0].TransportSocket = &corev3.TransportSocket{Name: nameTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, ctx)}}
			},
			want: `cluster svc: transport_socket: common_tls_context: tls_certificates[0].private_key: only filename data sources are supported`,
		},
		{
			name: "proto validation",
			edit: func(t *testing.T, r *Resources) { r.Clusters[1].ConnectTimeout = durationpb.New(-time.Second) },
			want: `cluster local: invalid Cluster.ConnectTimeout: value must be greater than 0s`,
		},
		{
			name: "wrong typed config",
			edit: func(t *testing.T, r *Resources) {
				r.Listeners[1].FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &hcmv3.HttpConnectionManager{})}
				r.Listeners[1].FilterChains[0].Filters[0].Name = nameTCPProxy
			},
			want: `listener lds_ingress_0.0.0.0_15000: filter_chains[0]: http_connection_manager: invalid HttpConnectionManager.StatPrefix: value length must be at least 1 runes`,
		},
		{
			name: "network rate limit before the connection manager",
			edit: func(t *testing.T, r *Resources) {
				fc := r.Listeners[0].FilterChains[0]
				fc.Filters = append([]*listenerv3.Filter{{Name: "envoy.filters.network.local_ratelimit", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &netlrlv3.LocalRateLimit{
					StatPrefix: "x", TokenBucket: &typev3.TokenBucket{MaxTokens: 1, FillInterval: durationpb.New(time.Second)},
				})}}}, fc.Filters...)
			},
			want: `listener lds_egress_0.0.0.0_15001: filter_chains[0]: filters: envoy.filters.network.local_ratelimit before envoy.filters.network.http_connection_manager is not supported; it limits tcp_proxy connections only`,
		},
		{
			name: "fault on a weighted cluster",
			edit: func(t *testing.T, r *Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
					Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "svc", Weight: wrapperspb.UInt32(1), TypedPerFilterConfig: map[string]*anypb.Any{
						"envoy.filters.http.fault": mustAny(t, &faultv3.HTTPFault{}),
					}}},
				}}
				r.Listeners = r.Listeners[1:]
			},
			want: `route config rds_egress_http_15001: virtual_hosts[0].routes[0].route: weighted_clusters.clusters[0].typed_per_filter_config is not supported; configure the route`,
		},
		{
			name: "unknown terminal filter",
			edit: func(t *testing.T, r *Resources) {
				r.Listeners[1].FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: typePrefix + "envoy.extensions.filters.network.redis_proxy.v3.RedisProxy"}}
				r.Listeners[1].FilterChains[0].Filters[0].Name = "envoy.filters.network.redis_proxy"
			},
			want: `listener lds_ingress_0.0.0.0_15000: filter_chains[0]: filters[0]: the last filter is "envoy.filters.network.redis_proxy"; want envoy.filters.network.http_connection_manager or envoy.filters.network.tcp_proxy`,
		},
		{
			name: "duplicate cluster",
			edit: func(t *testing.T, r *Resources) { r.Clusters = append(r.Clusters, edsCluster("svc")) },
			want: `cluster svc: received twice`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := validSet(t)
			tt.edit(t, &res)
			_, err := Compile(res)
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			if errors.Is(err, ErrMissing) != tt.missing {
				t.Errorf("errors.Is(err, ErrMissing) = %v, want %v", !tt.missing, tt.missing)
			}
		})
	}
}

func TestCompileAllowMissing(t *testing.T) {
	t.Parallel()
	res := validSet(t)
	res.Routes, res.Endpoints = nil, nil
	snap, err := Compile(res, CompileOptions{AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	rt := snap.Listeners[0].Chains[0].HTTP.Routes
	if vh, r := rt.Route(&testRequest{authority: "svc", path: "/"}); vh != nil || r != nil {
		t.Errorf("missing route config routes somewhere: %v %v", vh, r)
	}
	if c := snap.Clusters["svc"]; len(c.Endpoints) != 0 {
		t.Errorf("missing assignment left endpoints: %v", c.Endpoints)
	} else if _, ok := c.Pick(0); ok {
		t.Error("a cluster without endpoints picked one")
	}
}

func TestCompileMissingClusterPlaceholder(t *testing.T) {
	t.Parallel()
	res := validSet(t)
	res.Routes[0].VirtualHosts[0].Routes = []*routev3.Route{prefixRoute("/a", "gone"), prefixRoute("/b", "gone")}
	tp := &tcpproxyv3.TcpProxy{StatPrefix: "in", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "gone"}}
	res.Listeners[1].FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, tp)}
	snap, err := Compile(res)
	if err != nil {
		t.Fatal(err)
	}
	rs := snap.Listeners[0].Chains[0].HTTP.Routes.VirtualHosts[0].Routes
	a, b := rs[0].Clusters[0].Cluster, rs[1].Clusters[0].Cluster
	tcp := snap.Listeners[1].Chains[0].TCP.Clusters[0].Cluster
	if a == nil || !a.NotFound || a != b || a != tcp {
		t.Fatalf("placeholders: %v %v %v, want one shared NotFound cluster", a, b, tcp)
	}
	if _, ok := snap.Clusters["gone"]; ok {
		t.Error("a placeholder is listed among the clusters")
	}
	if _, ok := a.Pick(0); ok {
		t.Error("a placeholder picked an endpoint")
	}
}

func TestCompileDefaultsAndOptions(t *testing.T) {
	t.Parallel()
	res := validSet(t)
	res.Listeners = append(res.Listeners, &listenerv3.Listener{
		Name:        "greeting.demo.local:9080",
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(t, &hcmv3.HttpConnectionManager{})},
	})
	l := res.Listeners[0]
	l.BindToPort = wrapperspb.Bool(false)
	h := hcmOf(t, l)
	h.CodecType = hcmv3.HttpConnectionManager_HTTP2
	h.StreamIdleTimeout = durationpb.New(0)
	h.RequestTimeout = durationpb.New(3 * time.Second)
	h.MaxRequestHeadersKb = wrapperspb.UInt32(8)
	h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(time.Minute), MaxHeadersCount: wrapperspb.UInt32(20)}
	h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.fault"}, {Name: "acme.filters.http.audit", IsOptional: true}, {Name: "envoy.filters.http.cors", Disabled: true}}, h.HttpFilters...)
	setHCM(t, l, h)
	rt := res.Routes[0].VirtualHosts[0]
	rt.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx, reset,bogus", PerTryTimeout: durationpb.New(time.Second)}
	rt.Routes = append([]*routev3.Route{{
		Match: prefixMatch("/zero"),
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "svc"},
			Timeout:          durationpb.New(0),
			RetryPolicy: &routev3.RetryPolicy{RetryOn: "unavailable,retriable-status-codes", NumRetries: wrapperspb.UInt32(4), RetriableStatusCodes: []uint32{503},
				RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(100 * time.Millisecond)}},
		}},
	}}, rt.Routes...)
	res.Clusters[0].OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3)}
	res.Clusters[0].CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}}
	res.Clusters[0].LbPolicy = clusterv3.Cluster_LEAST_REQUEST

	snap, err := Compile(res, CompileOptions{Gateway: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Listeners) != 2 {
		t.Fatalf("api_listener not skipped: %d listeners", len(snap.Listeners))
	}
	eg := snap.Listeners[0]
	if eg.Direction != Gateway || eg.BindToPort {
		t.Errorf("direction %s bind %v, want GATEWAY false", eg.Direction, eg.BindToPort)
	}
	hm := eg.Chains[0].HTTP
	if hm.Codec != CodecHTTP2 || hm.StreamIdleTimeout != 0 || hm.RequestTimeout != 3*time.Second || hm.MaxRequestHeaders != 8192 || hm.IdleTimeout != time.Minute || hm.MaxHeadersCount != 20 {
		t.Errorf("HCM: %+v", hm)
	}
	if n := hm.Filters.Names(); len(n) != 1 || n[0] != "envoy.filters.http.fault" {
		t.Errorf("http filters %v, want the fault filter (named without a typed_config: its empty config)", n)
	}
	if len(hm.IgnoredHTTPFilters) != 2 || hm.IgnoredHTTPFilters[0] != "acme.filters.http.audit" || hm.IgnoredHTTPFilters[1] != "envoy.filters.http.cors" {
		t.Errorf("ignored filters %v, want the optional unknown one and the disabled one", hm.IgnoredHTTPFilters)
	}
	_, zero := hm.Routes.Route(&testRequest{path: "/zero", authority: "svc"})
	if zero.Timeout != 0 {
		t.Errorf("explicit 0 timeout became %s", zero.Timeout)
	}
	if r := zero.Retry; r.On != RetryGRPCUnavailable|RetryRetriableStatusCodes || r.NumRetries != 4 || r.BackoffBase != 100*time.Millisecond || r.BackoffMax != time.Second || len(r.RetriableStatusCodes) != 1 {
		t.Errorf("route retry: %+v", r)
	}
	_, other := hm.Routes.Route(&testRequest{path: "/", authority: "svc"})
	if r := other.Retry; r == nil || r.On != Retry5xx|RetryReset || r.NumRetries != 1 || r.PerTryTimeout != time.Second || r.BackoffBase != 25*time.Millisecond {
		t.Errorf("virtual host retry not inherited: %+v", r)
	}
	c := snap.Clusters["svc"]
	if o := c.Outlier; o.Consecutive5xx != 3 || o.Interval != 10*time.Second || o.BaseEjectionTime != 30*time.Second || o.MaxEjectionPercent != 10 || o.EnforcingConsecutive5xx != 100 {
		t.Errorf("outlier defaults: %+v", o)
	}
	if c.PanicThreshold != 0 || c.LB != LBLeastRequest {
		t.Errorf("panic threshold %g lb %d", c.PanicThreshold, c.LB)
	}
}

func TestRewritePath(t *testing.T) {
	t.Parallel()
	mk := func(m *routev3.RouteMatch, a *routev3.RouteAction) *Route {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "c"}
		c := &compiler{clusters: map[string]*Cluster{}, placeholder: map[string]*Cluster{}}
		r, err := c.route(&routev3.Route{Match: m, Action: &routev3.Route_Route{Route: a}}, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	regex := func(pattern, sub string) *routev3.RouteAction {
		return &routev3.RouteAction{RegexRewrite: &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: pattern}, Substitution: sub}}
	}
	tests := []struct {
		name   string
		route  *Route
		in     string
		want   string
		noCopy bool
	}{
		{"prefix", mk(prefixMatch("/api/"), &routev3.RouteAction{PrefixRewrite: "/"}), "/api/v1/x?q=1", "/v1/x?q=1", false},
		{"prefix to longer", mk(prefixMatch("/a"), &routev3.RouteAction{PrefixRewrite: "/b/c"}), "/a/x", "/b/c/x", false},
		{"case-insensitive prefix", mk(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"}, CaseSensitive: wrapperspb.Bool(false)}, &routev3.RouteAction{PrefixRewrite: "/v2"}), "/API/x", "/v2/x", false},
		{"path separated", mk(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, &routev3.RouteAction{PrefixRewrite: "/new"}), "/api/x", "/new/x", false},
		{"exact path replaced whole", mk(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/old"}}, &routev3.RouteAction{PrefixRewrite: "/new"}), "/old?x", "/new?x", false},
		{"regex groups", mk(prefixMatch("/"), regex(`^/service/([^/]+)(/.*)$`, `\2/instance/\1`)), "/service/foo/v1/api?x=1", "/v1/api/instance/foo?x=1", false},
		{"regex every match", mk(prefixMatch("/"), regex(`one`, `two`)), "/xxx/one/yyy/one/zzz", "/xxx/two/yyy/two/zzz", false},
		{"regex whole path, literal dollar and backslash", mk(prefixMatch("/"), regex(`^.*$`, `/a$b\\c`)), "/anything?q", `/a$b\c?q`, false},
		{"no rewrite", mk(prefixMatch("/"), &routev3.RouteAction{}), "/same?q", "/same?q", true},
	}
	for _, tt := range tests {
		if got := tt.route.RewritePath(tt.in); got != tt.want {
			t.Errorf("%s: RewritePath(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
		if tt.noCopy && tt.route.HasPathRewrite() {
			t.Errorf("%s: HasPathRewrite without a rewrite", tt.name)
		}
	}
	if err := func() error {
		_, err := expandTemplate(`\x`, 0)
		return err
	}(); err == nil || !strings.Contains(err.Error(), "invalid escape") {
		t.Errorf("invalid escape accepted: %v", err)
	}
}

func TestCompileUpgradeConfigs(t *testing.T) {
	t.Parallel()
	compileWith := func(ucs ...*hcmv3.HttpConnectionManager_UpgradeConfig) (*HTTPManager, error) {
		res := validSet(t)
		l := res.Listeners[0]
		h := hcmOf(t, l)
		h.UpgradeConfigs = ucs
		setHCM(t, l, h)
		snap, err := Compile(res, CompileOptions{})
		if err != nil {
			return nil, err
		}
		for _, sl := range snap.Listeners {
			if sl.Name == l.Name {
				return sl.Chains[0].HTTP, nil
			}
		}
		t.Fatalf("listener %s not compiled", l.Name)
		return nil, nil
	}
	m, err := compileWith(
		&hcmv3.HttpConnectionManager_UpgradeConfig{UpgradeType: "WebSocket"},
		&hcmv3.HttpConnectionManager_UpgradeConfig{UpgradeType: "spdy/3.1", Enabled: boolValue(false)},
	)
	if err != nil {
		t.Fatal(err)
	}
	if !m.UpgradeAllowed("websocket") || !m.UpgradeAllowed("WEBSOCKET") || m.UpgradeAllowed("spdy/3.1") || m.UpgradeAllowed("h2c") {
		t.Errorf("upgrades %v", m.Upgrades)
	}
	for _, bad := range []*hcmv3.HttpConnectionManager_UpgradeConfig{
		{UpgradeType: "CONNECT"},
		{UpgradeType: "websocket", Filters: []*hcmv3.HttpFilter{{Name: "x"}}},
	} {
		if _, err := compileWith(bad); err == nil || !strings.Contains(err.Error(), "upgrade_configs[0]") {
			t.Errorf("%v: err %v, want one naming upgrade_configs[0]", bad, err)
		}
	}
}

func TestCompileRetryBudget(t *testing.T) {
	t.Parallel()
	def := &RetryBudget{Percent: DefaultRetryBudgetPercent, MinConcurrency: DefaultRetryBudgetMinConcurrency}
	for _, tc := range []struct {
		name string
		rb   *clusterv3.CircuitBreakers_Thresholds_RetryBudget
		want *RetryBudget
	}{
		{"unset", nil, nil},
		{"empty: Envoy's defaults", &clusterv3.CircuitBreakers_Thresholds_RetryBudget{}, def},
		{"set", &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 35.5}, MinRetryConcurrency: wrapperspb.UInt32(0)}, &RetryBudget{Percent: 35.5}},
		{"over 100 %", &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 250}}, &RetryBudget{Percent: 100, MinConcurrency: 3}},
		{"negative", &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: -1}}, &RetryBudget{Percent: 0, MinConcurrency: 3}},
	} {
		got := circuitBreakers(&clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRetries: wrapperspb.UInt32(7), RetryBudget: tc.rb,
		}}})
		if got.MaxRetries != 7 || (got.RetryBudget == nil) != (tc.want == nil) || got.RetryBudget != nil && *got.RetryBudget != *tc.want {
			t.Errorf("%s: %+v (budget %+v), want budget %+v", tc.name, got, got.RetryBudget, tc.want)
		}
	}
}
