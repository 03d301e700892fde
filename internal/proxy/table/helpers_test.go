package table

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	endpointv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/endpoint/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/router/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/meshlens/meshlens/internal/xdsproto/xdsprototest"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the compiled output (run go test -update and review the diff):\n%s", path, diffLines(string(want), got))
	}
}

// diffLines shows the first differing lines: enough to see what moved.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// loadYAML reads a file in the shape of the control plane's golden views
// (listeners, routes, clusters, endpoints in protojson as YAML).
func loadYAML(t testing.TB, path string) Resources {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string][]json.RawMessage
	if err := json.Unmarshal(js, &doc); err != nil {
		// "notes" is a list of strings; decode loosely.
		var loose map[string]any
		if err2 := json.Unmarshal(js, &loose); err2 != nil {
			t.Fatal(err)
		}
	}
	var res Resources
	dec := func(m json.RawMessage, into xdsproto.Message) {
		if err := xdsprototest.FromJSON(m, into); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	for _, m := range doc["listeners"] {
		l := &listenerv3.Listener{}
		dec(m, l)
		res.Listeners = append(res.Listeners, l)
	}
	for _, m := range doc["routes"] {
		r := &routev3.RouteConfiguration{}
		dec(m, r)
		res.Routes = append(res.Routes, r)
	}
	for _, m := range doc["clusters"] {
		c := &clusterv3.Cluster{}
		dec(m, c)
		res.Clusters = append(res.Clusters, c)
	}
	for _, m := range doc["endpoints"] {
		e := &endpointv3.ClusterLoadAssignment{}
		dec(m, e)
		res.Endpoints = append(res.Endpoints, e)
	}
	return res
}

// describe renders a snapshot as stable text for golden files.
func describe(s *Snapshot) string {
	var b strings.Builder
	p := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("  ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	for _, l := range s.Listeners {
		p(0, "listener %s %s %s bind=%v original_dst=%v tls_inspector=%v http_inspector=%v", l.Name, l.Address, l.Direction, l.BindToPort, l.OriginalDst, l.TLSInspector, l.HTTPInspector)
		for _, ch := range l.Chains {
			describeChain(p, "chain", ch)
		}
		if l.Default != nil {
			describeChain(p, "default", l.Default)
		}
	}
	names := make([]string, 0, len(s.Routes))
	for n := range s.Routes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		rt := s.Routes[n]
		p(0, "route config %s ignore_port=%v", rt.Name, rt.IgnorePortInHostMatching)
		for _, vh := range rt.VirtualHosts {
			p(1, "vhost %s domains=%v%s", vh.Name, vh.Domains, describeMeta(vh.Meta))
			for _, r := range vh.Routes {
				p(2, "route %q match=%s%s", r.Name, describeMatch(&r.Match), describeMeta(r.Meta))
				if r.TracingPercent != nil {
					p(3, "tracing random=%v", *r.TracingPercent)
				}
				switch {
				case r.DirectStatus != 0:
					p(3, "direct %d %q", r.DirectStatus, r.DirectBody)
				default:
					var cs []string
					for _, c := range r.Clusters {
						cs = append(cs, fmt.Sprintf("%s=%d%s", c.Name, c.Weight, notFound(c.Cluster)))
					}
					p(3, "clusters %v total=%d timeout=%s idle=%s", cs, r.TotalWeight, r.Timeout, r.IdleTimeout)
				}
				if r.Retry != nil {
					p(3, "retry on=%s n=%d per_try=%s codes=%v backoff=%s..%s", r.Retry.On, r.Retry.NumRetries, r.Retry.PerTryTimeout, r.Retry.RetriableStatusCodes, r.Retry.BackoffBase, r.Retry.BackoffMax)
				}
				if r.PrefixRewrite != "" || r.RegexRewrite != nil || r.HostRewrite != "" || r.AutoHostRewrite {
					re := ""
					if r.RegexRewrite != nil {
						re = r.RegexRewrite.String()
					}
					p(3, "rewrite prefix=%q regex=%q sub=%q host=%q auto_host=%v", r.PrefixRewrite, re, r.RegexSubstitute, r.HostRewrite, r.AutoHostRewrite)
				}
				if f := r.Filters; f != nil {
					rl := ""
					if f.RateLimit != nil {
						rl = f.RateLimit.StatsPrefix()
					}
					p(3, "filters fault=%v rate_limit=%q cors=%v", f.Fault != nil, rl, f.CORS != nil)
				}
			}
		}
	}
	cnames := make([]string, 0, len(s.Clusters))
	for n := range s.Clusters {
		cnames = append(cnames, n)
	}
	slices.Sort(cnames)
	for _, n := range cnames {
		c := s.Clusters[n]
		l := c.Limits
		budget := ""
		if l.RetryBudget != nil {
			budget = fmt.Sprintf(" retry_budget=%+v", *l.RetryBudget)
		}
		p(0, "cluster %s type=%d service=%s lb=%d connect=%s http2=%v downstream_proto=%v panic_threshold=%g panic=%v limits={MaxConnections:%d MaxPendingRequests:%d MaxRequests:%d MaxRetries:%d}%s%s",
			c.Name, c.Type, c.ServiceName, c.LB, c.ConnectTimeout, c.HTTP2, c.UseDownstreamProtocol, c.PanicThreshold, c.Panic,
			l.MaxConnections, l.MaxPendingRequests, l.MaxRequests, l.MaxRetries, budget, describeMeta(c.Meta))
		if c.Outlier != nil {
			p(1, "outlier %+v", *c.Outlier)
		}
		if c.HealthCheck != nil {
			p(1, "health_check %+v", *c.HealthCheck)
		}
		if c.TLS != nil {
			p(1, "tls %+v", *c.TLS)
		}
		for i, e := range c.Endpoints {
			p(1, "endpoint %d %s host=%q healthy=%v weight=%d hc_port=%d priority=%d zone=%q", i, e.Address, e.Hostname, e.Healthy, e.Weight, e.HealthCheckPort, e.Priority, e.Zone)
		}
		p(1, "healthy=%v schedule=%v", c.Healthy, c.schedule().sched)
	}
	return b.String()
}

// describeMeta prints filter_metadata["meshlens"] when there is some.
func describeMeta(m MeshMetadata) string {
	if m == (MeshMetadata{}) {
		return ""
	}
	return fmt.Sprintf(" meta=%+v", m)
}

func notFound(c *Cluster) string {
	if c.NotFound {
		return "(not found)"
	}
	return ""
}

func describeChain(p func(int, string, ...any), what string, ch *FilterChain) {
	p(1, "%s %q port=%d prefixes=%v sni=%v transport=%q alpn=%v ignored=%v%s", what, ch.Name, ch.DestinationPort, ch.PrefixRanges, ch.ServerNames, ch.TransportProtocol, ch.ApplicationProtocols, ch.IgnoredFilters, describeMeta(ch.Meta))
	if ch.TLS != nil {
		p(2, "tls %+v", *ch.TLS)
	}
	if h := ch.HTTP; h != nil {
		p(2, "http stat=%s codec=%d rds=%s idle=%s stream_idle=%s request=%s max_headers=%d http_filters=%v ignored_http_filters=%v", h.StatPrefix, h.Codec, h.RouteConfigName, h.IdleTimeout, h.StreamIdleTimeout, h.RequestTimeout, h.MaxRequestHeaders, h.Filters.Names(), h.IgnoredHTTPFilters)
		for _, al := range h.AccessLogs {
			p(3, "access_log %s %q %v", al.Path, al.Format, al.JSONFormat)
		}
		if t := h.Tracing; t != nil {
			p(3, "tracing provider=%s cluster=%s endpoint=%s path=%s service=%s random=%v tags=%v header_tags=%v", t.Provider, t.Cluster, t.Endpoint, t.Path, t.ServiceName, t.RandomPercent, t.Tags, t.HeaderTags)
		}
	}
	if t := ch.TCP; t != nil {
		var cs []string
		for _, c := range t.Clusters {
			cs = append(cs, fmt.Sprintf("%s=%d%s", c.Name, c.Weight, notFound(c.Cluster)))
		}
		p(2, "tcp stat=%s clusters=%v total=%d idle=%s", t.StatPrefix, cs, t.TotalWeight, t.IdleTimeout)
		if rl := ch.NetRateLimit; rl != nil {
			p(3, "network local_ratelimit stats=%s max_tokens=%d", rl.StatsPrefix(), rl.Bucket().MaxTokens())
		}
		for _, al := range t.AccessLogs {
			p(3, "access_log %s %q %v", al.Path, al.Format, al.JSONFormat)
		}
	}
}

func describeMatch(m *RouteMatch) string {
	var parts []string
	switch m.pathKind() {
	case pathPrefix:
		parts = append(parts, fmt.Sprintf("prefix=%q", m.Prefix))
	case pathExact:
		parts = append(parts, fmt.Sprintf("path=%q", m.Path))
	case pathRegex:
		parts = append(parts, fmt.Sprintf("regex=%q", m.PathRegex.String()))
	case pathSeparated:
		parts = append(parts, fmt.Sprintf("separated=%q", m.PathSeparated))
	}
	if !m.CaseSensitive {
		parts = append(parts, "case_insensitive")
	}
	for _, h := range m.Headers {
		parts = append(parts, "header("+describeHeader(h)+")")
	}
	for _, q := range m.Query {
		parts = append(parts, fmt.Sprintf("query(%s exact=%s prefix=%s present=%v absent=%v)", q.Name, deref(q.Exact), deref(q.Prefix), q.Present, q.Absent))
	}
	if m.GRPC {
		parts = append(parts, "grpc")
	}
	return strings.Join(parts, " ")
}

func describeHeader(h HeaderMatcher) string {
	s := h.Name
	switch {
	case h.Exact != nil:
		s += " exact=" + *h.Exact
	case h.Prefix != nil:
		s += " prefix=" + *h.Prefix
	case h.Suffix != nil:
		s += " suffix=" + *h.Suffix
	case h.Contains != nil:
		s += " contains=" + *h.Contains
	case h.Regex != nil:
		s += " regex=" + h.Regex.String()
	case h.Range != nil:
		s += fmt.Sprintf(" range=[%d,%d)", h.Range.Start, h.Range.End)
	case h.Present != nil:
		s += fmt.Sprintf(" present=%v", *h.Present)
	}
	if h.Invert {
		s += " invert"
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// String names retry conditions for golden files and errors.
func (r RetryOn) String() string {
	var out []string
	for name, bit := range retryOnNames {
		if r&bit != 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// ---- builders for hand-made resources ----

func mustAny(t testing.TB, m xdsproto.Message) *anypb.Any {
	t.Helper()
	a, err := xdsproto.NewAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func routerFilter(t testing.TB) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{
		TypedConfig: &anypb.Any{TypeUrl: typeRouter},
	}}
}

// httpListener is a listener with one HCM chain using RDS route rds.
func httpListener(t testing.TB, name string, port uint32, rds string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "test",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: rds,
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{routerFilter(t)},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: sockAddr("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{Name: nameHCM, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)}}},
		}},
	}
}

// edsCluster is an EDS cluster over ADS.
func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}},
		ConnectTimeout: durationpb.New(time.Second),
	}
}

// cla assigns healthy endpoints "ip:port" to a cluster.
func cla(name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	out := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	loc := &endpointv3.LocalityLbEndpoints{}
	for _, a := range addrs {
		host, port, _ := strings.Cut(a, ":")
		var p uint32
		fmt.Sscan(port, &p)
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(host, p)}},
			HealthStatus:   corev3.HealthStatus_HEALTHY,
		})
	}
	out.Endpoints = []*endpointv3.LocalityLbEndpoints{loc}
	return out
}

// prefixRoute forwards a prefix to a cluster.
func prefixRoute(prefix, cluster string) *routev3.Route {
	return &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
		}},
	}
}

func boolValue(b bool) *wrapperspb.BoolValue { return wrapperspb.Bool(b) }
