package v1alpha1

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"time"
)

// Validation of the meshlens extension (meshlens.go). The bounds are
// Envoy's where Envoy has them (HTTP statuses 200-599, a token bucket
// refilled at most every 50 ms, token counts that fit its uint32) and
// otherwise chosen so that a typo cannot take a service down for days.

// The limits of the meshlens extension.
const (
	maxFaultDelay      = time.Hour
	minFillInterval    = 50 * time.Millisecond
	maxFillInterval    = 24 * time.Hour
	maxCORSMaxAge      = 24 * time.Hour
	maxTokens          = math.MaxUint32
	maxCORSEntries     = 50
	maxCORSTokenLength = 256
	maxTracingTags     = 20
	maxTracingTagBytes = 256
	minAbortHTTPStatus = 200
	maxAbortHTTPStatus = 599
	minAbortGRPCStatus = 1 // 0 is OK, which aborts nothing
	maxAbortGRPCStatus = 16
	percentageDecimals = 4
	percentageGranules = 10000 // 10^percentageDecimals
)

// routeMeshlens checks the extension of a Route's http, http2 or grpc
// route.
func (v *validator) routeMeshlens(p string, m *RouteMeshlens) {
	if m == nil {
		return
	}
	p = field(p, "meshlens")
	if m.Fault != nil {
		v.fault(field(p, "fault"), m.Fault)
	}
	if m.RateLimit != nil {
		v.rateLimit(field(p, "rateLimit"), m.RateLimit)
	}
	if m.Tracing != nil {
		v.percentage(field(p, "tracing.samplingPercentage"), m.Tracing.SamplingPercentage)
	}
}

// listenerMeshlens checks the extension of a virtual node's listener;
// protocol is the listener's ("" when its port mapping is invalid).
func (v *validator) listenerMeshlens(p, protocol string, m *ListenerMeshlens) {
	if m == nil {
		return
	}
	p = field(p, "meshlens")
	if m.Fault != nil {
		if protocol == "tcp" {
			v.add(field(p, "fault"), "applies only to http, http2 and grpc listeners")
		}
		v.fault(field(p, "fault"), m.Fault)
	}
	if m.RateLimit != nil {
		v.rateLimit(field(p, "rateLimit"), m.RateLimit)
	}
}

// gatewayRouteMeshlens checks the extension of a gateway route.
func (v *validator) gatewayRouteMeshlens(p string, m *GatewayRouteMeshlens) {
	if m == nil {
		return
	}
	p = field(p, "meshlens")
	if m.CORS != nil {
		v.cors(field(p, "cors"), m.CORS)
	}
	if m.RateLimit != nil {
		v.rateLimit(field(p, "rateLimit"), m.RateLimit)
	}
}

// gatewayListenerMeshlens checks the extension of a gateway's listener.
func (v *validator) gatewayListenerMeshlens(p string, m *GatewayListenerMeshlens) {
	if m == nil {
		return
	}
	p = field(p, "meshlens")
	if m.CORS != nil {
		v.cors(field(p, "cors"), m.CORS)
	}
	if m.RateLimit != nil {
		v.rateLimit(field(p, "rateLimit"), m.RateLimit)
	}
}

func (v *validator) fault(p string, f *Fault) {
	if f.Delay == nil && f.Abort == nil && !f.HeaderControlled {
		v.add(p, "must set at least one of delay, abort, headerControlled")
	}
	if d := f.Delay; d != nil {
		dp := field(p, "delay")
		v.boundedDuration(field(dp, "fixedDelay"), d.FixedDelay, time.Millisecond, maxFaultDelay)
		v.percentage(field(dp, "percentage"), d.Percentage)
	}
	if a := f.Abort; a != nil {
		ap := field(p, "abort")
		which, ok := v.union(ap, []string{"httpStatus", "grpcStatus"}, a.HTTPStatus != 0, a.GRPCStatus != 0)
		switch {
		case ok && which == 0:
			v.between(field(ap, "httpStatus"), int64(a.HTTPStatus), minAbortHTTPStatus, maxAbortHTTPStatus)
		case ok && which == 1:
			v.between(field(ap, "grpcStatus"), int64(a.GRPCStatus), minAbortGRPCStatus, maxAbortGRPCStatus)
		}
		v.percentage(field(ap, "percentage"), a.Percentage)
	}
}

// percentage checks an optional share of requests: 0-100 with at most
// four decimals, the precision of Envoy's FractionalPercent in millionths.
func (v *validator) percentage(p string, pct *float64) {
	if pct == nil {
		return
	}
	x := *pct
	if math.IsNaN(x) || x < 0 || x > 100 {
		v.add(p, "must be between 0 and 100")
		return
	}
	if g := x * percentageGranules; math.Abs(g-math.Round(g)) > 1e-6 {
		v.add(p, "must have at most %d decimal places", percentageDecimals)
	}
}

func (v *validator) rateLimit(p string, r *RateLimit) {
	v.between(field(p, "maxTokens"), r.MaxTokens, 1, maxTokens)
	if r.TokensPerFill != 0 {
		v.between(field(p, "tokensPerFill"), r.TokensPerFill, 1, maxTokens)
	}
	v.boundedDuration(field(p, "fillInterval"), r.FillInterval, minFillInterval, maxFillInterval)
}

func (v *validator) cors(p string, c *CORSPolicy) {
	op := field(p, "allowOrigins")
	if len(c.AllowOrigins) == 0 || len(c.AllowOrigins) > maxCORSEntries {
		v.add(op, "must have between 1 and %d origins", maxCORSEntries)
	}
	for i, o := range c.AllowOrigins {
		ip := index(op, i)
		which, ok := v.union(ip, []string{"exact", "prefix", "regex"}, o.Exact != "", o.Prefix != "", o.Regex != "")
		if ok && which == 2 {
			v.regex(field(ip, "regex"), o.Regex)
		}
	}
	v.tokens(field(p, "allowMethods"), c.AllowMethods)
	v.tokens(field(p, "allowHeaders"), c.AllowHeaders)
	v.tokens(field(p, "exposeHeaders"), c.ExposeHeaders)
	if c.MaxAge != nil {
		mp := field(p, "maxAge")
		v.boundedDuration(mp, c.MaxAge, 0, maxCORSMaxAge)
		if c.MaxAge.Unit == "ms" && c.MaxAge.Value != nil && *c.MaxAge.Value%1000 != 0 {
			v.add(mp, "must be whole seconds (access-control-max-age counts seconds)")
		}
	}
}

// tokens checks a list of HTTP method or header names: each an HTTP token
// (RFC 9110's tchar), because they are sent joined with commas.
func (v *validator) tokens(p string, list []string) {
	if len(list) > maxCORSEntries {
		v.add(p, "must have at most %d entries", maxCORSEntries)
	}
	for i, s := range list {
		switch {
		case s == "":
			v.add(index(p, i), "must not be empty")
		case len(s) > maxCORSTokenLength:
			v.add(index(p, i), "must be at most %d characters", maxCORSTokenLength)
		case !isToken(s):
			v.add(index(p, i), "must be an HTTP token (letters, digits and !#$%%&'*+-.^_`|~), not %q", s)
		}
	}
}

func isToken(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') && !containsByte("!#$%&'*+-.^_`|~", c) {
			return false
		}
	}
	return true
}

func containsByte(s string, c byte) bool {
	for i := range len(s) {
		if s[i] == c {
			return true
		}
	}
	return false
}

// boundedDuration checks a required duration between lo and hi
// inclusive (lo 0 allows zero; otherwise it must be positive).
func (v *validator) boundedDuration(p string, d *Duration, lo, hi time.Duration) {
	if d == nil {
		v.required(p)
		return
	}
	if !v.enum(field(p, "unit"), d.Unit, durationUnits) {
		return
	}
	if d.Value == nil {
		v.required(field(p, "value"))
		return
	}
	unit := time.Second
	if d.Unit == "ms" {
		unit = time.Millisecond
	}
	n := *d.Value
	if n < 0 || n > int64(hi/unit) || time.Duration(n)*unit < lo {
		v.add(field(p, "value"), "must be between %s and %s", humanDuration(lo), humanDuration(hi))
	}
}

// humanDuration writes a bound in App Mesh's units: whole seconds as "s",
// anything else as "ms".
func humanDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + " s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + " ms"
}

// nodeMeshlens checks the extension of a virtual node's or gateway's
// spec.
func (v *validator) nodeMeshlens(p string, m *NodeMeshlens) {
	if m == nil || m.Tracing == nil {
		return
	}
	v.percentage(field(p, "meshlens.tracing.samplingPercentage"), m.Tracing.SamplingPercentage)
}

// tracingProviders are the values of spec.meshlens.tracing.provider.
var tracingProviders = []string{TracingBuiltin, TracingOTLP, TracingZipkin, TracingXRay, TracingNone}

// meshMeshlens checks the extension of a Mesh's spec.
func (v *validator) meshMeshlens(p string, m *MeshMeshlens) {
	if m == nil || m.Tracing == nil {
		return
	}
	p = field(field(p, "meshlens"), "tracing")
	t := m.Tracing
	provider := t.Provider
	if provider == "" {
		provider = TracingBuiltin
	}
	if !v.enum(field(p, "provider"), provider, tracingProviders) {
		return
	}
	ep := field(p, "endpoint")
	switch provider {
	case TracingOTLP, TracingZipkin:
		if t.Endpoint == "" {
			v.add(ep, "is required for provider %s", provider)
		}
	case TracingBuiltin, TracingNone:
		if t.Endpoint != "" {
			v.add(ep, "must be empty for provider %s", provider)
		}
	}
	if t.Endpoint != "" {
		if msg := checkHostPort(t.Endpoint); msg != "" {
			v.add(ep, "%s", msg)
		} else if host, _, _ := net.SplitHostPort(t.Endpoint); provider == TracingXRay && net.ParseIP(host) == nil {
			// Envoy's XRayConfig takes a socket address, which it
			// does not resolve.
			v.add(ep, "must be an IP address and port for provider xray (the X-Ray daemon's UDP address), not %q", t.Endpoint)
		}
	}
	v.percentage(field(p, "samplingPercentage"), t.SamplingPercentage)
	if t.SamplingRuleManifest != "" && provider != TracingXRay {
		v.add(field(p, "samplingRuleManifest"), "applies only to provider xray")
	}
	tp := field(p, "customTags")
	if len(t.CustomTags) > maxTracingTags {
		v.add(tp, "must have at most %d tags", maxTracingTags)
	}
	seen := map[string]int{}
	for i, tag := range t.CustomTags {
		ip := index(tp, i)
		switch {
		case tag.Tag == "":
			v.required(field(ip, "tag"))
		case len(tag.Tag) > maxTracingTagBytes:
			v.add(field(ip, "tag"), "must be at most %d characters", maxTracingTagBytes)
		default:
			if j, dup := seen[tag.Tag]; dup {
				v.add(field(ip, "tag"), "duplicate tag %q (also customTags[%d])", tag.Tag, j)
			}
			seen[tag.Tag] = i
		}
		if len(tag.Literal) > maxTracingTagBytes {
			v.add(field(ip, "literal"), "must be at most %d characters", maxTracingTagBytes)
		}
		which, ok := v.union(ip, []string{"literal", "requestHeader"}, tag.Literal != "", tag.RequestHeader != nil)
		if ok && which == 1 {
			h := tag.RequestHeader
			switch {
			case h.Name == "":
				v.required(field(ip, "requestHeader.name"))
			case !isToken(h.Name) || len(h.Name) > maxTracingTagBytes:
				v.add(field(ip, "requestHeader.name"), "must be an HTTP header name of at most %d characters, not %q", maxTracingTagBytes, h.Name)
			}
			if len(h.DefaultValue) > maxTracingTagBytes {
				v.add(field(ip, "requestHeader.defaultValue"), "must be at most %d characters", maxTracingTagBytes)
			}
		}
	}
}

// checkHostPort says what is wrong with a host:port collector address,
// or returns "".
func checkHostPort(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Sprintf("must be host:port, not %q", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("must be host:port with a port 1-65535, not %q", s)
	}
	if net.ParseIP(host) == nil {
		if msg := nameProblem(KindVirtualService, host); msg != "" {
			return "host " + msg
		}
	}
	return ""
}
