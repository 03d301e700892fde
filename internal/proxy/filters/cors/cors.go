// Package cors is the data-plane runtime of Envoy's CORS filter
// (envoy.filters.http.cors, filter config
// envoy.extensions.filters.http.cors.v3.Cors, per-route and per-virtual-host
// policy envoy.extensions.filters.http.cors.v3.CorsPolicy in
// typed_per_filter_config).
//
// Behaviour, as Envoy's: a request without an Origin header is not a CORS
// request and is left alone (and not counted). An Origin that no
// allow_origin_string_match accepts is counted as origin_invalid and the
// request goes on without CORS headers (a preflight with such an origin is
// forwarded upstream too, unless forward_not_matching_preflights is
// false, in which case it is answered 200 without
// Access-Control-Allow-Origin). With an
// accepted origin (origin_valid), a preflight (OPTIONS with
// Access-Control-Request-Method) is answered locally with 200 and the
// allow-* headers and max-age; any other request is forwarded and its
// response gets Access-Control-Allow-Origin (the request's origin, echoed),
// -Allow-Credentials and -Expose-Headers.
//
// Use: DecodeFilter checks the listener's (empty) Cors config; DecodePolicy
// compiles each route's and virtual host's CorsPolicy; Merge combines them
// most specific first, field by field, as Envoy resolves them. Per request
// Filter.Check classifies the request (and counts); Policy.Preflight fills
// the local reply's headers and Policy.ResponseHeaders the forwarded
// response's.
//
// filter_enabled and shadow_enabled use their default_value (meshlens has
// no runtime layer); a policy without filter_enabled is enabled, as in
// Envoy.
package cors

import (
	"errors"
	"fmt"
	"net/http"

	corsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/cors/v3"
	"golang.org/x/net/http/httpguts"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlens/meshlens/internal/proxy/filters/percent"
	"github.com/meshlens/meshlens/internal/proxy/filters/strmatch"
	"github.com/meshlens/meshlens/internal/stats"
)

// Type URLs of the filter's typed_config and of the per-route policy.
const (
	FilterTypeURL = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"
	PolicyTypeURL = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
	Name          = "envoy.filters.http.cors"
)

// Header names, in canonical MIME form.
const (
	HeaderOrigin                    = "Origin"
	HeaderRequestMethod             = "Access-Control-Request-Method"
	HeaderRequestHeaders            = "Access-Control-Request-Headers"
	HeaderRequestPrivateNetwork     = "Access-Control-Request-Private-Network"
	HeaderAllowOrigin               = "Access-Control-Allow-Origin"
	HeaderAllowCredentials          = "Access-Control-Allow-Credentials"
	HeaderAllowMethods              = "Access-Control-Allow-Methods"
	HeaderAllowHeaders              = "Access-Control-Allow-Headers"
	HeaderExposeHeaders             = "Access-Control-Expose-Headers"
	HeaderMaxAge                    = "Access-Control-Max-Age"
	HeaderAllowPrivateNetworkAccess = "Access-Control-Allow-Private-Network"
)

// DecodeFilter checks the filter's typed_config, an (empty) Cors message.
func DecodeFilter(a *anypb.Any) error {
	if a == nil {
		return errors.New("cors: typed_config: missing")
	}
	if a.GetTypeUrl() != FilterTypeURL {
		return fmt.Errorf("cors: typed_config: type %q, want %q", a.GetTypeUrl(), FilterTypeURL)
	}
	var m corsv3.Cors
	if err := m.Unmarshal(a.GetValue()); err != nil {
		return fmt.Errorf("cors: typed_config: %w", err)
	}
	return nil
}

// optBool is a BoolValue: unset, false or true.
type optBool uint8

const (
	unset optBool = iota
	no
	yes
)

// Policy is a compiled CorsPolicy, or the Merge of several. It is
// immutable and safe for concurrent use.
type Policy struct {
	origins        []strmatch.Matcher
	hasOrigins     bool
	allowMethods   string
	allowHeaders   string
	exposeHeaders  string
	maxAge         string
	credentials    optBool
	privateNetwork optBool
	forwardNoMatch optBool
	enabled        *percent.Fraction
	shadow         *percent.Fraction
}

// DecodePolicy compiles a CorsPolicy carried in an Any (a route's or a
// virtual host's typed_per_filter_config).
func DecodePolicy(a *anypb.Any) (*Policy, error) {
	if a == nil {
		return nil, errors.New("cors: policy: missing")
	}
	if a.GetTypeUrl() != PolicyTypeURL {
		return nil, fmt.Errorf("cors: policy: type %q, want %q", a.GetTypeUrl(), PolicyTypeURL)
	}
	var m corsv3.CorsPolicy
	if err := m.Unmarshal(a.GetValue()); err != nil {
		return nil, fmt.Errorf("cors: policy: %w", err)
	}
	return CompilePolicy(&m)
}

// CompilePolicy compiles a typed CorsPolicy. Errors name the field.
func CompilePolicy(m *corsv3.CorsPolicy) (*Policy, error) {
	p, err := compilePolicy(m)
	if err != nil {
		return nil, fmt.Errorf("cors: %w", err)
	}
	return p, nil
}

func compilePolicy(m *corsv3.CorsPolicy) (*Policy, error) {
	if m == nil {
		return nil, errors.New("policy missing")
	}
	p := &Policy{}
	for i, o := range m.GetAllowOriginStringMatch() {
		sm, err := strmatch.Compile(o, fmt.Sprintf("allow_origin_string_match[%d]", i))
		if err != nil {
			return nil, err
		}
		p.origins = append(p.origins, sm)
	}
	p.hasOrigins = len(p.origins) > 0
	for _, f := range []struct {
		name string
		v    string
		dst  *string
	}{
		{"allow_methods", m.GetAllowMethods(), &p.allowMethods},
		{"allow_headers", m.GetAllowHeaders(), &p.allowHeaders},
		{"expose_headers", m.GetExposeHeaders(), &p.exposeHeaders},
		{"max_age", m.GetMaxAge(), &p.maxAge},
	} {
		if !httpguts.ValidHeaderFieldValue(f.v) {
			return nil, fmt.Errorf("%s: %q is not a valid header value", f.name, f.v)
		}
		*f.dst = f.v
	}
	for i := 0; i < len(p.maxAge); i++ {
		if c := p.maxAge[i]; c < '0' || c > '9' {
			return nil, fmt.Errorf("max_age: %q is not a number of seconds", p.maxAge)
		}
	}
	p.credentials = opt(m.GetAllowCredentials() != nil, m.GetAllowCredentials().GetValue())
	p.privateNetwork = opt(m.GetAllowPrivateNetworkAccess() != nil, m.GetAllowPrivateNetworkAccess().GetValue())
	p.forwardNoMatch = opt(m.GetForwardNotMatchingPreflights() != nil, m.GetForwardNotMatchingPreflights().GetValue())
	if fe := m.GetFilterEnabled(); fe != nil {
		f, err := percent.FromRuntime(fe, percent.All, "filter_enabled")
		if err != nil {
			return nil, err
		}
		p.enabled = &f
	}
	if se := m.GetShadowEnabled(); se != nil {
		f, err := percent.FromRuntime(se, percent.None, "shadow_enabled")
		if err != nil {
			return nil, err
		}
		p.shadow = &f
	}
	return p, nil
}

func opt(set, v bool) optBool {
	switch {
	case !set:
		return unset
	case v:
		return yes
	}
	return no
}

// Merge combines policies given most specific first (route, then virtual
// host): each field comes from the first policy that sets it, except
// filter_enabled and shadow_enabled, which come from the first policy, as
// Envoy's CORS filter resolves them. nil policies are skipped; Merge of none is
// nil, which Check treats as "no CORS".
func Merge(policies ...*Policy) *Policy {
	var out *Policy
	n := 0
	for _, p := range policies {
		if p != nil {
			n++
			if out == nil {
				out = p
			}
		}
	}
	if n <= 1 {
		return out
	}
	// filter_enabled and shadow_enabled come from the most specific policy
	// alone, set or not (unset filter_enabled means enabled), as in Envoy.
	m := &Policy{enabled: out.enabled, shadow: out.shadow}
	for _, p := range policies {
		if p == nil {
			continue
		}
		if !m.hasOrigins && p.hasOrigins {
			m.origins, m.hasOrigins = p.origins, true
		}
		first(&m.allowMethods, p.allowMethods)
		first(&m.allowHeaders, p.allowHeaders)
		first(&m.exposeHeaders, p.exposeHeaders)
		first(&m.maxAge, p.maxAge)
		if m.credentials == unset {
			m.credentials = p.credentials
		}
		if m.privateNetwork == unset {
			m.privateNetwork = p.privateNetwork
		}
		if m.forwardNoMatch == unset {
			m.forwardNoMatch = p.forwardNoMatch
		}
	}
	return m
}

func first(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// originAllowed is Envoy's check: a matcher that accepts "*" accepts every
// origin.
func (p *Policy) originAllowed(origin string) bool {
	for i := range p.origins {
		if p.origins[i].Match("*") || p.origins[i].Match(origin) {
			return true
		}
	}
	return false
}

// StatsPrefix is the scope prefix of the filter's stats, given the HTTP
// connection manager's stat_prefix: http.<stat_prefix>.cors.
func StatsPrefix(hcmStatPrefix string) string { return "http." + hcmStatPrefix + ".cors." }

// Stats are the filter's counters, with Envoy's names.
type Stats struct {
	OriginValid   *stats.Counter // origin_valid
	OriginInvalid *stats.Counter // origin_invalid
}

// NewStats creates the stats in sc (acquired at StatsPrefix, released by
// the caller). nil gives no-ops.
func NewStats(sc *stats.Scope) Stats {
	if sc == nil {
		return Stats{}
	}
	return Stats{OriginValid: sc.Counter("origin_valid"), OriginInvalid: sc.Counter("origin_invalid")}
}

// Filter is the per-listener state of the filter: its stats.
type Filter struct{ stats Stats }

// NewFilter returns the filter for one listener.
func NewFilter(s Stats) *Filter { return &Filter{stats: s} }

// HeaderGetter reads a request header by canonical MIME name; http.Header
// satisfies it.
type HeaderGetter interface {
	Get(key string) string
}

// Kind is what the filter does with a request.
type Kind uint8

const (
	// None: not a CORS request for this filter; forward it untouched.
	None Kind = iota
	// Actual: forward it; add Policy.ResponseHeaders to its response.
	Actual
	// Preflight: answer locally with 200 and Policy.Preflight's headers.
	Preflight
	// RejectedPreflight: a preflight from an origin not allowed, with
	// forward_not_matching_preflights false: answer locally with 200 and
	// Policy.Preflight's headers, which then lack
	// Access-Control-Allow-Origin, so the browser refuses the call.
	RejectedPreflight
)

// Result is Check's verdict. Origin is the request's Origin, echoed in
// Access-Control-Allow-Origin.
type Result struct {
	Kind   Kind
	Origin string
}

// Check classifies one request under policy p (Merge of the route's and
// virtual host's; nil: no CORS) and counts origin_valid/origin_invalid.
// method is the request method; rnd one random draw for filter_enabled
// and shadow_enabled. It does not allocate.
func (f *Filter) Check(p *Policy, method string, h HeaderGetter, rnd uint64) Result {
	if p == nil {
		return Result{}
	}
	enabled := p.enabled == nil || p.enabled.Hit(rnd)
	shadow := p.shadow != nil && p.shadow.Hit(percent.Mix(rnd))
	if !enabled && !shadow {
		return Result{}
	}
	origin := h.Get(HeaderOrigin)
	if origin == "" {
		return Result{}
	}
	preflight := method == http.MethodOptions && h.Get(HeaderRequestMethod) != ""
	if !p.originAllowed(origin) {
		f.stats.OriginInvalid.Inc()
		if enabled && preflight && p.forwardNoMatch == no {
			return Result{Kind: RejectedPreflight}
		}
		return Result{}
	}
	f.stats.OriginValid.Inc()
	if !enabled {
		return Result{} // shadow mode: counted, not enforced
	}
	if preflight {
		return Result{Kind: Preflight, Origin: origin}
	}
	return Result{Kind: Actual, Origin: origin}
}

// Preflight sets the headers of the local 200 reply to a Preflight or
// RejectedPreflight result: Access-Control-Allow-Origin (the origin, for
// Preflight only), -Allow-Credentials, -Allow-Methods, -Allow-Headers
// (a configured "*" echoes the request's Access-Control-Request-Method or
// -Headers, as Envoy does), -Max-Age, and
// Access-Control-Allow-Private-Network when allowed and asked for (req is
// the preflight's request headers). It does nothing for other kinds.
func (p *Policy) Preflight(r Result, req HeaderGetter, h http.Header) {
	if (r.Kind != Preflight && r.Kind != RejectedPreflight) || p == nil {
		return
	}
	if r.Kind == Preflight {
		h.Set(HeaderAllowOrigin, r.Origin)
	}
	if p.credentials == yes {
		h.Set(HeaderAllowCredentials, "true")
	}
	switch p.allowMethods {
	case "":
	case "*":
		h.Set(HeaderAllowMethods, req.Get(HeaderRequestMethod))
	default:
		h.Set(HeaderAllowMethods, p.allowMethods)
	}
	switch p.allowHeaders {
	case "":
	case "*":
		h.Set(HeaderAllowHeaders, req.Get(HeaderRequestHeaders))
	default:
		h.Set(HeaderAllowHeaders, p.allowHeaders)
	}
	if p.maxAge != "" {
		h.Set(HeaderMaxAge, p.maxAge)
	}
	if p.privateNetwork == yes && req.Get(HeaderRequestPrivateNetwork) == "true" {
		h.Set(HeaderAllowPrivateNetworkAccess, "true")
	}
}

// ResponseHeaders adds the CORS headers to the upstream response of an
// Actual result: Access-Control-Allow-Origin (the origin), and
// -Allow-Credentials and -Expose-Headers when configured. It does nothing
// for other kinds.
func (p *Policy) ResponseHeaders(r Result, h http.Header) {
	if r.Kind != Actual || p == nil {
		return
	}
	h.Set(HeaderAllowOrigin, r.Origin)
	if p.credentials == yes {
		h.Set(HeaderAllowCredentials, "true")
	}
	if p.exposeHeaders != "" {
		h.Set(HeaderExposeHeaders, p.exposeHeaders)
	}
}
