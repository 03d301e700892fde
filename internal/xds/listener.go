package xds

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// ---- virtual node sidecar ----

// sidecar builds a virtual node's Envoy view: the inbound listener with
// its local clusters, and the outbound listener with its routes and the
// clusters of every backend.
func (b *viewBuilder) sidecar(vn *v1alpha1.Resource) {
	spec := vn.VirtualNodeSpec
	logs := accessLogs(spec.Logging)
	b.acmNotes(backendDefaults(spec), spec.Backends)
	if l := b.inboundListener(vn.Mesh, vn.Name, spec, logs); l != nil {
		b.listeners = append(b.listeners, l)
	}
	b.outboundListener(vn.Mesh, spec, logs)
}

// inboundListener is lds_ingress_0.0.0.0_15000: one filter chain per
// virtual node listener, chosen by the original destination port that
// iptables redirected from.
func (b *viewBuilder) inboundListener(mesh, node string, spec *v1alpha1.VirtualNodeSpec, logs []*accesslogv3.AccessLog) *listenerv3.Listener {
	var chains []*listenerv3.FilterChain
	inspect := false
	for i := range spec.Listeners {
		l := &spec.Listeners[i]
		port, proto := portOf(l.PortMapping)
		at := fmt.Sprintf("spec.listeners[%d]", i)
		if port == 0 {
			b.note(b.self, at+".portMapping", "no valid port mapping: the listener is skipped")
			continue
		}
		cluster := inboundCluster(mesh, node, l)
		var filters []*listenerv3.Filter
		var rc *routev3.RouteConfiguration
		ext := l.Meshlens
		if ext == nil {
			ext = &v1alpha1.ListenerMeshlens{}
		}
		switch {
		case isHTTP(proto):
			rc = inboundRouteConfig(proto, port, cluster.Name, l.Timeout)
			prefix := inboundStatPrefix(proto, port)
			hf := hcmFilters{fault: faultConfig(ext.Fault), rateLimit: rateLimitConfig(prefix, ext.RateLimit)}
			filters = []*listenerv3.Filter{hcmFilter(b.traced(httpConnectionManager(prefix, codecFor(proto), rc.Name, logs, hf), false))}
		case proto == "tcp":
			var idle *durationpb.Duration
			if l.Timeout != nil && l.Timeout.TCP != nil {
				idle = toDuration(l.Timeout.TCP.Idle)
			}
			// The connection limit comes first: a refused connection
			// never reaches tcp_proxy, which would open an upstream one.
			if ext.RateLimit != nil {
				filters = append(filters, networkRateLimitFilter(inboundStatPrefix(proto, port), ext.RateLimit))
			}
			filters = append(filters, tcpProxyFilter(inboundStatPrefix(proto, port), []weightedTarget{{target: target{cluster: cluster.Name}, weight: 1}}, idle, logs))
		default:
			b.note(b.self, at+".portMapping.protocol", "unknown protocol %q: the listener on port %d is skipped", proto, port)
			continue
		}
		base := &listenerv3.FilterChain{
			Name:             "ingress_" + proto + "_" + itoa32(port),
			FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port)},
			Filters:          filters,
		}
		cs, needInspector, skip := tlsChains(base, l.TLS, b.t.meshCA)
		if skip != nil {
			b.note(b.self, at+"."+skip.field, skip.why, port)
			continue
		}
		inspect = inspect || needInspector
		chains = append(chains, cs...)
		b.clusters = append(b.clusters, cluster)
		if rc != nil {
			b.routes = append(b.routes, rc)
		}
	}
	if len(chains) == 0 {
		return nil
	}
	filters := []*listenerv3.ListenerFilter{listenerFilter("envoy.filters.listener.original_dst", &originaldstv3.OriginalDst{})}
	if inspect {
		filters = append(filters, listenerFilter("envoy.filters.listener.tls_inspector", &tlsinspectorv3.TlsInspector{}))
	}
	return &listenerv3.Listener{
		Name:             xdsmeta.InboundListenerName,
		Address:          socketAddress("0.0.0.0", xdsmeta.InboundPort),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters:  filters,
		FilterChains:     chains,
	}
}

// backendService is one virtual service a data plane may call, with the
// client policy it calls it with.
type backendService struct {
	name   string
	policy *v1alpha1.ClientPolicy
	// policyPath is the field the policy comes from, for notes.
	policyPath string
	// ref is the resource and field that make the node call the service,
	// for notes: the backend, or with ALLOW_ALL the service itself.
	ref     v1alpha1.Key
	refPath string
}

// backendServices lists the services a node calls: its backends in spec
// order, then, with ALLOW_ALL, every other service of the mesh (with the
// backend defaults' policy).
func (b *viewBuilder) backendServices(mesh string, spec *v1alpha1.VirtualNodeSpec) []backendService {
	var defaults *v1alpha1.ClientPolicy
	if spec.BackendDefaults != nil {
		defaults = spec.BackendDefaults.ClientPolicy
	}
	const defaultsPath = "spec.backendDefaults.clientPolicy"
	var out []backendService
	seen := map[string]bool{}
	for i, be := range spec.Backends {
		if be.VirtualService == nil || be.VirtualService.VirtualServiceName == "" {
			continue
		}
		name := be.VirtualService.VirtualServiceName
		if seen[name] {
			continue
		}
		seen[name] = true
		at := fmt.Sprintf("spec.backends[%d].virtualService", i)
		p, pp := be.VirtualService.ClientPolicy, at+".clientPolicy"
		if p == nil {
			p, pp = defaults, defaultsPath
		}
		out = append(out, backendService{name: name, policy: p, policyPath: pp, ref: b.self, refPath: at + ".virtualServiceName"})
	}
	if b.t.allowAll(mesh) {
		for _, vs := range b.t.lookup.List(v1alpha1.KindVirtualService, mesh, "") {
			if !seen[vs.Name] {
				seen[vs.Name] = true
				out = append(out, backendService{name: vs.Name, policy: defaults, policyPath: defaultsPath, ref: vs.Key(), refPath: "spec.provider"})
			}
		}
	}
	return out
}

// acmNotes notes every client policy of a node or gateway that trusts ACM
// Private CA: its traffic is refused (see acmRefused).
func (b *viewBuilder) acmNotes(defaults *v1alpha1.ClientPolicy, backends []v1alpha1.Backend) {
	if b.t.meshCA {
		return // ACM trust is the mesh CA's root
	}
	const why = "ACM Private CA is not available in meshlens; traffic to %s is refused rather than sent in plaintext"
	if trustsACM(defaults) {
		b.note(b.self, "spec.backendDefaults.clientPolicy.tls.validation.trust.acm", why, "backends that use the defaults"+onPorts(defaults))
	}
	for i, be := range backends {
		if vs := be.VirtualService; vs != nil && trustsACM(vs.ClientPolicy) {
			b.note(b.self, fmt.Sprintf("spec.backends[%d].virtualService.clientPolicy.tls.validation.trust.acm", i), why,
				vs.VirtualServiceName+onPorts(vs.ClientPolicy))
		}
	}
}

// refusedVirtualHost returns (once per input) the virtual host of a
// service port whose caller's client policy trusts ACM Private CA: every
// request is answered 503 with a body that says why, instead of being
// sent in plaintext. Its domains are the service's, so that with
// ALLOW_ALL the request does not fall through to the passthrough.
func (t *translator) refusedVirtualHost(mesh, service string, port uint32, primary bool) *routev3.VirtualHost {
	return cached(t, t.refused, vhostKey{routeSetKey{mesh, service, port}, primary}, func() *routev3.VirtualHost {
		domains := []string{virtualHostName(service, port)}
		if primary {
			domains = append(domains, service)
		}
		return &routev3.VirtualHost{
			Name: virtualHostName(service, port), Domains: domains, Metadata: &corev3.Metadata{FilterMetadata: xdsmeta.FilterMetadata(xdsmeta.KeyVirtualService, service)},
			Routes: []*routev3.Route{{
				Name:   "acm-refused",
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: acmRefusedResponse(service),
			}},
		}
	})
}

// acmRefusedResponse answers a request to a backend whose client policy
// trusts ACM Private CA.
func acmRefusedResponse(service string) *routev3.Route_DirectResponse {
	return &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
		Status: 503,
		Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{
			InlineString: "meshlens: the client policy for " + service + " trusts ACM Private CA, which is not available in meshlens; the request is refused rather than sent in plaintext\n",
		}},
	}}
}

// backendDefaults is a node's default client policy, or nil.
func backendDefaults(spec *v1alpha1.VirtualNodeSpec) *v1alpha1.ClientPolicy {
	if spec.BackendDefaults == nil {
		return nil
	}
	return spec.BackendDefaults.ClientPolicy
}

// onPorts says which ports a client policy's TLS is limited to, if any.
func onPorts(p *v1alpha1.ClientPolicy) string {
	if len(p.TLS.Ports) == 0 {
		return ""
	}
	return fmt.Sprintf(" on ports %v", p.TLS.Ports)
}

// requestCluster records that the view's routes name a target's cluster.
// The first backend to reach a cluster decides its client policy.
// policyPath is the field the policy comes from, for notes.
func (b *viewBuilder) requestCluster(tg target, policy *v1alpha1.ClientPolicy, policyPath string, gwPool *v1alpha1.VirtualGatewayConnectionPool) {
	refused := !b.t.meshCA && acmRefused(policy, tg.port)
	if req, ok := b.clusterReqs[tg.cluster]; ok {
		req.refused = req.refused || refused
		return
	}
	if b.flavour == FlavourProxyless && effectiveTLS(policy, tg.port, b.t.meshCA) != nil {
		b.note(b.self, policyPath+".tls", "proxyless gRPC clients do not apply client policy TLS: their calls to the backends it covers are plaintext")
	}
	b.clusterReqs[tg.cluster] = &clusterReq{mesh: b.mesh, target: tg, policy: policy, gwPool: gwPool, refused: refused}
}

// outboundListener is lds_egress_0.0.0.0_15001: a chain per TCP backend
// port, an HTTP chain whose route configuration has a virtual host per
// backend port, and with ALLOW_ALL a passthrough for everything else.
func (b *viewBuilder) outboundListener(mesh string, spec *v1alpha1.VirtualNodeSpec, logs []*accesslogv3.AccessLog) {
	allowAll := b.t.allowAll(mesh)
	rc := &routev3.RouteConfiguration{Name: xdsmeta.OutboundRouteName, ValidateClusters: wrapperspb.Bool(false)}
	tcpChains := map[uint32]*listenerv3.FilterChain{}
	for _, svc := range b.backendServices(mesh, spec) {
		ports := b.t.servicePorts(mesh, svc.name)
		if len(ports) == 0 {
			b.note(svc.ref, svc.refPath, "virtual service %s has no provider listener: not routed", svc.name)
			continue
		}
		primary := primaryPort(ports)
		for _, p := range ports {
			rs := b.t.serviceRoutes(mesh, svc.name, p.port)
			b.notes = append(b.notes, rs.notes...)
			switch {
			case isHTTP(p.protocol) && !b.t.meshCA && acmRefused(svc.policy, p.port):
				// Routes that would name no cluster: nothing to request.
				rc.VirtualHosts = append(rc.VirtualHosts, b.t.refusedVirtualHost(mesh, svc.name, p.port, p.port == primary))
				continue
			case isHTTP(p.protocol):
				rc.VirtualHosts = append(rc.VirtualHosts, b.t.outboundVirtualHost(mesh, svc.name, p.port, p.port == primary))
			case p.protocol == "tcp":
				if prev, ok := tcpChains[p.port]; ok {
					b.note(svc.ref, svc.refPath, "virtual service %s: TCP port %d is already taken by %s: not routed", svc.name, p.port, prev.Name)
					continue
				}
				if len(rs.rules) == 0 {
					continue
				}
				r := rs.rules[0]
				var wts []weightedTarget
				for _, t := range r.targets {
					if t.weight > 0 {
						wts = append(wts, t)
					}
				}
				if len(wts) == 0 {
					b.note(svc.ref, svc.refPath, "virtual service %s: TCP port %d has no target with a weight: not routed", svc.name, p.port)
					continue
				}
				tcpChains[p.port] = &listenerv3.FilterChain{
					Name:             virtualHostName(svc.name, p.port),
					FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(p.port)},
					Filters:          []*listenerv3.Filter{tcpProxyFilter(outboundStatPrefix, wts, r.idle, logs)},
					Metadata:         &corev3.Metadata{FilterMetadata: xdsmeta.FilterMetadata(xdsmeta.KeyVirtualService, svc.name)},
				}
			default:
				continue
			}
			for _, r := range rs.rules {
				for _, t := range r.targets {
					b.requestCluster(t.target, svc.policy, svc.policyPath, nil)
				}
			}
		}
	}
	slices.SortFunc(rc.VirtualHosts, func(a, b *routev3.VirtualHost) int { return strings.Compare(a.Name, b.Name) })
	if allowAll {
		rc.VirtualHosts = append(rc.VirtualHosts, passthroughVirtualHost())
		b.clusters = append(b.clusters, passthroughCluster())
	}
	b.routes = append(b.routes, rc)

	var chains []*listenerv3.FilterChain
	ports := make([]uint32, 0, len(tcpChains))
	for p := range tcpChains {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	for _, p := range ports {
		chains = append(chains, tcpChains[p])
	}
	var hf hcmFilters
	hf.forRoutes(rc, outboundStatPrefix)
	httpChain := &listenerv3.FilterChain{
		Name:    "egress_http",
		Filters: []*listenerv3.Filter{hcmFilter(b.traced(httpConnectionManager(outboundStatPrefix, hcmv3.HttpConnectionManager_AUTO, xdsmeta.OutboundRouteName, logs, hf), true))},
	}
	filters := []*listenerv3.ListenerFilter{listenerFilter("envoy.filters.listener.original_dst", &originaldstv3.OriginalDst{})}
	l := &listenerv3.Listener{
		Name:             xdsmeta.OutboundListenerName,
		Address:          socketAddress("0.0.0.0", xdsmeta.OutboundPort),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
	if allowAll {
		// Only connections that speak HTTP go to the HTTP chain; the rest
		// pass through to where they were going.
		filters = append(filters, listenerFilter("envoy.filters.listener.http_inspector", &httpinspectorv3.HttpInspector{}))
		httpChain.FilterChainMatch = &listenerv3.FilterChainMatch{ApplicationProtocols: []string{"http/1.1", "h2c"}}
		l.DefaultFilterChain = &listenerv3.FilterChain{
			Name:    "egress_passthrough",
			Filters: []*listenerv3.Filter{tcpProxyFilter(outboundStatPrefix, []weightedTarget{{target: target{cluster: xdsmeta.PassthroughClusterName}, weight: 1}}, nil, logs)},
		}
	}
	l.ListenerFilters = filters
	l.FilterChains = append(chains, httpChain)
	b.listeners = append(b.listeners, l)
}

// ---- proxyless gRPC ----

// proxyless builds a proxyless gRPC client's view: an api_listener named
// <service>:<port> per HTTP port of every service it may call (and
// <service> alone for the service's primary port), each with its own
// route configuration, and the clusters they name.
func (b *viewBuilder) proxyless(vn *v1alpha1.Resource) {
	b.acmNotes(backendDefaults(vn.VirtualNodeSpec), vn.VirtualNodeSpec.Backends)
	for _, svc := range b.backendServices(vn.Mesh, vn.VirtualNodeSpec) {
		ports := b.t.servicePorts(vn.Mesh, svc.name)
		primary := primaryPort(ports)
		for _, p := range ports {
			if !isHTTP(p.protocol) {
				continue
			}
			rs := b.t.serviceRoutes(vn.Mesh, svc.name, p.port)
			b.notes = append(b.notes, rs.notes...)
			rc := b.t.apiRouteConfig(vn.Mesh, svc.name, p.port)
			b.routes = append(b.routes, rc)
			b.listeners = append(b.listeners, b.t.apiListener(xdsmeta.APIListenerName(svc.name, p.port), rc))
			if p.port == primary {
				b.listeners = append(b.listeners, b.t.apiListener(svc.name, rc))
			}
			for _, r := range rs.rules {
				if r.rateLimit != nil {
					b.note(r.key, r.extPath+".rateLimit", "proxyless gRPC clients do not apply local rate limits: not translated for %s", svc.name)
				}
				for _, t := range r.targets {
					b.requestCluster(t.target, svc.policy, svc.policyPath, nil)
				}
			}
		}
	}
}

// apiListener returns the api_listener of a service port, built once per
// input: every proxyless client that calls the service gets the same
// object, which is marshalled once.
func (t *translator) apiListener(name string, rc *routev3.RouteConfiguration) *listenerv3.Listener {
	return cached(t, t.apiListeners, apiListenerKey{name, rc}, func() *listenerv3.Listener { return apiListener(name, rc) })
}

// apiListenerKey names an api_listener and the route configuration it is
// built from.
type apiListenerKey struct {
	name string
	rc   *routev3.RouteConfiguration
}

// apiListener is a listener gRPC uses as its client configuration: no
// address, an HttpConnectionManager whose routes come over RDS, the router
// as the last HTTP filter, after the fault filter when a route injects
// faults.
func apiListener(name string, rc *routev3.RouteConfiguration) *listenerv3.Listener {
	var hf hcmFilters
	hf.forRoutes(rc, outboundStatPrefix)
	hcm := httpConnectionManager(outboundStatPrefix, hcmv3.HttpConnectionManager_AUTO, rc.Name, nil, hf)
	return &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcm)}}
}

// ---- virtual gateway ----

// gateway builds a virtual gateway's view: per gateway listener a listener
// on its port whose routes are the gateway routes in App Mesh's order,
// each expanded over the routes of its target service.
func (b *viewBuilder) gateway(gw *v1alpha1.Resource) {
	spec := gw.VirtualGatewaySpec
	var policy *v1alpha1.ClientPolicy
	if spec.BackendDefaults != nil {
		policy = spec.BackendDefaults.ClientPolicy
	}
	b.acmNotes(policy, nil)
	var logs []*accesslogv3.AccessLog
	if spec.Logging != nil {
		logs = accessLogs(&v1alpha1.Logging{AccessLog: spec.Logging.AccessLog})
	}
	routes := b.t.lookup.List(v1alpha1.KindGatewayRoute, gw.Mesh, gw.Name)
	for i := range spec.Listeners {
		gl := &spec.Listeners[i]
		at := fmt.Sprintf("spec.listeners[%d]", i)
		port, proto := portOf(gl.PortMapping)
		if port == 0 || !isHTTP(proto) {
			b.note(b.self, at+".portMapping", "not an http, http2 or grpc port: the listener is skipped")
			continue
		}
		if gl.HealthCheck != nil {
			b.note(b.self, at+".healthCheck", "kept, not translated: the gateway's own health check is not configured in its data plane")
		}
		var rules []*gatewayRule
		for _, r := range routes {
			if r.GatewayRouteSpec == nil {
				continue
			}
			if g, ok := compileGatewayRoute(r.Name, r.GatewayRouteSpec, proto, port); ok {
				g.key = r.Key()
				rules = append(rules, g)
			}
		}
		sortGatewayRules(rules)
		ext := gl.Meshlens
		if ext == nil {
			ext = &v1alpha1.GatewayListenerMeshlens{}
		}
		vh := &routev3.VirtualHost{Name: gw.Name, Domains: []string{"*"}}
		if c := corsPolicy(ext.CORS); c != nil {
			// The listener's policy applies to every route that has
			// none of its own.
			vh.TypedPerFilterConfig = map[string]*anypb.Any{CORSFilterName: mustAny(c)}
		}
		for _, g := range rules {
			vh.Routes = append(vh.Routes, b.expandGatewayRoute(g, policy, gl.ConnectionPool)...)
		}
		rc := &routev3.RouteConfiguration{
			Name:             xdsmeta.InboundRouteName(proto, port),
			VirtualHosts:     []*routev3.VirtualHost{vh},
			ValidateClusters: wrapperspb.Bool(false),
		}
		prefix := inboundStatPrefix(proto, port)
		hf := hcmFilters{rateLimit: rateLimitConfig(prefix, ext.RateLimit)}
		hf.grpcWeb = ext.GRPCWeb != nil && ext.GRPCWeb.Enabled
		hf.forRoutes(rc, prefix)
		hcm := b.traced(httpConnectionManager(prefix, codecFor(proto), rc.Name, logs, hf), true)
		if hf.grpcWeb && isHTTP2(proto) {
			// Browsers send gRPC-Web over HTTP/1.1 as well as HTTP/2, so
			// an http2 or grpc listener that takes gRPC-Web accepts both;
			// it still forwards no WebSocket upgrade, as before.
			hcm.CodecType = hcmv3.HttpConnectionManager_AUTO
		}
		base := &listenerv3.FilterChain{
			Name:    "ingress_" + proto + "_" + itoa32(port),
			Filters: []*listenerv3.Filter{hcmFilter(hcm)},
		}
		chains, inspect, skip := tlsChains(base, gl.TLS, b.t.meshCA)
		if skip != nil {
			b.note(b.self, at+"."+skip.field, skip.why, port)
			continue
		}
		l := &listenerv3.Listener{
			Name:             xdsmeta.GatewayListenerName(port),
			Address:          socketAddress("0.0.0.0", port),
			TrafficDirection: corev3.TrafficDirection_INBOUND,
			FilterChains:     chains,
		}
		if inspect {
			l.ListenerFilters = []*listenerv3.ListenerFilter{listenerFilter("envoy.filters.listener.tls_inspector", &tlsinspectorv3.TlsInspector{})}
		}
		b.routes = append(b.routes, rc)
		b.listeners = append(b.listeners, l)
	}
}

// expandGatewayRoute renders one gateway route as Envoy routes: one per
// route of its target service that can match (see combine).
func (b *viewBuilder) expandGatewayRoute(g *gatewayRule, policy *v1alpha1.ClientPolicy, pool *v1alpha1.VirtualGatewayConnectionPool) []*routev3.Route {
	ports := b.t.servicePorts(b.mesh, g.service)
	var port uint32
	switch {
	case g.port != 0:
		port = uint32(g.port)
	default:
		for _, p := range ports {
			if p.protocol == g.protocol {
				port = p.port
				break
			}
		}
		if port == 0 && len(ports) > 0 {
			port = ports[0].port
		}
	}
	field := "spec." + g.protocol + "Route" // httpRoute, http2Route, grpcRoute
	if port == 0 {
		b.note(g.key, field+".action.target.virtualService.virtualServiceName", "target virtual service %s has no listener: not routed", g.service)
		return nil
	}
	rs := b.t.serviceRoutes(b.mesh, g.service, port)
	b.notes = append(b.notes, rs.notes...)
	refused := !b.t.meshCA && acmRefused(policy, port)
	var out []*routev3.Route
	for _, r := range rs.rules {
		rt, res := gatewayRoute(g, r)
		switch res {
		case never:
			continue // disjoint paths: nothing to route
		case inexpressible:
			b.note(g.key, field+".match", "route %s of %s matches regular expressions that cannot be combined with this match and rewrite: that route is skipped", r.name, g.service)
			continue
		}
		if refused {
			rt.Action = acmRefusedResponse(g.service)
			out = append(out, rt)
			continue
		}
		out = append(out, rt)
		for _, t := range r.targets {
			b.requestCluster(t.target, policy, "spec.backendDefaults.clientPolicy", pool)
		}
	}
	return out
}

// ---- filters ----

func codecFor(protocol string) hcmv3.HttpConnectionManager_CodecType {
	if isHTTP2(protocol) {
		return hcmv3.HttpConnectionManager_HTTP2
	}
	return hcmv3.HttpConnectionManager_HTTP1
}

// httpConnectionManager routes with the named route configuration,
// delivered over ADS, through the HTTP filters of filters and the router.
// Connection managers that speak HTTP/1.1 forward WebSocket upgrades, as
// App Mesh's did.
func httpConnectionManager(statPrefix string, codec hcmv3.HttpConnectionManager_CodecType, routeConfig string, logs []*accesslogv3.AccessLog, filters hcmFilters) *hcmv3.HttpConnectionManager {
	var upgrades []*hcmv3.HttpConnectionManager_UpgradeConfig
	if codec != hcmv3.HttpConnectionManager_HTTP2 {
		upgrades = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
	}
	return &hcmv3.HttpConnectionManager{
		UpgradeConfigs: upgrades,
		StatPrefix:     statPrefix,
		CodecType:      codec,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: routeConfig,
		}},
		HttpFilters: filters.httpFilters(),
		AccessLog:   logs,
	}
}

func hcmFilter(hcm *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name:       "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
	}
}

// tcpProxyFilter proxies connections to one cluster or splits them over
// weighted clusters.
func tcpProxyFilter(statPrefix string, wts []weightedTarget, idle *durationpb.Duration, logs []*accesslogv3.AccessLog) *listenerv3.Filter {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: statPrefix, IdleTimeout: idle, AccessLog: logs}
	if len(wts) == 1 {
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: wts[0].cluster}
	} else {
		wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
		for _, t := range wts {
			wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: t.cluster, Weight: t.weight})
		}
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	}
	return &listenerv3.Filter{
		Name:       "envoy.filters.network.tcp_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)},
	}
}

func listenerFilter(name string, m proto.Message) *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{Name: name, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(m)}}
}

// ---- TLS termination ----

// tlsChains applies a listener's TLS to its filter chain. STRICT
// terminates TLS; PERMISSIVE adds a chain for TLS connections beside the
// plaintext one, told apart by the TLS inspector; DISABLED (or no TLS)
// leaves the chain plaintext. Without a mesh CA an ACM certificate cannot
// be had, so the listener is skipped rather than served in plaintext
// (skip says why).
func tlsChains(base *listenerv3.FilterChain, tls *v1alpha1.ListenerTLS, meshCA bool) (chains []*listenerv3.FilterChain, inspector bool, skip *skipped) {
	if tls == nil || tls.Mode == "DISABLED" || tls.Mode == "" {
		return []*listenerv3.FilterChain{base}, false, nil
	}
	ctx, skip := downstreamTLS(tls, meshCA)
	if skip != nil {
		return nil, false, skip
	}
	if tls.Mode == "STRICT" {
		base.TransportSocket = tlsTransportSocket(ctx)
		return []*listenerv3.FilterChain{base}, false, nil
	}
	secure := proto.Clone(base).(*listenerv3.FilterChain)
	secure.Name += "_tls"
	if secure.FilterChainMatch == nil {
		secure.FilterChainMatch = &listenerv3.FilterChainMatch{}
	}
	secure.FilterChainMatch.TransportProtocol = "tls"
	secure.TransportSocket = tlsTransportSocket(ctx)
	return []*listenerv3.FilterChain{secure, base}, true, nil
}

// skipped says why a listener is not served: the field of the listener at
// fault and a message with a %d for the listener's port.
type skipped struct {
	field, why string
}

// downstreamTLS translates a listener's certificate (files or an SDS
// secret) and, when set, the client certificates it requires.
//
// With a mesh CA, an ACM certificate is the node's mesh identity
// (MeshCAIdentitySecret) and ACM trust the mesh root (MeshCATrustSecret).
// A listener that serves the mesh identity and validates no client
// certificates still asks for one and verifies it against the mesh root
// when it is presented (without requiring it), so that mesh callers'
// identities reach the request (x-forwarded-client-cert, caller metrics).
func downstreamTLS(tls *v1alpha1.ListenerTLS, meshCA bool) (*tlsv3.DownstreamTlsContext, *skipped) {
	common := &tlsv3.CommonTlsContext{}
	c := tls.Certificate
	acmCert := false
	switch {
	case c == nil:
		return nil, &skipped{"tls.certificate", "TLS has no certificate: the listener on port %d is not served"}
	case c.File != nil:
		common.TlsCertificates = []*tlsv3.TlsCertificate{fileCertificate(c.File)}
	case c.SDS != nil:
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret(c.SDS.SecretName)}
	case meshCA:
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret(MeshCAIdentitySecret)}
		acmCert = true
	default:
		return nil, &skipped{"tls.certificate.acm", "ACM certificates are not available without the mesh CA (meshlens server --ca-key-file); the listener on port %d is not served rather than served without TLS"}
	}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: common}
	if v := tls.Validation; v != nil && v.Trust != nil {
		var file, sds string
		if v.Trust.File != nil {
			file = v.Trust.File.CertificateChain
		}
		if v.Trust.SDS != nil {
			sds = v.Trust.SDS.SecretName
		}
		setValidation(common, file, sds, v.SubjectAlternativeNames)
		ctx.RequireClientCertificate = wrapperspb.Bool(true)
	} else if acmCert {
		setValidation(common, "", MeshCATrustSecret, nil)
	}
	return ctx, nil
}

// ---- access logs ----

// accessLogs writes App Mesh's file access log: a path and Envoy's text
// format or JSON keys (Envoy's default format when neither is set).
func accessLogs(l *v1alpha1.Logging) []*accesslogv3.AccessLog {
	if l == nil || l.AccessLog == nil || l.AccessLog.File == nil || l.AccessLog.File.Path == "" {
		return nil
	}
	f := l.AccessLog.File
	fal := &filev3.FileAccessLog{Path: f.Path}
	if f.Format != nil {
		switch {
		case len(f.Format.JSON) > 0:
			fields := map[string]any{}
			for _, kv := range f.Format.JSON {
				fields[kv.Key] = kv.Value
			}
			if st, err := structpb.NewStruct(fields); err == nil {
				fal.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
					Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: st},
				}}
			}
		case f.Format.Text != nil && *f.Format.Text != "":
			text := *f.Format.Text
			if !strings.HasSuffix(text, "\n") {
				text += "\n"
			}
			fal.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
					Specifier: &corev3.DataSource_InlineString{InlineString: text},
				}},
			}}
		}
	}
	return []*accesslogv3.AccessLog{{
		Name:       "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(fal)},
	}}
}

func itoa32(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
