package proxy

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	faultcommonv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/fault/v3"
	grpcwebv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/grpc_web/v3"
	httplrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	netlrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/local_ratelimit/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// withHTTPFilters puts the control plane's filter chain (grpc_web, cors,
// fault, local_ratelimit with empty listener-level configurations) before
// the router, so that routes configure them in typed_per_filter_config.
func withHTTPFilters() func(*hcmv3.HttpConnectionManager) {
	return func(h *hcmv3.HttpConnectionManager) {
		f := func(name string, cfg *anypb.Any) *hcmv3.HttpFilter {
			return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}
		}
		h.HttpFilters = append([]*hcmv3.HttpFilter{
			f("envoy.filters.http.grpc_web", mustAny(&grpcwebv3.GrpcWeb{})),
			f("envoy.filters.http.cors", mustAny(&corsv3.Cors{})),
			f("envoy.filters.http.fault", mustAny(&faultv3.HTTPFault{})),
			f("envoy.filters.http.local_ratelimit", mustAny(&httplrlv3.LocalRateLimit{StatPrefix: h.StatPrefix})),
		}, h.HttpFilters...)
	}
}

// withPerFilter sets a route's typed_per_filter_config.
func withPerFilter(r *routev3.Route, name string, cfg *anypb.Any) *routev3.Route {
	if r.TypedPerFilterConfig == nil {
		r.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	r.TypedPerFilterConfig[name] = cfg
	return r
}

// faultAbort aborts every request with status.
func faultAbort(status uint32) *anypb.Any {
	return mustAny(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
		ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: status},
		Percentage: &typev3.FractionalPercent{Numerator: 100},
	}})
}

// faultDelay delays every request by d.
func faultDelay(d time.Duration) *anypb.Any {
	return mustAny(&faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{
		FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)},
		Percentage:         &typev3.FractionalPercent{Numerator: 100},
	}})
}

// rateLimit is a route's local rate limit of maxTokens refilled every
// hour, enforced for every request, as the control plane writes it.
func rateLimit(statPrefix string, maxTokens uint32) *anypb.Any {
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}}
	return mustAny(&httplrlv3.LocalRateLimit{
		StatPrefix:             statPrefix,
		TokenBucket:            &typev3.TokenBucket{MaxTokens: maxTokens, TokensPerFill: wrapperspb.UInt32(maxTokens), FillInterval: durationpb.New(time.Hour)},
		FilterEnabled:          all,
		FilterEnforced:         all,
		EnableRetryAfterHeader: true,
	})
}

// corsPolicy allows one origin.
func corsPolicy(origin string) *anypb.Any {
	return mustAny(&corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: origin}}},
		AllowMethods:           "GET,POST",
		AllowHeaders:           "content-type",
		MaxAge:                 "600",
	})
}

// netRateLimit is a network local_ratelimit filter of maxTokens an hour.
func netRateLimit(statPrefix string, maxTokens uint32) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.local_ratelimit", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&netlrlv3.LocalRateLimit{
		StatPrefix:  statPrefix,
		TokenBucket: &typev3.TokenBucket{MaxTokens: maxTokens, TokensPerFill: wrapperspb.UInt32(maxTokens), FillInterval: durationpb.New(time.Hour)},
	})}}
}

// TestTCPNetworkRateLimit: a network local_ratelimit filter before
// tcp_proxy lets as many connections through as its bucket holds; the
// next is closed at once, without reaching the upstream, and counted.
func TestTCPNetworkRateLimit(t *testing.T) {
	t.Parallel()
	p := startProxy(t, Config{Listen: map[uint32]string{5432: "127.0.0.1:0"}})
	cfg := xds{
		listeners: []*listenerv3.Listener{xListener(ingressName, "0.0.0.0:15000", &listenerv3.FilterChain{
			Name:             "ingress_tcp_5432",
			FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(5432)},
			Filters:          []*listenerv3.Filter{netRateLimit("ingress.tcp.5432", 2), xTCP("ingress.tcp.5432", 0, to("cds_tcp"))},
		})},
		clusters: []*clusterv3.Cluster{xCluster("cds_tcp", startTCPUpstream(t))},
	}
	mustApply(t, p, cfg.snap(t))
	addr := addrOf(t, p, ingressName, 5432)
	session := func() (string, error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "hello"); err != nil {
			return "", err
		}
		_ = conn.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(conn)
		return string(b), err
	}
	for i := range 2 {
		if got, err := session(); got != "got 5" {
			t.Fatalf("connection %d within the bucket: %q, %v", i, got, err)
		}
	}
	if got, _ := session(); got != "" {
		t.Fatalf("connection over the bucket got %q, want it closed", got)
	}
	if n := statValue(t, p, "local_ratelimit.ingress.tcp.5432.rate_limited"); n != 1 {
		t.Errorf("local_ratelimit.ingress.tcp.5432.rate_limited = %d, want 1", n)
	}
	// A new configuration with the same limit keeps the empty bucket.
	mustApply(t, p, cfg.snap(t))
	if got, _ := session(); got != "" {
		t.Errorf("after an unchanged configuration was applied again, a connection got %q, want it closed", got)
	}
}

// TestHTTPFiltersOnTheRequestPath runs each filter through the proxy:
// a fixed delay is waited out (flag DI, delays_injected), a preflight
// from a refused origin gets no allow-origin, an actual CORS request's
// response gets one, and the rate limit's bucket is per route.
func TestHTTPFiltersOnTheRequestPath(t *testing.T) {
	t.Parallel()
	app := startUpstream(t, "app", nil)
	const delay = 200 * time.Millisecond
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := xds{
		listeners: []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001",
			xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001", withFileLog(logPath, logFormat), withHTTPFilters())))},
		routes: []*routev3.RouteConfiguration{xRouteConfig("rds_egress_http_15001", xVHost("v", []string{"*"},
			withPerFilter(xRoute("/delay", to("cds_app")), "envoy.filters.http.fault", faultDelay(delay)),
			withPerFilter(xRoute("/cors", to("cds_app")), "envoy.filters.http.cors", corsPolicy("https://app.example")),
			withPerFilter(xRoute("/a", to("cds_app")), "envoy.filters.http.local_ratelimit", rateLimit("a", 1)),
			withPerFilter(xRoute("/b", to("cds_app")), "envoy.filters.http.local_ratelimit", rateLimit("b", 1)),
			xRoute("/", to("cds_app")),
		))},
		clusters: []*clusterv3.Cluster{xCluster("cds_app", app.Addr())},
	}
	p := startProxy(t, Config{})
	mustApply(t, p, cfg.snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)
	c := testClient()
	do := func(method, path string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.Host = "x"
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	start := time.Now()
	if r := do("GET", "/delay"); r.StatusCode != 200 {
		t.Errorf("delayed request: %d", r.StatusCode)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("delayed request took %s, want at least %s", d, delay)
	}
	if f := strings.Fields(logLine(t, logPath, 1)); len(f) != 3 || f[2] != "DI" {
		t.Errorf("delayed request's access log line %v, want flag DI", f)
	}
	if n := statValue(t, p, "http.egress.fault.delays_injected"); n != 1 {
		t.Errorf("delays_injected = %d, want 1", n)
	}

	r := do("OPTIONS", "/cors", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from a refused origin: %d, allow-origin %q", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
	}
	if n := statValue(t, p, "http.egress.cors.origin_invalid"); n != 1 {
		t.Errorf("origin_invalid = %d, want 1", n)
	}
	r = do("GET", "/cors", "Origin", "https://app.example")
	if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || r.Header.Get("X-Upstream") != "app" {
		t.Errorf("actual CORS request: %d, headers %v", r.StatusCode, r.Header)
	}
	if r = do("GET", "/cors", "Origin", "https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("request from a refused origin got allow-origin %q", r.Header.Get("Access-Control-Allow-Origin"))
	}

	for _, path := range []string{"/a", "/b"} {
		if r := do("GET", path); r.StatusCode != 200 {
			t.Errorf("first request on %s: %d", path, r.StatusCode)
		}
	}
	if r := do("GET", "/a"); r.StatusCode != 429 {
		t.Errorf("second request on /a: %d, want 429", r.StatusCode)
	}
	if r := do("GET", "/"); r.StatusCode != 200 {
		t.Errorf("a route without a rate limit: %d", r.StatusCode)
	}
	if a, b := statValue(t, p, "a.http_local_rate_limit.rate_limited"), statValue(t, p, "b.http_local_rate_limit.ok"); a != 1 || b != 1 {
		t.Errorf("a.rate_limited = %d, b.ok = %d; want 1, 1", a, b)
	}
}

// TestRateLimitBucketsPerConfiguration: a new configuration whose rate
// limit is unchanged keeps its bucket's tokens (an xDS update elsewhere
// does not refill it); one whose bucket changed starts full, as a new
// Envoy filter configuration does.
func TestRateLimitBucketsPerConfiguration(t *testing.T) {
	t.Parallel()
	app := startUpstream(t, "app", nil)
	cfg := xds{
		listeners: []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001",
			xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001", withHTTPFilters())))},
		routes: []*routev3.RouteConfiguration{xRouteConfig("rds_egress_http_15001", xVHost("v", []string{"*"},
			withPerFilter(xRoute("/", to("cds_app")), "envoy.filters.http.local_ratelimit", rateLimit("rl", 1)),
		))},
		clusters: []*clusterv3.Cluster{xCluster("cds_app", app.Addr())},
	}
	p := startProxy(t, Config{})
	mustApply(t, p, cfg.snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)
	status := func() int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.Host = "x"
		resp, err := testClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if a, b := status(), status(); a != 200 || b != 429 {
		t.Fatalf("through a bucket of 1: %d then %d, want 200 then 429", a, b)
	}
	cfg.clusters = append(cfg.clusters, xCluster("cds_other", app.Addr()))
	mustApply(t, p, cfg.snap(t))
	if s := status(); s != 429 {
		t.Errorf("after an update that left the rate limit alone: %d, want 429 (the same empty bucket)", s)
	}
	cfg.routes[0].VirtualHosts[0].Routes[0].TypedPerFilterConfig["envoy.filters.http.local_ratelimit"] = rateLimit("rl", 2)
	mustApply(t, p, cfg.snap(t))
	if a, b, c := status(), status(), status(); a != 200 || b != 200 || c != 429 {
		t.Errorf("after the bucket grew to 2: %d %d %d, want a new full bucket (200 200 429)", a, b, c)
	}
}
