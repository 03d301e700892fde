package xds

import (
	"math"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	grpcwebv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	httplrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netlrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// The meshlens extension (fault, rateLimit, cors, grpcWeb) becomes
// Envoy's own filters, configured as Envoy documents them: the
// listener-wide configuration in the filter's typed_config in the
// HttpConnectionManager, a route's (or virtual host's) in its
// typed_per_filter_config under the filter's name, which Envoy lets the
// most specific level override. A filter is only in a connection
// manager's chain when its listener or one of its routes uses it, so
// configurations without the extension stay as they were.

// Envoy's names of the filters meshlens configures.
const (
	RouterFilterName           = "envoy.filters.http.router"
	FaultFilterName            = "envoy.filters.http.fault"
	LocalRateLimitFilterName   = "envoy.filters.http.local_ratelimit"
	CORSFilterName             = "envoy.filters.http.cors"
	GRPCWebFilterName          = "envoy.filters.http.grpc_web"
	NetworkRateLimitFilterName = "envoy.filters.network.local_ratelimit"
)

// The runtime keys of the local rate limit's filter_enabled and
// filter_enforced, as Envoy's documentation names them. Their default
// values (100%) apply; Envoy's own default is 0%, a filter that counts
// nothing.
const (
	rateLimitEnabledKey  = "local_rate_limit_enabled"
	rateLimitEnforcedKey = "local_rate_limit_enforced"
)

// hcmFilters is what one connection manager's HTTP filter chain holds
// besides the router: each field nil (or false) when nothing on the
// listener or its routes uses that filter.
type hcmFilters struct {
	grpcWeb   bool
	cors      bool
	fault     *faultv3.HTTPFault        // the listener's, or empty for routes only
	rateLimit *httplrlv3.LocalRateLimit // the listener's, or a stat prefix alone
}

// forRoutes adds the filters the route configuration's routes and
// virtual hosts configure in typed_per_filter_config, with an empty
// listener-wide configuration where the listener has none: an empty
// HTTPFault injects nothing, and a LocalRateLimit without a token bucket
// limits nothing, so only the routes' own configurations act.
func (f *hcmFilters) forRoutes(rc *routev3.RouteConfiguration, statPrefix string) {
	use := func(m map[string]*anypb.Any) {
		if _, ok := m[CORSFilterName]; ok {
			f.cors = true
		}
		if _, ok := m[FaultFilterName]; ok && f.fault == nil {
			f.fault = &faultv3.HTTPFault{}
		}
		if _, ok := m[LocalRateLimitFilterName]; ok && f.rateLimit == nil {
			f.rateLimit = &httplrlv3.LocalRateLimit{StatPrefix: statPrefix}
		}
	}
	for _, vh := range rc.GetVirtualHosts() {
		use(vh.TypedPerFilterConfig)
		for _, r := range vh.Routes {
			use(r.TypedPerFilterConfig)
		}
	}
}

// httpFilters is the connection manager's chain, in this order:
//
//   - grpc_web first, as in Envoy's gRPC-Web examples: every filter after
//     it sees a plain gRPC call, so the local replies of fault and
//     local_ratelimit are gRPC responses, and grpc_web, whose encoder runs
//     last, turns them into gRPC-Web for the browser.
//   - cors next, also as in those examples: it answers a preflight before
//     a fault or an empty bucket can fail it, and its encoder adds the
//     access-control headers to the local replies of the filters after
//     it, so that a browser can read a 429 or an injected abort.
//   - fault before local_ratelimit: an injected abort stands for a
//     failing upstream and takes no token; the rate limit guards the
//     upstream, so it sits just before the router.
//   - the router last, as Envoy requires.
func (f hcmFilters) httpFilters() []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	add := func(name string, cfg *anypb.Any) {
		out = append(out, &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}})
	}
	if f.grpcWeb {
		add(GRPCWebFilterName, mustAny(&grpcwebv3.GrpcWeb{}))
	}
	if f.cors {
		add(CORSFilterName, mustAny(&corsv3.Cors{}))
	}
	if f.fault != nil {
		add(FaultFilterName, mustAny(f.fault))
	}
	if f.rateLimit != nil {
		add(LocalRateLimitFilterName, mustAny(f.rateLimit))
	}
	add(RouterFilterName, mustAny(&routerv3.Router{}))
	return out
}

// faultConfig translates a fault. headerControlled fills in the part
// (delay, abort) the fault does not configure with Envoy's header_delay
// or header_abort at 100%, so that a request's x-envoy-fault-* headers
// choose the fault (and may lower the percentage); Envoy's FaultDelay and
// FaultAbort hold one source each, so a configured part wins.
func faultConfig(f *v1alpha1.Fault) *faultv3.HTTPFault {
	if f == nil {
		return nil
	}
	out := &faultv3.HTTPFault{}
	switch {
	case f.Delay != nil:
		out.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: toDuration(f.Delay.FixedDelay)},
			Percentage:         fractionalPercent(f.Delay.Percentage),
		}
	case f.HeaderControlled:
		out.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_HeaderDelay_{HeaderDelay: &commonfaultv3.FaultDelay_HeaderDelay{}},
			Percentage:         fractionalPercent(nil),
		}
	}
	switch a := f.Abort; {
	case a != nil:
		out.Abort = &faultv3.FaultAbort{Percentage: fractionalPercent(a.Percentage)}
		if a.GRPCStatus != 0 {
			out.Abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: uint32(a.GRPCStatus)}
		} else {
			out.Abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(a.HTTPStatus)}
		}
	case f.HeaderControlled:
		out.Abort = &faultv3.FaultAbort{
			ErrorType:  &faultv3.FaultAbort_HeaderAbort_{HeaderAbort: &faultv3.FaultAbort_HeaderAbort{}},
			Percentage: fractionalPercent(nil),
		}
	}
	return out
}

// fractionalPercent is a percentage of 0-100 (100 when unset): in
// hundredths when whole, else in millionths, rounded.
func fractionalPercent(p *float64) *typev3.FractionalPercent {
	v := 100.0
	if p != nil {
		v = *p
	}
	if v == math.Trunc(v) {
		return &typev3.FractionalPercent{Numerator: uint32(v), Denominator: typev3.FractionalPercent_HUNDRED}
	}
	return &typev3.FractionalPercent{Numerator: uint32(math.Round(v * 10000)), Denominator: typev3.FractionalPercent_MILLION}
}

// rateLimitConfig translates a token bucket into Envoy's HTTP local rate
// limit, enabled and enforced for every request. Envoy answers a request
// that finds no token with 429 and x-envoy-ratelimited; Retry-After is
// enable_retry_after_header (the seconds until the bucket has a token
// again); a gRPC call gets RESOURCE_EXHAUSTED, the code gRPC gives to an
// exhausted quota, rather than UNAVAILABLE, which clients retry.
func rateLimitConfig(statPrefix string, rl *v1alpha1.RateLimit) *httplrlv3.LocalRateLimit {
	if rl == nil {
		return nil
	}
	all := func(key string) *corev3.RuntimeFractionalPercent {
		return &corev3.RuntimeFractionalPercent{
			RuntimeKey:   key,
			DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED},
		}
	}
	return &httplrlv3.LocalRateLimit{
		StatPrefix:                     statPrefix,
		TokenBucket:                    tokenBucket(rl),
		FilterEnabled:                  all(rateLimitEnabledKey),
		FilterEnforced:                 all(rateLimitEnforcedKey),
		EnableRetryAfterHeader:         true,
		RateLimitedAsResourceExhausted: true,
	}
}

// tokenBucket is Envoy's token bucket; tokensPerFill defaults to
// maxTokens, so that {maxTokens: 100, fillInterval: 1s} is 100 a second.
func tokenBucket(rl *v1alpha1.RateLimit) *typev3.TokenBucket {
	perFill := rl.TokensPerFill
	if perFill == 0 {
		perFill = rl.MaxTokens
	}
	return &typev3.TokenBucket{
		MaxTokens:     uint32(rl.MaxTokens),
		TokensPerFill: wrapperspb.UInt32(uint32(perFill)),
		FillInterval:  toDuration(rl.FillInterval),
	}
}

// networkRateLimitFilter limits the connections a TCP listener accepts:
// each takes a token, and one that finds none is closed.
func networkRateLimitFilter(statPrefix string, rl *v1alpha1.RateLimit) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: NetworkRateLimitFilterName,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&netlrlv3.LocalRateLimit{
			StatPrefix:  statPrefix,
			TokenBucket: tokenBucket(rl),
		})},
	}
}

// corsPolicy translates a CORS policy into the per-route configuration of
// Envoy's CORS filter. Lists become the comma-separated header values;
// the max age is in seconds, as access-control-max-age counts them.
func corsPolicy(c *v1alpha1.CORSPolicy) *corsv3.CorsPolicy {
	if c == nil {
		return nil
	}
	out := &corsv3.CorsPolicy{
		AllowMethods:  strings.Join(c.AllowMethods, ","),
		AllowHeaders:  strings.Join(c.AllowHeaders, ","),
		ExposeHeaders: strings.Join(c.ExposeHeaders, ","),
	}
	for _, o := range c.AllowOrigins {
		sm := &matcherv3.StringMatcher{}
		switch {
		case o.Exact != "":
			sm.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: o.Exact}
		case o.Prefix != "":
			sm.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: o.Prefix}
		case o.Regex != "":
			sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: o.Regex}}
		default:
			continue
		}
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, sm)
	}
	if d := toDuration(c.MaxAge); d != nil {
		out.MaxAge = strconv.FormatInt(int64(d.AsDuration()/time.Second), 10)
	}
	if c.AllowCredentials {
		out.AllowCredentials = wrapperspb.Bool(true)
	}
	return out
}

// routeStatPrefix and gatewayRouteStatPrefix name the stats of a route's
// own rate limit: route.<router>.<route> and gateway_route.<name>.
func routeStatPrefix(k v1alpha1.Key) string { return "route." + k.Parent + "." + k.Name }

func gatewayRouteStatPrefix(name string) string { return "gateway_route." + name }

// routeFilterConfig is a route's typed_per_filter_config for a flavour:
// the route's fault and rate limit. Proxyless gRPC clients implement the
// fault filter (gRFC A33) but no local rate limit, and refuse a
// configuration for a filter they do not know, so they get the fault
// alone. nil when the route configures neither.
func routeFilterConfig(fl Flavour, fault, rateLimit *anypb.Any) map[string]*anypb.Any {
	var m map[string]*anypb.Any
	add := func(name string, cfg *anypb.Any) {
		if cfg == nil {
			return
		}
		if m == nil {
			m = map[string]*anypb.Any{}
		}
		m[name] = cfg
	}
	add(FaultFilterName, fault)
	if fl != FlavourProxyless {
		add(LocalRateLimitFilterName, rateLimit)
	}
	return m
}

// anyOrNil packs a filter configuration, or returns nil for nil.
func anyOrNil[M interface {
	*faultv3.HTTPFault | *httplrlv3.LocalRateLimit | *corsv3.CorsPolicy
}](m M) *anypb.Any {
	if m == nil {
		return nil
	}
	return mustAny(any(m).(proto.Message))
}
