package table

import (
	"net/netip"
	"regexp"
	"testing"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	tcpproxyv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// testRequest is a Request over plain fields.
type testRequest struct {
	authority, method, path, scheme string
	headers                         map[string]string
}

func (r *testRequest) Authority() string { return r.authority }
func (r *testRequest) Method() string    { return r.method }
func (r *testRequest) Path() string      { return r.path }
func (r *testRequest) Scheme() string    { return r.scheme }
func (r *testRequest) Header(name string) (string, bool) {
	v, ok := r.headers[name]
	return v, ok
}

func req(path string, headers ...string) *testRequest {
	r := &testRequest{authority: "svc", method: "GET", path: path, scheme: "http", headers: map[string]string{}}
	for i := 0; i+1 < len(headers); i += 2 {
		r.headers[headers[i]] = headers[i+1]
	}
	return r
}

func strMatch(kind, v string) *matcherv3.StringMatcher {
	m := &matcherv3.StringMatcher{}
	switch kind {
	case "exact":
		m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: v}
	case "prefix":
		m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: v}
	case "suffix":
		m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: v}
	case "contains":
		m.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: v}
	case "regex":
		m.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v}}
	}
	return m
}

func hdr(name, kind, v string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: strMatch(kind, v)}}
}

func qp(name, kind, v string) *routev3.QueryParameterMatcher {
	return &routev3.QueryParameterMatcher{Name: name, QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: strMatch(kind, v)}}
}

func prefixMatch(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func TestRouteMatch(t *testing.T) {
	t.Parallel()
	with := func(m *routev3.RouteMatch, f func(*routev3.RouteMatch)) *routev3.RouteMatch { f(m); return m }
	headers := func(hs ...*routev3.HeaderMatcher) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: hs}
	}
	query := func(qs ...*routev3.QueryParameterMatcher) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: qs}
	}
	inverted := func(h *routev3.HeaderMatcher) *routev3.HeaderMatcher { h.InvertMatch = true; return h }
	ignoreCase := func(h *routev3.HeaderMatcher) *routev3.HeaderMatcher {
		h.GetStringMatch().IgnoreCase = true
		return h
	}
	present := func(name string, v bool) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: v}}
	}
	rangeM := func(name string, s, e int64) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: s, End: e}}}
	}
	qpresent := func(name string, v bool) *routev3.QueryParameterMatcher {
		return &routev3.QueryParameterMatcher{Name: name, QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: v}}
	}
	grpc := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Grpc: &routev3.RouteMatch_GrpcRouteMatchOptions{}}

	tests := []struct {
		name  string
		match *routev3.RouteMatch
		req   *testRequest
		want  bool
	}{
		{"prefix", prefixMatch("/api"), req("/api/v1"), true},
		{"prefix is not a segment match", prefixMatch("/api"), req("/apix"), true},
		{"prefix miss", prefixMatch("/api"), req("/ap"), false},
		{"prefix is case sensitive", prefixMatch("/api"), req("/API/v1"), false},
		{"prefix case insensitive", with(prefixMatch("/api"), func(m *routev3.RouteMatch) { m.CaseSensitive = wrapperspb.Bool(false) }), req("/API/v1"), true},
		{"prefix ignores query", prefixMatch("/a?b"), req("/a?b"), false},
		{"empty prefix", prefixMatch(""), req("/x"), true},
		{"exact path", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}, req("/exact"), true},
		{"exact path ignores query", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}, req("/exact?x=1"), true},
		{"exact path ignores fragment", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}, req("/exact#frag"), true},
		{"exact path miss", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}, req("/exact/"), false},
		{"exact path case insensitive", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/Exact"}, CaseSensitive: wrapperspb.Bool(false)}, req("/eXACT"), true},
		{"regex full match", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/r/[0-9]+"}}}, req("/r/42?q"), true},
		{"regex is anchored", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/r/[0-9]+"}}}, req("/r/42/x"), false},
		{"regex ignores case_sensitive", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/r"}}, CaseSensitive: wrapperspb.Bool(false)}, req("/R"), false},
		{"path separated exact", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, req("/api"), true},
		{"path separated segment", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, req("/api/x"), true},
		{"path separated query", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, req("/api?x"), true},
		{"path separated not a segment", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, req("/apix"), false},

		{"header exact", headers(hdr("x-a", "exact", "yes")), req("/", "x-a", "yes"), true},
		{"header exact miss", headers(hdr("x-a", "exact", "yes")), req("/", "x-a", "Yes"), false},
		{"header exact ignore case", headers(ignoreCase(hdr("x-a", "exact", "yes"))), req("/", "x-a", "YES"), true},
		{"header name is lower-cased", headers(hdr("X-A", "exact", "yes")), req("/", "x-a", "yes"), true},
		{"header prefix", headers(hdr("x-a", "prefix", "pre")), req("/", "x-a", "prefix"), true},
		{"header prefix miss", headers(hdr("x-a", "prefix", "pre")), req("/", "x-a", "xpre"), false},
		{"header suffix", headers(hdr("x-a", "suffix", "fix")), req("/", "x-a", "suffix"), true},
		{"header suffix ignore case", headers(ignoreCase(hdr("x-a", "suffix", "fix"))), req("/", "x-a", "SUFFIX"), true},
		{"header contains", headers(hdr("x-a", "contains", "mid")), req("/", "x-a", "amidb"), true},
		{"header contains ignore case", headers(ignoreCase(hdr("x-a", "contains", "mid"))), req("/", "x-a", "aMIDb"), true},
		{"header contains miss", headers(hdr("x-a", "contains", "mid")), req("/", "x-a", "mi d"), false},
		{"header regex", headers(hdr("x-a", "regex", "v[0-9]+")), req("/", "x-a", "v12"), true},
		{"header regex is anchored", headers(hdr("x-a", "regex", "v[0-9]+")), req("/", "x-a", "v12x"), false},
		{"header several values joined", headers(hdr("x-a", "exact", "a,b")), req("/", "x-a", "a,b"), true},
		{"header range", headers(rangeM("x-n", 10, 20)), req("/", "x-n", "10"), true},
		{"header range end exclusive", headers(rangeM("x-n", 10, 20)), req("/", "x-n", "20"), false},
		{"header range negative", headers(rangeM("x-n", -10, 0)), req("/", "x-n", "-1"), true},
		{"header range not a number", headers(rangeM("x-n", 10, 20)), req("/", "x-n", "15a"), false},
		{"header range missing", headers(rangeM("x-n", 10, 20)), req("/"), false},
		{"header present", headers(present("x-p", true)), req("/", "x-p", ""), true},
		{"header present missing", headers(present("x-p", true)), req("/"), false},
		{"header absent", headers(present("x-p", false)), req("/"), true},
		{"header absent but present", headers(present("x-p", false)), req("/", "x-p", "1"), false},
		{"header no specifier means present", headers(&routev3.HeaderMatcher{Name: "x-p"}), req("/", "x-p", "1"), true},
		{"header invert", headers(inverted(hdr("x-a", "exact", "true"))), req("/", "x-a", "false"), true},
		{"header invert hit", headers(inverted(hdr("x-a", "exact", "true"))), req("/", "x-a", "true"), false},
		{"header invert missing does not match", headers(inverted(hdr("x-a", "exact", "true"))), req("/"), false},
		{"header invert present missing", headers(inverted(present("x-p", true))), req("/"), true},
		{"header invert absent missing", headers(inverted(present("x-p", false))), req("/"), false},
		{"header invert range", headers(inverted(rangeM("x-n", -10, 0))), req("/", "x-n", "-1"), false},
		{"header treat missing as empty", headers(func() *routev3.HeaderMatcher {
			h := inverted(rangeM("x-n", 0, 10))
			h.TreatMissingHeaderAsEmpty = true
			return h
		}()), req("/"), true},
		{"header treat missing as empty regex", headers(func() *routev3.HeaderMatcher {
			h := hdr("x-a", "regex", "")
			h.TreatMissingHeaderAsEmpty = true
			return h
		}()), req("/"), true},
		{"header deprecated exact_match", headers(&routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "v"}}), req("/", "x-a", "v"), true},
		{"header deprecated prefix_match", headers(&routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "v"}}), req("/", "x-a", "vv"), true},
		{"header deprecated safe_regex_match", headers(&routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "a+"}}}), req("/", "x-a", "aaa"), true},
		{"method", headers(hdr(":method", "exact", "POST")), &testRequest{method: "POST", path: "/"}, true},
		{"method miss", headers(hdr(":method", "exact", "POST")), &testRequest{method: "GET", path: "/"}, false},
		{"scheme", headers(hdr(":scheme", "exact", "https")), &testRequest{scheme: "https", path: "/"}, true},
		{"authority", headers(hdr(":authority", "regex", "(?i)svc(:[0-9]+)?")), &testRequest{authority: "SVC:80", path: "/"}, true},
		{"host means authority", headers(hdr("host", "exact", "svc")), &testRequest{authority: "svc", path: "/"}, true},
		{":path is the whole target", headers(hdr(":path", "exact", "/a?b=1")), req("/a?b=1"), true},

		{"query exact", query(qp("color", "exact", "red")), req("/?color=red"), true},
		{"query exact miss", query(qp("color", "exact", "red")), req("/?color=blue"), false},
		{"query first occurrence wins", query(qp("color", "exact", "red")), req("/?color=blue&color=red"), false},
		{"query among others", query(qp("color", "exact", "red")), req("/?a=1&&color=red&b"), true},
		{"query missing", query(qp("color", "exact", "red")), req("/"), false},
		{"query percent-decoded value", query(qp("q", "exact", "a b/c")), req("/?q=a%20b%2Fc"), true},
		{"query percent-decoded key", query(qp("a b", "exact", "1")), req("/?a%20b=1"), true},
		{"query malformed escape kept", query(qp("q", "exact", "%zz")), req("/?q=%zz"), true},
		{"query prefix", query(qp("v", "prefix", "1.")), req("/?v=1.2"), true},
		{"query suffix", query(qp("v", "suffix", ".2")), req("/?v=1.2"), true},
		{"query contains", query(qp("v", "contains", "x")), req("/?v=axb"), true},
		{"query regex", query(qp("id", "regex", "[0-9]+")), req("/?id=123"), true},
		{"query regex anchored", query(qp("id", "regex", "[0-9]+")), req("/?id=123a"), false},
		{"query exact ignore case", query(func() *routev3.QueryParameterMatcher {
			q := qp("v", "exact", "abc")
			q.GetStringMatch().IgnoreCase = true
			return q
		}()), req("/?v=ABC"), true},
		{"query present", query(qpresent("debug", true)), req("/?debug"), true},
		{"query present with value", query(qpresent("debug", true)), req("/?debug=0"), true},
		{"query present missing", query(qpresent("debug", true)), req("/?debugx=1"), false},
		{"query absent", query(qpresent("debug", false)), req("/?x=1"), true},
		{"query absent but present", query(qpresent("debug", false)), req("/?debug"), false},
		{"query no specifier means present", query(&routev3.QueryParameterMatcher{Name: "a"}), req("/?a="), true},
		{"query value without = is empty", query(qp("a", "exact", "")), req("/?a"), true},
		{"query ignores fragment", query(qp("a", "exact", "1")), req("/?a=1#x"), true},

		{"grpc", grpc, req("/svc/M", "content-type", "application/grpc"), true},
		{"grpc+proto", grpc, req("/svc/M", "content-type", "application/grpc+proto"), true},
		{"grpc miss", grpc, req("/svc/M", "content-type", "application/json"), false},
		{"grpc no content type", grpc, req("/svc/M"), false},

		{"all conditions", &routev3.RouteMatch{
			PathSpecifier:   &routev3.RouteMatch_Prefix{Prefix: "/h"},
			Headers:         []*routev3.HeaderMatcher{hdr("x-a", "exact", "1"), hdr(":method", "exact", "GET")},
			QueryParameters: []*routev3.QueryParameterMatcher{qp("b", "exact", "2")},
		}, req("/h?b=2", "x-a", "1"), true},
		{"all conditions one fails", &routev3.RouteMatch{
			PathSpecifier:   &routev3.RouteMatch_Prefix{Prefix: "/h"},
			Headers:         []*routev3.HeaderMatcher{hdr("x-a", "exact", "1"), hdr(":method", "exact", "POST")},
			QueryParameters: []*routev3.QueryParameterMatcher{qp("b", "exact", "2")},
		}, req("/h?b=2", "x-a", "1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := routeMatch(tt.match)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Matches(tt.req); got != tt.want {
				t.Errorf("Matches(%q, %v) = %v, want %v", tt.req.path, tt.req.headers, got, tt.want)
			}
		})
	}
}

// compileRoutes compiles one route configuration on its own.
func compileRoutes(t testing.TB, rc *routev3.RouteConfiguration) *RouteTable {
	t.Helper()
	c := &compiler{clusters: map[string]*Cluster{}, placeholder: map[string]*Cluster{}}
	rt, err := c.routeTable(rc, false)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func vhost(name string, domains ...string) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: []*routev3.Route{prefixRoute("/", "c")}}
}

func TestVirtualHostPrecedence(t *testing.T) {
	t.Parallel()
	rt := compileRoutes(t, &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{
		vhost("default", "*"),
		vhost("exact", "api.example.com", "API.example.com:8080"),
		vhost("suffix", "*.example.com"),
		vhost("longer-suffix", "*.api.example.com"),
		vhost("dash-suffix", "*-api.example.com"),
		vhost("prefix", "api.*"),
		vhost("longer-prefix", "api.example.*"),
	}})
	tests := []struct{ authority, want string }{
		{"api.example.com", "exact"},
		{"API.EXAMPLE.COM", "exact"},
		{"api.example.com:8080", "exact"},
		{"api.example.com:9090", "longer-prefix"}, // the port is part of the authority
		{"www.example.com", "suffix"},
		{"v1.api.example.com", "longer-suffix"},
		{"v1-api.example.com", "dash-suffix"},
		{".example.com", "default"}, // "*" stands for at least one character
		{"api.example.org", "longer-prefix"},
		{"api.other", "prefix"},
		{"API.Other", "prefix"},
		{"other", "default"},
		{"", "default"},
	}
	for _, tt := range tests {
		vh, r := rt.Route(&testRequest{authority: tt.authority, path: "/"})
		if vh == nil || vh.Name != tt.want {
			t.Errorf("authority %q: got %v, want %s", tt.authority, vh, tt.want)
			continue
		}
		if r == nil {
			t.Errorf("authority %q: no route", tt.authority)
		}
	}

	noDefault := compileRoutes(t, &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{vhost("exact", "svc")}})
	if vh, r := noDefault.Route(&testRequest{authority: "other", path: "/"}); vh != nil || r != nil {
		t.Errorf("unknown authority without a default: got %v %v, want nil nil", vh, r)
	}
}

func TestIgnorePortInHostMatching(t *testing.T) {
	t.Parallel()
	rc := &routev3.RouteConfiguration{Name: "r", IgnorePortInHostMatching: true, VirtualHosts: []*routev3.VirtualHost{
		vhost("svc", "svc"), vhost("v6", "[::1]"), vhost("default", "*"),
	}}
	rt := compileRoutes(t, rc)
	for authority, want := range map[string]string{"svc:8080": "svc", "svc": "svc", "SVC:1": "svc", "[::1]:80": "v6", "[::1]": "v6", "svc:x": "default"} {
		if vh := rt.VirtualHost(authority); vh == nil || vh.Name != want {
			t.Errorf("authority %q: got %v, want %s", authority, vh, want)
		}
	}
}

func TestRouteFirstMatchWins(t *testing.T) {
	t.Parallel()
	vh := &routev3.VirtualHost{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
		{Name: "exact", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/a/b"}}, Action: prefixRoute("/", "c").Action},
		{Name: "a", Match: prefixMatch("/a"), Action: prefixRoute("/", "c").Action},
		{Name: "a-shadowed", Match: prefixMatch("/a/b"), Action: prefixRoute("/", "c").Action},
		{Name: "root", Match: prefixMatch("/"), Action: prefixRoute("/", "c").Action},
	}}
	rt := compileRoutes(t, &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{vh}})
	for path, want := range map[string]string{"/a/b": "exact", "/a/b/c": "a", "/a": "a", "/b": "root"} {
		if _, r := rt.Route(&testRequest{path: path}); r == nil || r.Name != want {
			t.Errorf("%s: got %v, want %s", path, r, want)
		}
	}
	empty := compileRoutes(t, &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
		{Match: prefixMatch("/only"), Action: prefixRoute("/", "c").Action},
	}}}})
	if vh, r := empty.Route(&testRequest{path: "/other"}); vh == nil || r != nil {
		t.Errorf("no route: got %v %v, want the vhost and nil", vh, r)
	}
}

func TestRouteDoesNotAllocate(t *testing.T) {
	rt := benchTable(t)
	reqs := []*testRequest{
		{authority: "svc-17.demo.local:8080", method: "GET", path: "/api/v9/items?id=12&color=red", scheme: "http", headers: map[string]string{"x-canary": "1"}},
		{authority: "SVC-42.Demo.Local", method: "POST", path: "/r/12345", scheme: "https", headers: map[string]string{"content-type": "application/grpc"}},
		{authority: "unknown.example.com", method: "GET", path: "/", scheme: "http"},
	}
	for _, r := range reqs {
		if _, route := rt.Route(r); route == nil {
			t.Fatalf("%s %s: no route", r.authority, r.path)
		}
		if n := testing.AllocsPerRun(200, func() { rt.Route(r) }); n != 0 {
			t.Errorf("Route(%s %s) allocates %.1f times per call", r.authority, r.path, n)
		}
	}
}

func TestMatchChain(t *testing.T) {
	tcp := func(name string, m *listenerv3.FilterChainMatch) *listenerv3.FilterChain {
		tp := &tcpproxyv3.TcpProxy{StatPrefix: "s", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}}
		return &listenerv3.FilterChain{Name: name, FilterChainMatch: m, Filters: []*listenerv3.Filter{{
			Name: nameTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, tp)},
		}}}
	}
	cidrR := func(addr string, bits uint32) *corev3.CidrRange {
		return &corev3.CidrRange{AddressPrefix: addr, PrefixLen: wrapperspb.UInt32(bits)}
	}
	l := &listenerv3.Listener{
		Name:    "l",
		Address: sockAddr("0.0.0.0", 15001),
		FilterChains: []*listenerv3.FilterChain{
			tcp("any", nil),
			tcp("port-80", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(80)}),
			tcp("port-80-10/8", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(80), PrefixRanges: []*corev3.CidrRange{cidrR("10.0.0.0", 8)}}),
			tcp("port-80-10.1/16", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(80), PrefixRanges: []*corev3.CidrRange{cidrR("10.1.0.0", 16)}}),
			tcp("port-443-tls", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), TransportProtocol: "tls"}),
			tcp("port-443-sni", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), TransportProtocol: "tls", ServerNames: []string{"*.example.com"}}),
			tcp("port-443-sni-exact", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), TransportProtocol: "tls", ServerNames: []string{"api.example.com"}}),
			tcp("port-8443-only-10/8", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(8443), PrefixRanges: []*corev3.CidrRange{cidrR("10.0.0.0", 8)}}),
			tcp("http", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(8080), ApplicationProtocols: []string{"http/1.1", "h2c"}}),
			tcp("plain", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(8080)}),
		},
		DefaultFilterChain: tcp("default", nil),
	}
	snap, err := Compile(Resources{Listeners: []*listenerv3.Listener{l}})
	if err != nil {
		t.Fatal(err)
	}
	ln := snap.Listeners[0]
	if !ln.TLSInspector || !ln.HTTPInspector {
		t.Errorf("inspectors: tls %v http %v, want both (chains need them)", ln.TLSInspector, ln.HTTPInspector)
	}
	dst := netip.MustParseAddrPort
	tests := []struct {
		name string
		c    ConnInfo
		want string
	}{
		{"no port chain", ConnInfo{Dest: dst("1.2.3.4:9999")}, "any"},
		{"port", ConnInfo{Dest: dst("1.2.3.4:80")}, "port-80"},
		{"port and prefix", ConnInfo{Dest: dst("10.2.3.4:80")}, "port-80-10/8"},
		{"longest prefix", ConnInfo{Dest: dst("10.1.3.4:80")}, "port-80-10.1/16"},
		{"v4-mapped address", ConnInfo{Dest: dst("[::ffff:10.1.3.4]:80")}, "port-80-10.1/16"},
		{"tls", ConnInfo{Dest: dst("1.2.3.4:443"), TransportProtocol: "tls"}, "port-443-tls"},
		{"tls wildcard sni", ConnInfo{Dest: dst("1.2.3.4:443"), TransportProtocol: "tls", ServerName: "www.example.com"}, "port-443-sni"},
		{"tls exact sni", ConnInfo{Dest: dst("1.2.3.4:443"), TransportProtocol: "tls", ServerName: "api.example.com"}, "port-443-sni-exact"},
		{"tls other sni", ConnInfo{Dest: dst("1.2.3.4:443"), TransportProtocol: "tls", ServerName: "other.org"}, "port-443-tls"},
		// A port some chain names never falls back to the port-less
		// chains: Envoy serves the default chain.
		{"port named, nothing else matches", ConnInfo{Dest: dst("1.2.3.4:443"), TransportProtocol: "raw_buffer"}, "default"},
		{"port named, prefix does not match", ConnInfo{Dest: dst("192.168.0.1:8443")}, "default"},
		{"alpn", ConnInfo{Dest: dst("1.2.3.4:8080"), TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"h2c"}}, "http"},
		{"alpn none offered", ConnInfo{Dest: dst("1.2.3.4:8080"), TransportProtocol: "raw_buffer"}, "plain"},
		{"alpn other offered", ConnInfo{Dest: dst("1.2.3.4:8080"), ApplicationProtocols: []string{"redis"}}, "plain"},
	}
	for _, tt := range tests {
		got := ln.MatchChain(tt.c)
		if got == nil || got.Name != tt.want {
			t.Errorf("%s: got %v, want %s", tt.name, got, tt.want)
		}
		if slow := ln.matchChainSlow(tt.c); slow != got {
			t.Errorf("%s: slow path chose %v, fast path %v", tt.name, slow, got)
		}
	}
	c := ConnInfo{Dest: dst("10.1.3.4:80"), ApplicationProtocols: []string{"h2c"}}
	if n := testing.AllocsPerRun(100, func() { ln.MatchChain(c) }); n != 0 {
		t.Errorf("MatchChain allocates %.1f times per call", n)
	}
}

// TestHandBuiltTables checks that tables built without Compile, as the
// data path's tests build them, route and pick like compiled ones.
func TestHandBuiltTables(t *testing.T) {
	t.Parallel()
	c := &Cluster{Name: "c", PanicThreshold: 50, Endpoints: []Endpoint{{Healthy: true, Weight: 1}, {Healthy: false, Weight: 1}, {Healthy: true, Weight: 1}}}
	exact := &Route{Name: "exact", Match: RouteMatch{Path: "/x"}, Clusters: []WeightedCluster{{Name: "c", Weight: 1, Cluster: c}}, TotalWeight: 1}
	regex := &Route{Name: "regex", Match: RouteMatch{PathRegex: regexp.MustCompile(`^/r/[0-9]+$`)}}
	prefix := &Route{Name: "prefix", Match: RouteMatch{Prefix: "/p", CaseSensitive: true}}
	rt := &RouteTable{Name: "r", VirtualHosts: []*VirtualHost{
		{Name: "svc", Domains: []string{"svc", "*.svc"}, Routes: []*Route{exact, regex, prefix}},
		{Name: "any", Domains: []string{"*"}, Routes: []*Route{prefix}},
	}}
	for _, tt := range []struct{ authority, path, vh, route string }{
		{"svc", "/x", "svc", "exact"},
		{"svc", "/xy", "svc", ""},
		{"a.svc", "/r/12", "svc", "regex"},
		{"SVC", "/p/q", "svc", "prefix"},
		{"other", "/p", "any", "prefix"},
	} {
		vh, r := rt.Route(&testRequest{authority: tt.authority, path: tt.path})
		gotVH, gotR := "", ""
		if vh != nil {
			gotVH = vh.Name
		}
		if r != nil {
			gotR = r.Name
		}
		if gotVH != tt.vh || gotR != tt.route {
			t.Errorf("%s %s: got %q %q, want %q %q", tt.authority, tt.path, gotVH, gotR, tt.vh, tt.route)
		}
	}
	seen := map[int]int{}
	for range 10 {
		i, ok := exact.PickCluster(0).PickIndex(0, nil, nil)
		if !ok {
			t.Fatal("hand-built cluster picks nothing")
		}
		seen[i]++
	}
	if seen[1] != 0 || seen[0] != 5 || seen[2] != 5 {
		t.Errorf("hand-built cluster picked %v, want the healthy 0 and 2 alike", seen)
	}
}
