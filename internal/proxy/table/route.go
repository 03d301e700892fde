package table

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"

	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
)

// Retry defaults, Envoy's.
const (
	defaultNumRetries   = 1
	retryBackoffMaxMult = 10
)

// retryOnNames maps Envoy's retry_on tokens to bits. Tokens meshlens does
// not implement (retriable-headers, http3-post-connect-failure) are
// ignored, as Envoy ignores unknown ones.
var retryOnNames = map[string]RetryOn{
	"5xx":                    Retry5xx,
	"gateway-error":          RetryGatewayError,
	"reset":                  RetryReset,
	"reset-before-request":   RetryResetBeforeRequest,
	"connect-failure":        RetryConnectFailure,
	"envoy-ratelimited":      RetryEnvoyRateLimited,
	"retriable-4xx":          RetryRetriable4xx,
	"refused-stream":         RetryRefusedStream,
	"retriable-status-codes": RetryRetriableStatusCodes,
	"cancelled":              RetryGRPCCancelled,
	"deadline-exceeded":      RetryGRPCDeadline,
	"internal":               RetryGRPCInternal,
	"resource-exhausted":     RetryGRPCResourceExhausted,
	"unavailable":            RetryGRPCUnavailable,
}

// emptyRouteTable stands in for a route configuration that never came:
// every request gets 404, as in Envoy.
func emptyRouteTable(name string) *RouteTable {
	rt := &RouteTable{Name: name}
	rt.idx.Store(buildIndex(nil))
	return rt
}

// routeTable compiles a route configuration. validateDefault is Envoy's
// default for validate_clusters: false for RDS, true for inline configs.
func (c *compiler) routeTable(rc *routev3.RouteConfiguration, validateDefault bool) (*RouteTable, error) {
	if err := rc.Validate(); err != nil {
		return nil, err
	}
	switch {
	case rc.GetVhds() != nil:
		return nil, errors.New("vhds " + errNotSupported)
	case rc.GetVhostHeader() != "":
		return nil, errors.New("vhost_header " + errNotSupported)
	case rc.GetIgnorePathParametersInPathMatching():
		return nil, errors.New("ignore_path_parameters_in_path_matching " + errNotSupported)
	case len(rc.GetRouteSpecifiers()) > 0:
		return nil, errors.New("route_specifiers " + errNotSupported)
	}
	validate := validateDefault
	if v := rc.GetValidateClusters(); v != nil {
		validate = v.GetValue()
	}
	rt := emptyRouteTable(rc.GetName())
	rt.IgnorePortInHostMatching = rc.GetIgnorePortInHostMatching()
	rcFilters, err := c.perFilter(rc.GetTypedPerFilterConfig())
	if err != nil {
		return nil, err
	}
	domainOwner := map[string]int{}
	for i, vh := range rc.GetVirtualHosts() {
		field := fmt.Sprintf("virtual_hosts[%d]", i)
		out, err := c.virtualHost(vh, validate, rcFilters)
		if err != nil {
			return nil, fmt.Errorf("%s%w", field, err)
		}
		for _, d := range out.Domains {
			ld := strings.ToLower(d)
			if j, dup := domainOwner[ld]; dup {
				return nil, fmt.Errorf("%s: domain %q is already used by virtual_hosts[%d]", field, d, j)
			}
			domainOwner[ld] = i
		}
		rt.VirtualHosts = append(rt.VirtualHosts, out)
	}
	rt.idx.Store(buildIndex(rt.VirtualHosts))
	return rt, nil
}

// virtualHost, route and routeMatch return errors that start with the
// rest of a field path (".routes[2].match.safe_regex: ...") so that their
// caller only prefixes its own field.
func (c *compiler) virtualHost(vh *routev3.VirtualHost, validate bool, rcFilters *chain.Route) (*VirtualHost, error) {
	switch {
	case vh.GetRequireTls() != routev3.VirtualHost_NONE:
		return nil, errors.New(".require_tls " + errNotSupported)
	case vh.GetMatcher() != nil:
		return nil, errors.New(".matcher " + errNotSupported + "; use routes")
	case len(vh.GetRouteSpecifiers()) > 0:
		return nil, errors.New(".route_specifiers " + errNotSupported)
	}
	out := &VirtualHost{Name: vh.GetName(), Meta: meshMetadata(vh.GetMetadata())}
	for j, d := range vh.GetDomains() {
		if d != "*" && strings.Contains(strings.Trim(d, "*"), "*") || strings.HasPrefix(d, "*") && strings.HasSuffix(d, "*") && d != "*" {
			return nil, fmt.Errorf(".domains[%d]: %q: a wildcard is allowed only as the first or last character", j, d)
		}
		out.Domains = append(out.Domains, d)
	}
	if rp := vh.GetRetryPolicy(); rp != nil {
		r, err := retryPolicy(rp)
		if err != nil {
			return nil, fmt.Errorf(".retry_policy: %w", err)
		}
		out.Retry = r
	}
	vhFilters, err := c.perFilter(vh.GetTypedPerFilterConfig())
	if err != nil {
		return nil, fmt.Errorf(".%w", err)
	}
	for j, r := range vh.GetRoutes() {
		rt, err := c.route(r, out.Retry, validate)
		if err != nil {
			return nil, fmt.Errorf(".routes[%d]%w", j, err)
		}
		rf, err := c.perFilter(r.GetTypedPerFilterConfig())
		if err != nil {
			return nil, fmt.Errorf(".routes[%d].%w", j, err)
		}
		rt.Filters = chain.Combine(rf, vhFilters, rcFilters)
		if rt.Meta.VirtualService == "" {
			rt.Meta.VirtualService = out.Meta.VirtualService
		}
		out.Routes = append(out.Routes, rt)
	}
	return out, nil
}

func (c *compiler) route(r *routev3.Route, vhRetry *RetryPolicy, validate bool) (*Route, error) {
	if len(r.GetRouteSpecifiers()) > 0 {
		return nil, errors.New(".route_specifiers " + errNotSupported)
	}
	m, err := routeMatch(r.GetMatch())
	if err != nil {
		return nil, fmt.Errorf(".match%w", err)
	}
	out := &Route{Name: r.GetName(), Match: m, Meta: meshMetadata(r.GetMetadata())}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if err := c.routeAction(a.Route, out, vhRetry, validate); err != nil {
			return nil, fmt.Errorf(".route: %w", err)
		}
	case *routev3.Route_DirectResponse:
		out.DirectStatus = int(a.DirectResponse.GetStatus())
		if a.DirectResponse.GetBodyFormat() != nil {
			return nil, errors.New(".direct_response.body_format " + errNotSupported)
		}
		switch b := a.DirectResponse.GetBody().GetSpecifier().(type) {
		case nil:
		case *corev3.DataSource_InlineString:
			out.DirectBody = b.InlineString
		case *corev3.DataSource_InlineBytes:
			out.DirectBody = string(b.InlineBytes)
		default:
			return nil, errors.New(".direct_response.body: only inline bodies are supported")
		}
	case *routev3.Route_Redirect:
		return nil, errors.New(".redirect " + errNotSupported)
	default:
		return nil, errors.New(": only route and direct_response actions are supported")
	}
	if rs := r.GetTracing().GetRandomSampling(); rs != nil {
		v, err := fractionalPercent(rs)
		if err != nil {
			return nil, fmt.Errorf(".tracing.random_sampling: %w", err)
		}
		out.TracingPercent = &v
	}
	return out, nil
}

// routeMatch compiles a RouteMatch; its errors start with the field
// suffix (".safe_regex: ...") so that the caller prefixes "match".
func routeMatch(m *routev3.RouteMatch) (RouteMatch, error) {
	out := RouteMatch{CaseSensitive: true}
	if cs := m.GetCaseSensitive(); cs != nil {
		out.CaseSensitive = cs.GetValue()
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.kind, out.Prefix = pathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		out.kind, out.Path = pathExact, p.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(p.SafeRegex, true)
		if err != nil {
			return out, fmt.Errorf(".safe_regex: %w", err)
		}
		out.kind, out.PathRegex = pathRegex, re
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.kind, out.PathSeparated = pathSeparated, p.PathSeparatedPrefix
	case *routev3.RouteMatch_ConnectMatcher_:
		return out, errors.New(".connect_matcher " + errNotSupported)
	default:
		return out, errors.New(": path_match_policy " + errNotSupported)
	}
	switch {
	case m.GetRuntimeFraction() != nil:
		return out, errors.New(".runtime_fraction " + errNotSupported)
	case m.GetTlsContext() != nil:
		return out, errors.New(".tls_context " + errNotSupported)
	case len(m.GetDynamicMetadata()) > 0:
		return out, errors.New(".dynamic_metadata " + errNotSupported)
	case len(m.GetCookies()) > 0:
		return out, errors.New(".cookies " + errNotSupported)
	}
	for i, h := range m.GetHeaders() {
		hm, err := headerMatcher(h)
		if err != nil {
			return out, fmt.Errorf(".headers[%d]: %w", i, err)
		}
		out.Headers = append(out.Headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm, err := queryMatcher(q)
		if err != nil {
			return out, fmt.Errorf(".query_parameters[%d]: %w", i, err)
		}
		out.Query = append(out.Query, qm)
	}
	out.GRPC = m.GetGrpc() != nil
	return out, nil
}

func headerMatcher(h *routev3.HeaderMatcher) (HeaderMatcher, error) {
	name := strings.ToLower(h.GetName())
	if name == "host" {
		name = ":authority"
	}
	out := HeaderMatcher{Name: name, Invert: h.GetInvertMatch(), TreatMissingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		out.Present = ptr(true)
	case *routev3.HeaderMatcher_ExactMatch:
		out.Exact = ptr(s.ExactMatch)
	case *routev3.HeaderMatcher_PrefixMatch:
		out.Prefix = ptr(s.PrefixMatch)
	case *routev3.HeaderMatcher_SuffixMatch:
		out.Suffix = ptr(s.SuffixMatch)
	case *routev3.HeaderMatcher_ContainsMatch:
		out.Contains = ptr(s.ContainsMatch)
	case *routev3.HeaderMatcher_SafeRegexMatch:
		out.Regex, err = compileRegex(s.SafeRegexMatch, true)
		if err != nil {
			return out, fmt.Errorf("safe_regex_match: %w", err)
		}
	case *routev3.HeaderMatcher_RangeMatch:
		out.Range = &Int64Range{Start: s.RangeMatch.GetStart(), End: s.RangeMatch.GetEnd()}
	case *routev3.HeaderMatcher_PresentMatch:
		out.Present = ptr(s.PresentMatch)
	case *routev3.HeaderMatcher_StringMatch:
		var sm stringMatch
		sm, err = compileStringMatch(s.StringMatch)
		if err != nil {
			return out, fmt.Errorf("string_match%w", err)
		}
		out.Exact, out.Prefix, out.Suffix, out.Contains, out.Regex, out.IgnoreCase = sm.exact, sm.prefix, sm.suffix, sm.contains, sm.regex, sm.ignoreCase
	}
	return out, nil
}

func queryMatcher(q *routev3.QueryParameterMatcher) (QueryMatcher, error) {
	out := QueryMatcher{Name: q.GetName()}
	switch s := q.GetQueryParameterMatchSpecifier().(type) {
	case *routev3.QueryParameterMatcher_PresentMatch:
		out.Present, out.Absent = s.PresentMatch, !s.PresentMatch
	case *routev3.QueryParameterMatcher_StringMatch:
		sm, err := compileStringMatch(s.StringMatch)
		if err != nil {
			return out, fmt.Errorf("string_match%w", err)
		}
		out.Exact, out.Prefix, out.Suffix, out.Contains, out.Regex, out.IgnoreCase = sm.exact, sm.prefix, sm.suffix, sm.contains, sm.regex, sm.ignoreCase
	}
	return out, nil
}

// stringMatch is a compiled StringMatcher.
type stringMatch struct {
	exact, prefix, suffix, contains *string
	regex                           *regexp.Regexp
	ignoreCase                      bool
}

func compileStringMatch(m *matcherv3.StringMatcher) (stringMatch, error) {
	out := stringMatch{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.exact = ptr(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		out.prefix = ptr(p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		out.suffix = ptr(p.Suffix)
	case *matcherv3.StringMatcher_Contains:
		out.contains = ptr(p.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex, true)
		if err != nil {
			return out, fmt.Errorf(".safe_regex: %w", err)
		}
		out.regex = re
	default:
		return out, errors.New(": custom matchers are not supported")
	}
	return out, nil
}

// compileRegex compiles a RegexMatcher with Go's RE2. Envoy's regex
// matches are whole-string, hence anchored; a rewrite pattern is not.
// The pattern is checked on its own first, so that an error quotes it as
// the user wrote it.
func compileRegex(m *matcherv3.RegexMatcher, anchored bool) (*regexp.Regexp, error) {
	re, err := regexp.Compile(m.GetRegex())
	if err != nil || !anchored {
		return re, err
	}
	return regexp.Compile(`^(?:` + m.GetRegex() + `)$`)
}

func (c *compiler) routeAction(a *routev3.RouteAction, out *Route, vhRetry *RetryPolicy, validate bool) error {
	switch cs := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		cl, err := c.resolve(cs.Cluster, validate)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		out.Clusters = []WeightedCluster{{Name: cs.Cluster, Weight: 1, Cluster: cl}}
		out.TotalWeight = 1
	case *routev3.RouteAction_WeightedClusters:
		var total uint64
		for i, w := range cs.WeightedClusters.GetClusters() {
			if w.GetClusterHeader() != "" {
				return fmt.Errorf("weighted_clusters.clusters[%d].cluster_header "+errNotSupported, i)
			}
			if len(w.GetTypedPerFilterConfig()) > 0 {
				// The filters run before a cluster is picked.
				return fmt.Errorf("weighted_clusters.clusters[%d].typed_per_filter_config "+errNotSupported+"; configure the route", i)
			}
			cl, err := c.resolve(w.GetName(), validate)
			if err != nil {
				return fmt.Errorf("weighted_clusters.clusters[%d]: %w", i, err)
			}
			wt := w.GetWeight().GetValue()
			out.Clusters = append(out.Clusters, WeightedCluster{Name: w.GetName(), Weight: wt, Cluster: cl})
			total += uint64(wt)
		}
		if err := checkTotal(total); err != nil {
			return fmt.Errorf("weighted_clusters: %w", err)
		}
		out.TotalWeight = uint32(total)
	case *routev3.RouteAction_ClusterHeader:
		return errors.New("cluster_header " + errNotSupported)
	default:
		return errors.New("cluster specifier plugins are not supported; use cluster or weighted_clusters")
	}

	out.Timeout = duration(a.GetTimeout(), defaultRouteTimeout)
	out.IdleTimeout = a.GetIdleTimeout().AsDuration()
	out.Retry = vhRetry
	if rp := a.GetRetryPolicy(); rp != nil {
		r, err := retryPolicy(rp)
		if err != nil {
			return fmt.Errorf("retry_policy: %w", err)
		}
		out.Retry = r
	}

	switch {
	case a.GetPathRewritePolicy() != nil:
		return errors.New("path_rewrite_policy " + errNotSupported)
	case a.GetPathRewrite() != "":
		return errors.New("path_rewrite " + errNotSupported)
	case a.GetPrefixRewrite() != "" && a.GetRegexRewrite() != nil:
		return errors.New("prefix_rewrite and regex_rewrite are mutually exclusive")
	}
	out.PrefixRewrite = a.GetPrefixRewrite()
	if rr := a.GetRegexRewrite(); rr != nil {
		re, err := compileRegex(rr.GetPattern(), false)
		if err != nil {
			return fmt.Errorf("regex_rewrite.pattern: %w", err)
		}
		tmpl, err := expandTemplate(rr.GetSubstitution(), re.NumSubexp())
		if err != nil {
			return fmt.Errorf("regex_rewrite.substitution: %w", err)
		}
		out.RegexRewrite, out.RegexSubstitute, out.regexTemplate = re, rr.GetSubstitution(), tmpl
	}
	switch h := a.GetHostRewriteSpecifier().(type) {
	case nil:
	case *routev3.RouteAction_HostRewriteLiteral:
		out.HostRewrite = h.HostRewriteLiteral
	case *routev3.RouteAction_AutoHostRewrite:
		out.AutoHostRewrite = h.AutoHostRewrite.GetValue()
	default:
		return errors.New("only host_rewrite_literal and auto_host_rewrite are supported")
	}
	return nil
}

func retryPolicy(rp *routev3.RetryPolicy) (*RetryPolicy, error) {
	out := &RetryPolicy{
		NumRetries:           defaultNumRetries,
		PerTryTimeout:        rp.GetPerTryTimeout().AsDuration(),
		RetriableStatusCodes: rp.GetRetriableStatusCodes(),
		BackoffBase:          defaultRetryBase,
		BackoffMax:           defaultRetryBase * retryBackoffMaxMult,
	}
	for tok := range strings.SplitSeq(rp.GetRetryOn(), ",") {
		out.On |= retryOnNames[strings.TrimSpace(tok)]
	}
	if n := rp.GetNumRetries(); n != nil {
		out.NumRetries = n.GetValue()
	}
	if b := rp.GetRetryBackOff(); b != nil {
		out.BackoffBase = b.GetBaseInterval().AsDuration()
		out.BackoffMax = duration(b.GetMaxInterval(), out.BackoffBase*retryBackoffMaxMult)
		if out.BackoffMax < out.BackoffBase {
			return nil, errors.New("retry_back_off: max_interval must not be less than base_interval")
		}
	}
	return out, nil
}

// expandTemplate converts an RE2 rewrite string (\0..\9 name groups, \\ is
// a backslash) to regexp.Expand's syntax, checking the group numbers as
// RE2 does.
func expandTemplate(sub string, groups int) (string, error) {
	var b strings.Builder
	for i := 0; i < len(sub); i++ {
		ch := sub[i]
		switch {
		case ch == '$':
			b.WriteString("$$")
		case ch != '\\':
			b.WriteByte(ch)
		case i+1 >= len(sub):
			return "", errors.New("a trailing backslash must be escaped (\\\\)")
		case sub[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case sub[i+1] >= '0' && sub[i+1] <= '9':
			n := int(sub[i+1] - '0')
			if n > groups {
				return "", fmt.Errorf("\\%d names a group the pattern does not have (it has %d)", n, groups)
			}
			b.WriteString("${" + strconv.Itoa(n) + "}")
			i++
		default:
			return "", fmt.Errorf("invalid escape \\%c; use \\0-\\9 or \\\\", sub[i+1])
		}
	}
	return b.String(), nil
}

func ptr[T any](v T) *T { return &v }
