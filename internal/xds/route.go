package xds

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// defaultRequestTimeout is App Mesh's per-request timeout when a route or
// listener sets none.
const defaultRequestTimeout = 15 * time.Second

// ---- the compiled, flavour-neutral form of App Mesh routes ----

type pathKind int

const (
	pathPrefix pathKind = iota
	pathExact
	pathRegex
)

// pathMatch is the one path condition of a route.
type pathMatch struct {
	kind  pathKind
	value string
}

// target is one listener of a virtual node that a route sends traffic to.
type target struct {
	node     string
	port     uint32
	protocol string
	listener *v1alpha1.Listener
	cluster  string
}

type weightedTarget struct {
	target
	weight uint32
}

// rule is one App Mesh route (or the implicit route of a virtual node
// provider) with its matches translated and its targets resolved. Rules are
// shared between views and must not be modified once built.
type rule struct {
	name     string
	priority *int
	path     pathMatch
	headers  []*routev3.HeaderMatcher
	query    []*routev3.QueryParameterMatcher
	targets  []weightedTarget

	timeout       *durationpb.Duration // explicit per-request timeout
	idle          *durationpb.Duration
	retry         *routev3.RetryPolicy // explicit policy (nil with retryExplicit: none)
	retryExplicit bool

	// The route's meshlens extension as per-route filter configuration
	// (nil when unset), and where it is, for notes.
	key       v1alpha1.Key
	extPath   string
	fault     *anypb.Any // faultv3.HTTPFault
	rateLimit *anypb.Any // local_ratelimitv3.LocalRateLimit
	tracing   *routev3.Tracing
}

// setExtension records a route's meshlens extension.
func (r *rule) setExtension(key v1alpha1.Key, path string, ext *v1alpha1.RouteMeshlens) {
	if ext == nil {
		return
	}
	r.key, r.extPath = key, path
	r.fault = anyOrNil(faultConfig(ext.Fault))
	r.rateLimit = anyOrNil(rateLimitConfig(routeStatPrefix(key), ext.RateLimit))
	r.tracing = routeTracing(ext.Tracing)
}

// routeSet is the ordered rules of one port of a virtual service.
type routeSet struct {
	protocol string
	rules    []*rule
	notes    []Note
}

type routeSetKey struct {
	mesh, service string
	port          uint32
}

// serviceRoutes compiles (once per input) the rules of one port of a
// virtual service: the router's routes for that port in App Mesh's order,
// or one catch-all rule to the provider node.
func (t *translator) serviceRoutes(mesh, service string, port uint32) *routeSet {
	return cached(t, t.routeSets, routeSetKey{mesh, service, port}, func() *routeSet {
		return t.compileRoutes(mesh, service, port)
	})
}

// outboundVirtualHost returns (once per input) the virtual host of one
// service port in a sidecar's outbound route configuration; every sidecar
// that calls the service shares it.
func (t *translator) outboundVirtualHost(mesh, service string, port uint32, primary bool) *routev3.VirtualHost {
	return cached(t, t.vhosts, vhostKey{routeSetKey{mesh, service, port}, primary}, func() *routev3.VirtualHost {
		return outboundVirtualHost(service, port, primary, t.serviceRoutes(mesh, service, port))
	})
}

// apiRouteConfig returns (once per input) a proxyless client's route
// configuration for one service port; every client of the service shares
// it.
func (t *translator) apiRouteConfig(mesh, service string, port uint32) *routev3.RouteConfiguration {
	return cached(t, t.apiRoutes, routeSetKey{mesh, service, port}, func() *routev3.RouteConfiguration {
		return apiRouteConfig(service, port, t.serviceRoutes(mesh, service, port))
	})
}

func (t *translator) compileRoutes(mesh, service string, port uint32) *routeSet {
	rs := &routeSet{}
	vsKey := v1alpha1.Key{Kind: v1alpha1.KindVirtualService, Mesh: mesh, Name: service}
	vs := t.virtualService(mesh, service)
	if vs == nil || vs.Provider == nil {
		rs.notes = append(rs.notes, Note{Resource: vsKey, Path: "spec.provider", Message: "no provider: not routed"})
		return rs
	}
	for _, p := range t.servicePorts(mesh, service) {
		if p.port == port {
			rs.protocol = p.protocol
		}
	}
	switch {
	case vs.Provider.VirtualNode != nil:
		node := vs.Provider.VirtualNode.VirtualNodeName
		tg, ok := t.resolveTarget(mesh, node, int(port), port)
		if !ok {
			rs.notes = append(rs.notes, Note{Resource: vsKey, Path: "spec.provider.virtualNode.virtualNodeName",
				Message: fmt.Sprintf("provider virtual node %s has no listener on port %d: not routed", node, port)})
			return rs
		}
		rs.rules = append(rs.rules, &rule{
			name:    service,
			path:    pathMatch{kind: pathPrefix, value: "/"},
			targets: []weightedTarget{{target: tg, weight: 1}},
		})
	case vs.Provider.VirtualRouter != nil:
		router := vs.Provider.VirtualRouter.VirtualRouterName
		for _, r := range t.lookup.List(v1alpha1.KindRoute, mesh, router) {
			if r.RouteSpec == nil {
				continue
			}
			ru, ok := t.compileRoute(r.Key(), r.RouteSpec, rs.protocol, port, &rs.notes)
			if ok {
				rs.rules = append(rs.rules, ru)
			}
		}
		sortRules(rs.rules)
	}
	return rs
}

// compileRoute translates one App Mesh route for one router port, or
// reports that it does not apply to that port.
func (t *translator) compileRoute(key v1alpha1.Key, spec *v1alpha1.RouteSpec, protocol string, port uint32, notes *[]Note) (*rule, bool) {
	mesh, name := key.Mesh, key.Name
	field := "spec." + protocol + "Route" // httpRoute, http2Route, grpcRoute, tcpRoute
	ru := &rule{name: name, priority: spec.Priority, path: pathMatch{kind: pathPrefix, value: "/"}}
	var wts []v1alpha1.WeightedTarget
	var matchPort int
	switch {
	case spec.HTTPRoute != nil && protocol == "http", spec.HTTP2Route != nil && protocol == "http2":
		hr := spec.HTTPRoute
		if protocol == "http2" {
			hr = spec.HTTP2Route
		}
		if hr.Action == nil {
			return nil, false
		}
		wts = hr.Action.WeightedTargets
		if m := hr.Match; m != nil {
			matchPort = m.Port
			ru.path, ru.headers, ru.query = httpMatch(m)
		}
		if hr.Timeout != nil {
			ru.timeout, ru.idle = toDuration(hr.Timeout.PerRequest), toDuration(hr.Timeout.Idle)
		}
		if hr.RetryPolicy != nil {
			ru.retryExplicit = true
			ru.retry = retryPolicy(hr.RetryPolicy.HTTPRetryEvents, hr.RetryPolicy.TCPRetryEvents, nil, hr.RetryPolicy.MaxRetries, hr.RetryPolicy.PerRetryTimeout)
		}
		ru.setExtension(key, field+".meshlens", hr.Meshlens)
	case spec.GRPCRoute != nil && protocol == "grpc":
		gr := spec.GRPCRoute
		if gr.Action == nil {
			return nil, false
		}
		wts = gr.Action.WeightedTargets
		if m := gr.Match; m != nil {
			matchPort = m.Port
			ru.path, ru.headers = grpcMatch(m.ServiceName, m.MethodName, grpcMetadata(m.Metadata))
		}
		if gr.Timeout != nil {
			ru.timeout, ru.idle = toDuration(gr.Timeout.PerRequest), toDuration(gr.Timeout.Idle)
		}
		if p := gr.RetryPolicy; p != nil {
			ru.retryExplicit = true
			ru.retry = retryPolicy(p.HTTPRetryEvents, p.TCPRetryEvents, p.GRPCRetryEvents, p.MaxRetries, p.PerRetryTimeout)
		}
		ru.setExtension(key, field+".meshlens", gr.Meshlens)
	case spec.TCPRoute != nil && protocol == "tcp":
		tr := spec.TCPRoute
		if tr.Action == nil {
			return nil, false
		}
		wts = tr.Action.WeightedTargets
		if tr.Match != nil {
			matchPort = tr.Match.Port
		}
		if tr.Timeout != nil {
			ru.idle = toDuration(tr.Timeout.Idle)
		}
	default:
		return nil, false
	}
	if matchPort != 0 && uint32(matchPort) != port {
		return nil, false
	}
	for i, wt := range wts {
		tg, ok := t.resolveTarget(mesh, wt.VirtualNode, wt.Port, port)
		if !ok {
			*notes = append(*notes, Note{Resource: key, Path: fmt.Sprintf("%s.action.weightedTargets[%d]", field, i),
				Message: fmt.Sprintf("target virtual node %s has no matching listener: the target is dropped", wt.VirtualNode)})
			continue
		}
		w := wt.Weight
		if w < 0 {
			w = 0
		}
		ru.targets = append(ru.targets, weightedTarget{target: tg, weight: uint32(w)})
	}
	return ru, true
}

// resolveTarget finds the listener of a virtual node that a weighted
// target names: its port when given, else the node's only listener, else
// the listener on the router's port, else the first listener.
func (t *translator) resolveTarget(mesh, node string, port int, routerPort uint32) (target, bool) {
	vn := t.virtualNode(mesh, node)
	if vn == nil || len(vn.Listeners) == 0 {
		return target{}, false
	}
	pick := -1
	switch {
	case port != 0:
		for i, l := range vn.Listeners {
			if l.PortMapping != nil && l.PortMapping.Port == port {
				pick = i
				break
			}
		}
	case len(vn.Listeners) == 1:
		pick = 0
	default:
		pick = 0
		for i, l := range vn.Listeners {
			if l.PortMapping != nil && uint32(l.PortMapping.Port) == routerPort {
				pick = i
				break
			}
		}
	}
	if pick < 0 {
		return target{}, false
	}
	l := &vn.Listeners[pick]
	p, proto := portOf(l.PortMapping)
	if p == 0 {
		return target{}, false
	}
	return target{node: node, port: p, protocol: proto, listener: l, cluster: xdsmeta.OutboundClusterName(mesh, node, proto, p)}, true
}

// sortRules puts rules in App Mesh's order: priority ascending with unset
// priorities last; then the more specific match first (exact path, then
// regex path, then the longer prefix, then more header/query conditions);
// then by name so the order is stable.
func sortRules(rules []*rule) {
	slices.SortStableFunc(rules, func(a, b *rule) int {
		return compareMatch(a.priority, b.priority, a.path, b.path, len(a.headers)+len(a.query), len(b.headers)+len(b.query), a.name, b.name)
	})
}

func compareMatch(pa, pb *int, a, b pathMatch, na, nb int, nameA, nameB string) int {
	switch {
	case pa != nil && pb == nil:
		return -1
	case pa == nil && pb != nil:
		return 1
	case pa != nil && pb != nil && *pa != *pb:
		return cmp.Compare(*pa, *pb)
	}
	rank := func(p pathMatch) int {
		switch p.kind {
		case pathExact:
			return 0
		case pathRegex:
			return 1
		}
		return 2
	}
	if c := cmp.Compare(rank(a), rank(b)); c != 0 {
		return c
	}
	if a.kind == pathPrefix {
		if c := cmp.Compare(len(b.value), len(a.value)); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(nb, na); c != 0 {
		return c
	}
	return cmp.Compare(nameA, nameB)
}

// ---- matches ----

// httpMatch translates an App Mesh HTTP route match.
func httpMatch(m *v1alpha1.HTTPRouteMatch) (pathMatch, []*routev3.HeaderMatcher, []*routev3.QueryParameterMatcher) {
	p := pathMatch{kind: pathPrefix, value: "/"}
	switch {
	case m.Path != nil && m.Path.Exact != "":
		p = pathMatch{kind: pathExact, value: m.Path.Exact}
	case m.Path != nil && m.Path.Regex != "":
		p = pathMatch{kind: pathRegex, value: m.Path.Regex}
	case m.Prefix != "":
		p = pathMatch{kind: pathPrefix, value: m.Prefix}
	}
	var hs []*routev3.HeaderMatcher
	for _, h := range m.Headers {
		if hm := headerMatcher(h.Name, h.Invert, h.Match); hm != nil {
			hs = append(hs, hm)
		}
	}
	if m.Method != "" {
		hs = append(hs, exactHeader(":method", m.Method))
	}
	if m.Scheme != "" {
		hs = append(hs, exactHeader(":scheme", m.Scheme))
	}
	return p, hs, queryMatchers(m.QueryParameters)
}

func queryMatchers(qs []v1alpha1.HTTPQueryParameter) []*routev3.QueryParameterMatcher {
	var out []*routev3.QueryParameterMatcher
	for _, q := range qs {
		if q.Name == "" {
			continue
		}
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		if q.Match != nil && q.Match.Exact != "" {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: q.Match.Exact}},
			}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		out = append(out, qm)
	}
	return out
}

// grpcMatch translates a gRPC service and method into the request path:
// /<service>/<method> exactly, /<service>/ as a prefix, or every path.
func grpcMatch(service, method string, metadata []*routev3.HeaderMatcher) (pathMatch, []*routev3.HeaderMatcher) {
	switch {
	case service != "" && method != "":
		return pathMatch{kind: pathExact, value: "/" + service + "/" + method}, metadata
	case service != "":
		return pathMatch{kind: pathPrefix, value: "/" + service + "/"}, metadata
	case method != "":
		return pathMatch{kind: pathRegex, value: "/[^/]+/" + regexp.QuoteMeta(method)}, metadata
	}
	return pathMatch{kind: pathPrefix, value: "/"}, metadata
}

func grpcMetadata(ms []v1alpha1.GRPCRouteMetadata) []*routev3.HeaderMatcher {
	var out []*routev3.HeaderMatcher
	for _, m := range ms {
		if hm := headerMatcher(m.Name, m.Invert, m.Match); hm != nil {
			out = append(out, hm)
		}
	}
	return out
}

// headerMatcher translates one App Mesh header (or gRPC metadata) match. A
// header with no match method only has to be present.
func headerMatcher(name string, invert *bool, m *v1alpha1.HeaderMatch) *routev3.HeaderMatcher {
	if name == "" {
		return nil
	}
	hm := &routev3.HeaderMatcher{Name: strings.ToLower(name), InvertMatch: invert != nil && *invert}
	sm := func(s *matcherv3.StringMatcher) {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: s}
	}
	switch {
	case m == nil:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	case m.Exact != "":
		sm(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Exact}})
	case m.Prefix != "":
		sm(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Prefix}})
	case m.Suffix != "":
		sm(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: m.Suffix}})
	case m.Regex != "":
		sm(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex}}})
	case m.Range != nil:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: m.Range.Start, End: m.Range.End}}
	default:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}

func exactHeader(name, value string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name: name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}},
		},
	}
}

func (p pathMatch) routeMatch() *routev3.RouteMatch {
	switch p.kind {
	case pathExact:
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: p.value}}
	case pathRegex:
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: p.value}}}
	}
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p.value}}
}

// ---- durations, retries ----

// toDuration converts an App Mesh duration (unit "s" or "ms").
func toDuration(d *v1alpha1.Duration) *durationpb.Duration {
	if d == nil || d.Value == nil || *d.Value < 0 {
		return nil
	}
	if d.Unit == "ms" {
		return durationpb.New(time.Duration(*d.Value) * time.Millisecond)
	}
	return durationpb.New(time.Duration(*d.Value) * time.Second)
}

// retryPolicy translates App Mesh retry events into Envoy's retry_on.
// server-error and gateway-error also retry on resets, as App Mesh's
// documentation says they do.
func retryPolicy(httpEvents, tcpEvents, grpcEvents []string, maxRetries *int64, perTry *v1alpha1.Duration) *routev3.RetryPolicy {
	var on []string
	add := func(s string) {
		if !slices.Contains(on, s) {
			on = append(on, s)
		}
	}
	for _, e := range httpEvents {
		switch e {
		case "server-error":
			add("5xx")
			add("reset")
		case "gateway-error":
			add("gateway-error")
			add("reset")
		case "client-error":
			add("retriable-4xx")
		case "stream-error":
			add("refused-stream")
		}
	}
	for _, e := range tcpEvents {
		if e == "connection-error" {
			add("connect-failure")
		}
	}
	for _, e := range grpcEvents {
		switch e {
		case "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable":
			add(e)
		}
	}
	if len(on) == 0 {
		return nil
	}
	rp := &routev3.RetryPolicy{RetryOn: strings.Join(on, ","), PerTryTimeout: toDuration(perTry)}
	if maxRetries != nil && *maxRetries >= 0 {
		rp.NumRetries = wrapperspb.UInt32(uint32(min(*maxRetries, 1<<31)))
	}
	return rp
}

// defaultRetryPolicy is the policy App Mesh gives every HTTP, HTTP/2 and
// gRPC route that sets none: two retries on 503, gRPC UNAVAILABLE,
// connection failures, refused streams and resets.
func defaultRetryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:              "connect-failure,refused-stream,reset,unavailable,retriable-status-codes",
		RetriableStatusCodes: []uint32{503},
		NumRetries:           wrapperspb.UInt32(2),
	}
}

// ---- Envoy routes ----

// envoyRoute renders a rule for a flavour. Envoy gets App Mesh's defaults
// (15 s per request, the default retry policy); a proxyless gRPC client
// gets only what it implements: max_stream_duration from an explicit
// per-request timeout, and retries with at least one attempt.
func (r *rule) envoyRoute(fl Flavour) *routev3.Route {
	rt := &routev3.Route{Name: r.name, Match: r.path.routeMatch(), TypedPerFilterConfig: routeFilterConfig(fl, r.fault, r.rateLimit)}
	rt.Match.Headers = r.headers
	rt.Match.QueryParameters = r.query
	if fl == FlavourEnvoy {
		rt.Tracing = r.tracing
	}
	action := r.routeAction(fl)
	if action == nil {
		rt.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 503}}
		return rt
	}
	rt.Action = &routev3.Route_Route{Route: action}
	return rt
}

// routeAction returns the rule's forwarding action, or nil when it has no
// target with a weight (App Mesh answers such requests with 503).
func (r *rule) routeAction(fl Flavour) *routev3.RouteAction {
	var total uint32
	wc := &routev3.WeightedCluster{}
	for _, t := range r.targets {
		total += t.weight
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: t.cluster, Weight: wrapperspb.UInt32(t.weight)})
	}
	if total == 0 {
		return nil
	}
	a := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}}
	if fl == FlavourProxyless {
		if r.timeout != nil {
			a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: r.timeout}
		}
		switch {
		case !r.retryExplicit:
			a.RetryPolicy = defaultRetryPolicy()
		case r.retry != nil && (r.retry.NumRetries == nil || r.retry.NumRetries.Value >= 1):
			a.RetryPolicy = r.retry
		}
		return a
	}
	a.Timeout = r.timeout
	if a.Timeout == nil {
		a.Timeout = durationpb.New(defaultRequestTimeout)
	}
	a.IdleTimeout = r.idle
	if r.retryExplicit {
		a.RetryPolicy = r.retry
	} else {
		a.RetryPolicy = defaultRetryPolicy()
	}
	return a
}

// ---- route configurations ----

// inboundRouteConfig routes everything arriving on one HTTP listener of a
// virtual node to the local application, with the listener's timeouts.
func inboundRouteConfig(protocol string, port uint32, cluster string, timeout *v1alpha1.ListenerTimeout) *routev3.RouteConfiguration {
	a := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
		Timeout:          durationpb.New(defaultRequestTimeout),
	}
	if timeout != nil {
		var perRequest, idle *v1alpha1.Duration
		switch {
		case protocol == "http" && timeout.HTTP != nil:
			perRequest, idle = timeout.HTTP.PerRequest, timeout.HTTP.Idle
		case protocol == "http2" && timeout.HTTP2 != nil:
			perRequest, idle = timeout.HTTP2.PerRequest, timeout.HTTP2.Idle
		case protocol == "grpc" && timeout.GRPC != nil:
			perRequest, idle = timeout.GRPC.PerRequest, timeout.GRPC.Idle
		}
		if d := toDuration(perRequest); d != nil {
			a.Timeout = d
		}
		a.IdleTimeout = toDuration(idle)
	}
	name := xdsmeta.InboundRouteName(protocol, port)
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: a},
			}},
		}},
		ValidateClusters: wrapperspb.Bool(false),
	}
}

// outboundVirtualHost is one port of one backend service in the sidecar's
// outbound route configuration.
func outboundVirtualHost(service string, port uint32, primary bool, rs *routeSet) *routev3.VirtualHost {
	domains := []string{virtualHostName(service, port)}
	if primary {
		domains = append(domains, service)
	}
	vh := &routev3.VirtualHost{Name: virtualHostName(service, port), Domains: domains, Metadata: &corev3.Metadata{FilterMetadata: xdsmeta.FilterMetadata(xdsmeta.KeyVirtualService, service)}}
	for _, r := range rs.rules {
		vh.Routes = append(vh.Routes, r.envoyRoute(FlavourEnvoy))
	}
	return vh
}

// passthroughVirtualHost sends HTTP requests for unknown hosts to their
// original destination (egressFilter ALLOW_ALL).
func passthroughVirtualHost() *routev3.VirtualHost {
	return &routev3.VirtualHost{
		Name:    "allow_all",
		Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: xdsmeta.PassthroughClusterName},
				Timeout:          durationpb.New(defaultRequestTimeout),
			}},
		}},
	}
}

// apiRouteConfig is a proxyless client's route configuration for one port
// of a service: one virtual host for any authority (the listener already
// selected the service), its routes in App Mesh's order.
func apiRouteConfig(service string, port uint32, rs *routeSet) *routev3.RouteConfiguration {
	name := xdsmeta.APIRouteName(rs.protocol, service, port)
	vh := &routev3.VirtualHost{Name: virtualHostName(service, port), Domains: []string{"*"}}
	for _, r := range rs.rules {
		vh.Routes = append(vh.Routes, r.envoyRoute(FlavourProxyless))
	}
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{vh}}
}

// ---- virtual gateway routes ----

// gatewayRewrite is what a gateway route does to the request before the
// target service's routes see it.
type gatewayRewrite struct {
	// prefix: the matched gateway prefix becomes prefixTo.
	prefix   bool
	prefixTo string
	// path: the whole path becomes pathTo.
	path   bool
	pathTo string
	// host: the Host header becomes the target service's name.
	host bool
}

// gatewayRule is one gateway route, translated.
type gatewayRule struct {
	key       v1alpha1.Key // the gateway route, for notes
	name      string
	priority  *int
	path      pathMatch
	headers   []*routev3.HeaderMatcher
	query     []*routev3.QueryParameterMatcher
	rewrite   gatewayRewrite
	service   string
	port      int
	protocol  string // http, http2 or grpc
	hostMatch int    // number of hostname conditions, for ordering
	// The gateway route's meshlens extension as per-route filter
	// configuration; nil when unset.
	cors      *anypb.Any // corsv3.CorsPolicy
	rateLimit *anypb.Any // local_ratelimitv3.LocalRateLimit
}

// setExtension records a gateway route's meshlens extension.
func (g *gatewayRule) setExtension(ext *v1alpha1.GatewayRouteMeshlens) {
	if ext == nil {
		return
	}
	g.cors = anyOrNil(corsPolicy(ext.CORS))
	g.rateLimit = anyOrNil(rateLimitConfig(gatewayRouteStatPrefix(g.name), ext.RateLimit))
}

// compileGatewayRoute translates one gateway route, or reports it does not
// apply to a listener with this protocol and port.
func compileGatewayRoute(name string, spec *v1alpha1.GatewayRouteSpec, protocol string, port uint32) (*gatewayRule, bool) {
	g := &gatewayRule{name: name, priority: spec.Priority, protocol: protocol, path: pathMatch{kind: pathPrefix, value: "/"}}
	g.rewrite.host = true
	var matchPort int
	var tgt *v1alpha1.GatewayRouteTarget
	switch {
	case spec.HTTPRoute != nil && protocol == "http", spec.HTTP2Route != nil && protocol == "http2":
		hr := spec.HTTPRoute
		if protocol == "http2" {
			hr = spec.HTTP2Route
		}
		if hr.Action == nil || hr.Action.Target == nil {
			return nil, false
		}
		tgt = hr.Action.Target
		m := hr.Match
		if m == nil {
			m = &v1alpha1.HTTPGatewayRouteMatch{}
		}
		matchPort = m.Port
		switch {
		case m.Path != nil && m.Path.Exact != "":
			g.path = pathMatch{kind: pathExact, value: m.Path.Exact}
		case m.Path != nil && m.Path.Regex != "":
			g.path = pathMatch{kind: pathRegex, value: m.Path.Regex}
		case m.Prefix != "":
			g.path = pathMatch{kind: pathPrefix, value: m.Prefix}
		}
		for _, h := range m.Headers {
			if hm := headerMatcher(h.Name, h.Invert, h.Match); hm != nil {
				g.headers = append(g.headers, hm)
			}
		}
		if m.Method != "" {
			g.headers = append(g.headers, exactHeader(":method", m.Method))
		}
		if hm := hostnameMatcher(m.Hostname); hm != nil {
			g.headers = append(g.headers, hm)
			g.hostMatch = 1
		}
		g.query = queryMatchers(m.QueryParameters)
		g.setExtension(hr.Meshlens)
		rw := hr.Action.Rewrite
		if rw != nil && rw.Hostname != nil && rw.Hostname.DefaultTargetHostname == "DISABLED" {
			g.rewrite.host = false
		}
		switch g.path.kind {
		case pathPrefix:
			// App Mesh rewrites the matched prefix to "/" unless told
			// otherwise: to a value, or not at all (DISABLED).
			g.rewrite.prefix, g.rewrite.prefixTo = true, "/"
			if rw != nil && rw.Prefix != nil {
				switch {
				case rw.Prefix.Value != "":
					g.rewrite.prefixTo = rw.Prefix.Value
				case rw.Prefix.DefaultPrefix == "DISABLED":
					g.rewrite.prefix = false
				}
			}
			if g.rewrite.prefix && g.rewrite.prefixTo == g.path.value {
				g.rewrite.prefix = false // a rewrite to itself is no rewrite
			}
		case pathExact, pathRegex:
			if rw != nil && rw.Path != nil && rw.Path.Exact != "" {
				g.rewrite.path, g.rewrite.pathTo = true, rw.Path.Exact
			}
		}
	case spec.GRPCRoute != nil && protocol == "grpc":
		gr := spec.GRPCRoute
		if gr.Action == nil || gr.Action.Target == nil {
			return nil, false
		}
		tgt = gr.Action.Target
		g.setExtension(gr.Meshlens)
		if m := gr.Match; m != nil {
			matchPort = m.Port
			if m.ServiceName != "" {
				g.path = pathMatch{kind: pathPrefix, value: "/" + m.ServiceName + "/"}
			}
			for _, md := range m.Metadata {
				if hm := headerMatcher(md.Name, md.Invert, md.Match); hm != nil {
					g.headers = append(g.headers, hm)
				}
			}
			if hm := hostnameMatcher(m.Hostname); hm != nil {
				g.headers = append(g.headers, hm)
				g.hostMatch = 1
			}
		}
		if rw := gr.Action.Rewrite; rw != nil && rw.Hostname != nil && rw.Hostname.DefaultTargetHostname == "DISABLED" {
			g.rewrite.host = false
		}
	default:
		return nil, false
	}
	if matchPort != 0 && uint32(matchPort) != port {
		return nil, false
	}
	if tgt.VirtualService == nil || tgt.VirtualService.VirtualServiceName == "" {
		return nil, false
	}
	g.service, g.port = tgt.VirtualService.VirtualServiceName, tgt.Port
	return g, true
}

// hostnameMatcher matches the request's authority (the Host header in
// HTTP/1.1) against a gateway route's hostname, with or without a port.
// It is a header match rather than a virtual host domain so that gateway
// routes keep their priority order across hostnames.
func hostnameMatcher(h *v1alpha1.GatewayRouteHostnameMatch) *routev3.HeaderMatcher {
	if h == nil {
		return nil
	}
	var re string
	switch {
	case h.Exact != "":
		re = "(?i)" + regexp.QuoteMeta(h.Exact) + `(:[0-9]+)?`
	case h.Suffix != "":
		re = "(?i).*" + regexp.QuoteMeta(h.Suffix) + `(:[0-9]+)?`
	default:
		return nil
	}
	return &routev3.HeaderMatcher{
		Name: ":authority",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}},
		}},
	}
}

// sortGatewayRules puts gateway routes in App Mesh's order: priority, then
// the longest prefix (App Mesh's documented rule), exact and regex paths
// before prefixes, more conditions first, then name.
func sortGatewayRules(gs []*gatewayRule) {
	slices.SortStableFunc(gs, func(a, b *gatewayRule) int {
		return compareMatch(a.priority, b.priority, a.path, b.path,
			len(a.headers)+len(a.query)+a.hostMatch, len(b.headers)+len(b.query)+b.hostMatch, a.name, b.name)
	})
}

// combine expands a gateway route over one rule of its target service.
// The target's rule matches the request as the gateway rewrote it, while
// the Envoy route has to match the request as it arrived, so the two path
// conditions are merged:
//
//   - The gateway rewrites the whole path to a constant: the rule's path
//     condition is decided now, on that constant; the route keeps the
//     gateway's path match or is dropped.
//   - The gateway rewrites prefix Pg to Rw: a rule prefix Pr that extends
//     Rw (Pr = Rw+s) becomes prefix Pg+s rewritten to Pr; a rule prefix
//     that Rw extends keeps Pg rewritten to Rw; an exact rule path Rw+s
//     becomes exact Pg+s rewritten to the rule's path; anything else
//     (another prefix, a regex) cannot match or cannot be expressed and is
//     dropped.
//   - No path rewrite: of two prefixes the longer one is kept when one
//     extends the other (disjoint prefixes never match); an exact path on
//     either side is tested against the other condition now; a gateway
//     prefix and a rule regex, or a gateway regex and a rule prefix, are
//     ANDed (the prefix as a :path header match); two regexes cannot be
//     combined and the rule is dropped.
//
// A rule whose path is the catch-all prefix "/" therefore always combines,
// keeping the gateway's own path match. Headers, query parameters and
// method are ANDed.
func combine(g *gatewayRule, r *rule) (m *routev3.RouteMatch, prefixRewrite, pathRewrite string, res combineResult) {
	headers := append(slices.Clone(g.headers), r.headers...)
	query := append(slices.Clone(g.query), r.query...)
	finish := func(p pathMatch, extra ...*routev3.HeaderMatcher) *routev3.RouteMatch {
		m := p.routeMatch()
		m.Headers = append(headers, extra...)
		m.QueryParameters = query
		return m
	}
	switch {
	case g.rewrite.path:
		if !r.path.matches(g.rewrite.pathTo) {
			return nil, "", "", never
		}
		return finish(g.path), "", g.rewrite.pathTo, combined

	case g.rewrite.prefix:
		pg, rw := g.path.value, g.rewrite.prefixTo
		switch r.path.kind {
		case pathPrefix:
			pr := r.path.value
			switch {
			case strings.HasPrefix(pr, rw):
				return finish(pathMatch{kind: pathPrefix, value: pg + pr[len(rw):]}), pr, "", combined
			case strings.HasPrefix(rw, pr):
				return finish(g.path), rw, "", combined
			}
		case pathExact:
			if e := r.path.value; strings.HasPrefix(e, rw) {
				return finish(pathMatch{kind: pathExact, value: pg + e[len(rw):]}), e, "", combined
			}
		case pathRegex:
			return nil, "", "", inexpressible
		}
		return nil, "", "", never

	default:
		switch g.path.kind {
		case pathExact:
			if !r.path.matches(g.path.value) {
				return nil, "", "", never
			}
			return finish(g.path), "", "", combined
		case pathPrefix:
			pg := g.path.value
			switch r.path.kind {
			case pathPrefix:
				pr := r.path.value
				switch {
				case strings.HasPrefix(pr, pg):
					return finish(r.path), "", "", combined
				case strings.HasPrefix(pg, pr):
					return finish(g.path), "", "", combined
				}
				return nil, "", "", never
			case pathExact:
				if strings.HasPrefix(r.path.value, pg) {
					return finish(r.path), "", "", combined
				}
				return nil, "", "", never
			default: // rule regex AND gateway prefix
				if pg == "/" {
					return finish(r.path), "", "", combined
				}
				return finish(r.path, pathPrefixHeader(pg)), "", "", combined
			}
		default: // gateway regex
			switch r.path.kind {
			case pathPrefix:
				if r.path.value == "/" {
					return finish(g.path), "", "", combined
				}
				return finish(g.path, pathPrefixHeader(r.path.value)), "", "", combined
			case pathExact:
				gp := pathMatch{kind: pathRegex, value: g.path.value}
				if !gp.matches(r.path.value) {
					return nil, "", "", never
				}
				return finish(r.path), "", "", combined
			}
			return nil, "", "", inexpressible
		}
	}
}

// combineResult says whether a gateway route and a rule combine.
type combineResult int

const (
	combined      combineResult = iota
	never                       // the pair can never match the same request
	inexpressible               // the pair could match, but Envoy cannot say so
)

// pathPrefixHeader matches a prefix of the :path pseudo-header, which lets
// a route carry a second path condition beside its path specifier.
func pathPrefixHeader(prefix string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name: ":path",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}},
		},
	}
}

// matches decides a path condition on a known path. A regex that does not
// compile matches nothing.
func (p pathMatch) matches(path string) bool {
	switch p.kind {
	case pathExact:
		return path == p.value
	case pathRegex:
		re, err := regexp.Compile("^(?:" + p.value + ")$")
		return err == nil && re.MatchString(path)
	}
	return strings.HasPrefix(path, p.value)
}

// gatewayRoute renders one expanded gateway route: the combined match, the
// rule's action, the gateway's rewrites.
func gatewayRoute(g *gatewayRule, r *rule) (*routev3.Route, combineResult) {
	m, prefixRewrite, pathRewrite, res := combine(g, r)
	if res != combined {
		return nil, res
	}
	name := g.name
	if r.name != g.service {
		name = g.name + "/" + r.name
	}
	rt := &routev3.Route{Name: name, Match: m, Metadata: &corev3.Metadata{FilterMetadata: xdsmeta.FilterMetadata(xdsmeta.KeyVirtualService, g.service)}}
	// The target's route brings its fault and rate limit, as it does to
	// every caller; the gateway route's own rate limit replaces the
	// latter, being the more specific to this gateway.
	rateLimit := r.rateLimit
	if g.rateLimit != nil {
		rateLimit = g.rateLimit
	}
	rt.TypedPerFilterConfig = routeFilterConfig(FlavourEnvoy, r.fault, rateLimit)
	rt.Tracing = r.tracing
	if g.cors != nil {
		if rt.TypedPerFilterConfig == nil {
			rt.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		rt.TypedPerFilterConfig[CORSFilterName] = g.cors
	}
	a := r.routeAction(FlavourEnvoy)
	if a == nil {
		rt.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 503}}
		return rt, combined
	}
	switch {
	case pathRewrite != "":
		a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
			Pattern:      &matcherv3.RegexMatcher{Regex: "^.*$"},
			Substitution: strings.ReplaceAll(pathRewrite, `\`, `\\`),
		}
	case prefixRewrite != "":
		a.PrefixRewrite = prefixRewrite
	}
	if g.rewrite.host {
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: g.service}
	}
	rt.Action = &routev3.Route_Route{Route: a}
	return rt, combined
}

// adsConfigSource points at the ADS stream the resource came on.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
