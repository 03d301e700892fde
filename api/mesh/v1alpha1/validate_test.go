package v1alpha1

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// bases are minimal valid resources of every kind; each validation case
// breaks one rule of a fresh copy.
var bases = map[Kind]string{
	KindMesh: `
kind: Mesh
name: demo
spec: {}`,
	KindVirtualNode: `
kind: VirtualNode
mesh: demo
name: node
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
  serviceDiscovery:
    dns: {hostname: node.demo.local}`,
	KindVirtualService: `
kind: VirtualService
mesh: demo
name: svc.demo.local
spec:
  provider:
    virtualNode: {virtualNodeName: node}`,
	KindVirtualRouter: `
kind: VirtualRouter
mesh: demo
name: router
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}`,
	KindRoute: `
kind: Route
mesh: demo
virtualRouter: router
name: route
spec:
  httpRoute:
    match: {prefix: /}
    action:
      weightedTargets: [{virtualNode: node, weight: 1}]`,
	KindVirtualGateway: `
kind: VirtualGateway
mesh: demo
name: gateway
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}`,
	KindGatewayRoute: `
kind: GatewayRoute
mesh: demo
virtualGateway: gateway
name: groute
spec:
  httpRoute:
    match: {prefix: /}
    action:
      target:
        virtualService: {virtualServiceName: svc.demo.local}`,
}

func base(t *testing.T, kind Kind) *Resource {
	t.Helper()
	rs, err := Decode([]byte(bases[kind]))
	if err != nil || len(rs) != 1 {
		t.Fatalf("decode base %s: %v", kind, err)
	}
	return rs[0]
}

func ptr[T any](v T) *T { return &v }

func dur(unit string, v int64) *Duration { return &Duration{Unit: unit, Value: &v} }

// Accessors into the bases, for the mutations below.
func nodeListener(r *Resource) *Listener           { return &r.VirtualNodeSpec.Listeners[0] }
func httpMatch(r *Resource) *HTTPRouteMatch        { return r.RouteSpec.HTTPRoute.Match }
func httpAction(r *Resource) *HTTPRouteAction      { return r.RouteSpec.HTTPRoute.Action }
func gwMatch(r *Resource) *HTTPGatewayRouteMatch   { return r.GatewayRouteSpec.HTTPRoute.Match }
func gwAction(r *Resource) *HTTPGatewayRouteAction { return r.GatewayRouteSpec.HTTPRoute.Action }

func tlsFile() *ListenerTLSCertificate {
	return &ListenerTLSCertificate{File: &TLSFileCertificate{CertificateChain: "/c.pem", PrivateKey: "/k.pem"}}
}

func clientTLS(r *Resource) *ClientPolicyTLS {
	t := &ClientPolicyTLS{Validation: &TLSValidationContext{Trust: &TLSValidationContextTrust{File: &TLSValidationFileTrust{CertificateChain: "/ca.pem"}}}}
	r.VirtualNodeSpec.BackendDefaults = &BackendDefaults{ClientPolicy: &ClientPolicy{TLS: t}}
	return t
}

func accessLogFile(r *Resource) *FileAccessLog {
	f := &FileAccessLog{Path: "/dev/stdout"}
	r.VirtualNodeSpec.Logging = &Logging{AccessLog: &AccessLog{File: f}}
	return f
}

func healthCheck(r *Resource) *HealthCheckPolicy {
	hc := &HealthCheckPolicy{HealthyThreshold: 2, UnhealthyThreshold: 2, IntervalMillis: 5000, TimeoutMillis: 2000, Protocol: "http", Path: "/"}
	nodeListener(r).HealthCheck = hc
	return hc
}

func outlier(r *Resource) *OutlierDetection {
	od := &OutlierDetection{MaxServerErrors: 1, MaxEjectionPercent: 10, Interval: dur("s", 10), BaseEjectionDuration: dur("s", 30)}
	nodeListener(r).OutlierDetection = od
	return od
}

func httpRetry(r *Resource) *HTTPRetryPolicy {
	rp := &HTTPRetryPolicy{MaxRetries: ptr[int64](1), PerRetryTimeout: dur("ms", 100), HTTPRetryEvents: []string{"server-error"}}
	r.RouteSpec.HTTPRoute.RetryPolicy = rp
	return rp
}

func grpcRoute(r *Resource) *GRPCRoute {
	g := &GRPCRoute{
		Match:  &GRPCRouteMatch{ServiceName: "demo.Greeter"},
		Action: &GRPCRouteAction{WeightedTargets: []WeightedTarget{{VirtualNode: "node", Weight: 1}}},
	}
	r.RouteSpec.HTTPRoute = nil
	r.RouteSpec.GRPCRoute = g
	return g
}

func grpcGatewayRoute(r *Resource) *GRPCGatewayRoute {
	g := &GRPCGatewayRoute{
		Match:  &GRPCGatewayRouteMatch{ServiceName: "demo.Greeter"},
		Action: &GRPCGatewayRouteAction{Target: &GatewayRouteTarget{VirtualService: &GatewayRouteVirtualService{VirtualServiceName: "svc.demo.local"}}},
	}
	r.GatewayRouteSpec.HTTPRoute = nil
	r.GatewayRouteSpec.GRPCRoute = g
	return g
}

func headers(n int) []HTTPRouteHeader {
	out := make([]HTTPRouteHeader, n)
	for i := range out {
		out[i] = HTTPRouteHeader{Name: fmt.Sprintf("h%d", i)}
	}
	return out
}

func targets(n int) []WeightedTarget {
	out := make([]WeightedTarget, n)
	for i := range out {
		out[i] = WeightedTarget{VirtualNode: fmt.Sprintf("n%d", i), Weight: 1}
	}
	return out
}

func TestValidateBases(t *testing.T) {
	t.Parallel()
	for kind := range bases {
		if err := base(t, kind).Validate(); err != nil {
			t.Errorf("base %s: %v", kind, err)
		}
	}
}

func TestValidateComplete(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/complete.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeAndValidate(data); err != nil {
		t.Fatalf("testdata/complete.yaml: %v", err)
	}
}

// TestValidate has one case per rule; want is every error the case must
// produce, exactly.
func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		kind   Kind
		mutate func(r *Resource)
		want   []string
	}{
		// The envelope.
		{"name required", KindVirtualNode, func(r *Resource) { r.Name = "" }, []string{"name: is required"}},
		{"name characters", KindVirtualNode, func(r *Resource) { r.Name = "a/b" }, []string{"name: must contain only letters, digits, hyphens, underscores and dots, not '/'"}},
		{"name length", KindVirtualNode, func(r *Resource) { r.Name = strings.Repeat("a", 256) }, []string{"name: must be at most 255 characters"}},
		{"name dot-dot", KindMesh, func(r *Resource) { r.Name = ".." }, []string{"name: must not be . or .."}},
		{"service name empty label", KindVirtualService, func(r *Resource) { r.Name = "a..b" }, []string{"name: must be a hostname: no empty labels, no leading, trailing or double dots"}},
		{"service name long label", KindVirtualService, func(r *Resource) { r.Name = strings.Repeat("a", 64) + ".local" }, []string{"name: must be a hostname: labels of at most 63 characters"}},
		{"mesh required", KindVirtualNode, func(r *Resource) { r.Mesh = "" }, []string{"mesh: is required"}},
		{"mesh name characters", KindVirtualNode, func(r *Resource) { r.Mesh = "de mo" }, []string{"mesh: must contain only letters, digits, hyphens, underscores and dots, not ' '"}},
		{"mesh on a mesh", KindMesh, func(r *Resource) { r.Mesh = "other" }, []string{"mesh: must not be set on a Mesh"}},
		{"virtualRouter required", KindRoute, func(r *Resource) { r.VirtualRouter = "" }, []string{"virtualRouter: is required"}},
		{"virtualGateway required", KindGatewayRoute, func(r *Resource) { r.VirtualGateway = "" }, []string{"virtualGateway: is required"}},
		{"virtualRouter elsewhere", KindVirtualNode, func(r *Resource) { r.VirtualRouter = "router" }, []string{"virtualRouter: must only be set on a Route"}},
		{"virtualGateway elsewhere", KindRoute, func(r *Resource) { r.VirtualGateway = "gateway" }, []string{"virtualGateway: must only be set on a GatewayRoute"}},
		{"kind unknown", KindMesh, func(r *Resource) { r.Kind = "Mash" }, []string{"kind: must be one of Mesh, VirtualNode, VirtualService, VirtualRouter, Route, VirtualGateway, GatewayRoute"}},
		{"spec required", KindVirtualRouter, func(r *Resource) { r.VirtualRouterSpec = nil }, []string{"spec: is required"}},
		{"spec of another kind", KindVirtualNode, func(r *Resource) { r.MeshSpec = &MeshSpec{} }, []string{"spec: must hold only a VirtualNode spec, not also a Mesh spec"}},
		{"tag key required", KindMesh, func(r *Resource) { r.Tags = []Tag{{Value: "v"}} }, []string{"tags[0].key: is required"}},
		{"tag key duplicate", KindMesh, func(r *Resource) { r.Tags = []Tag{{Key: "a"}, {Key: "a"}} }, []string{`tags[1].key: duplicate key "a" (also tags[0])`}},
		{"tag key length", KindMesh, func(r *Resource) { r.Tags = []Tag{{Key: strings.Repeat("k", 129)}} }, []string{"tags[0].key: must be at most 128 characters"}},
		{"tag value length", KindMesh, func(r *Resource) { r.Tags = []Tag{{Key: "k", Value: strings.Repeat("v", 257)}} }, []string{"tags[0].value: must be at most 256 characters"}},
		{"too many tags", KindMesh, func(r *Resource) {
			for i := range 51 {
				r.Tags = append(r.Tags, Tag{Key: fmt.Sprint(i)})
			}
		}, []string{"tags: must have at most 50 tags"}},

		// Mesh.
		{"egress filter type", KindMesh, func(r *Resource) { r.MeshSpec.EgressFilter = &EgressFilter{Type: "ALLOW_SOME"} }, []string{"spec.egressFilter.type: must be one of ALLOW_ALL, DROP_ALL"}},
		{"mesh ip preference", KindMesh, func(r *Resource) { r.MeshSpec.ServiceDiscovery = &MeshServiceDiscovery{IPPreference: "IPv4"} }, []string{"spec.serviceDiscovery.ipPreference: must be one of IPv6_PREFERRED, IPv4_PREFERRED, IPv4_ONLY, IPv6_ONLY"}},

		// VirtualNode listeners.
		{"port mapping required", KindVirtualNode, func(r *Resource) { nodeListener(r).PortMapping = nil }, []string{"spec.listeners[0].portMapping: is required"}},
		{"listener protocol", KindVirtualNode, func(r *Resource) { nodeListener(r).PortMapping.Protocol = "udp" }, []string{"spec.listeners[0].portMapping.protocol: must be one of http, http2, grpc, tcp"}},
		{"listener port", KindVirtualNode, func(r *Resource) { nodeListener(r).PortMapping.Port = 0 }, []string{"spec.listeners[0].portMapping.port: must be between 1 and 65535"}},
		{"listener port high", KindVirtualNode, func(r *Resource) { nodeListener(r).PortMapping.Port = 65536 }, []string{"spec.listeners[0].portMapping.port: must be between 1 and 65535"}},
		{"duplicate listener port", KindVirtualNode, func(r *Resource) {
			r.VirtualNodeSpec.Listeners = append(r.VirtualNodeSpec.Listeners, Listener{PortMapping: &PortMapping{Port: 8080, Protocol: "tcp"}})
		}, []string{"spec.listeners[1].portMapping.port: port 8080 is already used by spec.listeners[0]"}},
		{"healthy threshold", KindVirtualNode, func(r *Resource) { healthCheck(r).HealthyThreshold = 1 }, []string{"spec.listeners[0].healthCheck.healthyThreshold: must be between 2 and 10"}},
		{"unhealthy threshold", KindVirtualNode, func(r *Resource) { healthCheck(r).UnhealthyThreshold = 11 }, []string{"spec.listeners[0].healthCheck.unhealthyThreshold: must be between 2 and 10"}},
		{"health interval", KindVirtualNode, func(r *Resource) { healthCheck(r).IntervalMillis = 4999 }, []string{"spec.listeners[0].healthCheck.intervalMillis: must be between 5000 and 300000"}},
		{"health timeout", KindVirtualNode, func(r *Resource) { healthCheck(r).TimeoutMillis = 60001 }, []string{"spec.listeners[0].healthCheck.timeoutMillis: must be between 2000 and 60000"}},
		{"health protocol", KindVirtualNode, func(r *Resource) { healthCheck(r).Protocol = "icmp" }, []string{"spec.listeners[0].healthCheck.protocol: must be one of http, http2, grpc, tcp"}},
		{"health path", KindVirtualNode, func(r *Resource) { healthCheck(r).Path = "" }, []string{"spec.listeners[0].healthCheck.path: is required for an http health check"}},
		{"health path not needed for tcp", KindVirtualNode, func(r *Resource) { hc := healthCheck(r); hc.Path, hc.Protocol = "", "tcp" }, nil},
		{"health port", KindVirtualNode, func(r *Resource) { healthCheck(r).Port = 70000 }, []string{"spec.listeners[0].healthCheck.port: must be between 1 and 65535"}},
		{"outlier max server errors", KindVirtualNode, func(r *Resource) { outlier(r).MaxServerErrors = 0 }, []string{"spec.listeners[0].outlierDetection.maxServerErrors: must be at least 1"}},
		{"outlier max ejection percent", KindVirtualNode, func(r *Resource) { outlier(r).MaxEjectionPercent = 101 }, []string{"spec.listeners[0].outlierDetection.maxEjectionPercent: must be between 0 and 100"}},
		{"outlier interval", KindVirtualNode, func(r *Resource) { outlier(r).Interval = nil }, []string{"spec.listeners[0].outlierDetection.interval: is required"}},
		{"outlier base ejection", KindVirtualNode, func(r *Resource) { outlier(r).BaseEjectionDuration = nil }, []string{"spec.listeners[0].outlierDetection.baseEjectionDuration: is required"}},
		{"duration unit", KindVirtualNode, func(r *Resource) { outlier(r).BaseEjectionDuration.Unit = "m" }, []string{"spec.listeners[0].outlierDetection.baseEjectionDuration.unit: must be one of s, ms"}},
		{"duration value required", KindVirtualNode, func(r *Resource) { outlier(r).Interval.Value = nil }, []string{"spec.listeners[0].outlierDetection.interval.value: is required"}},
		{"duration value negative", KindVirtualNode, func(r *Resource) { outlier(r).Interval = dur("ms", -1) }, []string{"spec.listeners[0].outlierDetection.interval.value: must be at least 0"}},
		{"connection pool union", KindVirtualNode, func(r *Resource) {
			nodeListener(r).ConnectionPool = &ConnectionPool{HTTP: &HTTPConnectionPool{MaxConnections: 1}, TCP: &TCPConnectionPool{MaxConnections: 1}}
		}, []string{"spec.listeners[0].connectionPool: exactly one of http, http2, grpc, tcp must be set"}},
		{"connection pool protocol", KindVirtualNode, func(r *Resource) {
			nodeListener(r).ConnectionPool = &ConnectionPool{TCP: &TCPConnectionPool{MaxConnections: 1}}
		}, []string{"spec.listeners[0].connectionPool.tcp: does not match the listener protocol http"}},
		{"connection pool max connections", KindVirtualNode, func(r *Resource) {
			nodeListener(r).ConnectionPool = &ConnectionPool{HTTP: &HTTPConnectionPool{MaxConnections: 0}}
		}, []string{"spec.listeners[0].connectionPool.http.maxConnections: must be at least 1"}},
		{"connection pool max pending", KindVirtualNode, func(r *Resource) {
			nodeListener(r).ConnectionPool = &ConnectionPool{HTTP: &HTTPConnectionPool{MaxConnections: 1, MaxPendingRequests: -1}}
		}, []string{"spec.listeners[0].connectionPool.http.maxPendingRequests: must be at least 1"}},
		{"connection pool max requests", KindVirtualNode, func(r *Resource) {
			l := nodeListener(r)
			l.PortMapping.Protocol = "http2"
			l.ConnectionPool = &ConnectionPool{HTTP2: &HTTP2ConnectionPool{}}
		}, []string{"spec.listeners[0].connectionPool.http2.maxRequests: must be at least 1"}},
		{"connection pool grpc max requests", KindVirtualNode, func(r *Resource) {
			l := nodeListener(r)
			l.PortMapping.Protocol = "grpc"
			l.ConnectionPool = &ConnectionPool{GRPC: &GRPCConnectionPool{}}
		}, []string{"spec.listeners[0].connectionPool.grpc.maxRequests: must be at least 1"}},
		{"connection pool tcp max connections", KindVirtualNode, func(r *Resource) {
			l := nodeListener(r)
			l.PortMapping.Protocol = "tcp"
			l.ConnectionPool = &ConnectionPool{TCP: &TCPConnectionPool{}}
		}, []string{"spec.listeners[0].connectionPool.tcp.maxConnections: must be at least 1"}},
		{"listener timeout protocol", KindVirtualNode, func(r *Resource) {
			nodeListener(r).Timeout = &ListenerTimeout{GRPC: &GRPCTimeout{Idle: dur("s", 1)}}
		}, []string{"spec.listeners[0].timeout.grpc: does not match the listener protocol http"}},
		{"listener timeout union", KindVirtualNode, func(r *Resource) { nodeListener(r).Timeout = &ListenerTimeout{} },
			[]string{"spec.listeners[0].timeout: exactly one of http, http2, grpc, tcp must be set"}},
		{"listener timeout duration", KindVirtualNode, func(r *Resource) {
			nodeListener(r).Timeout = &ListenerTimeout{HTTP: &HTTPTimeout{PerRequest: dur("h", 1)}}
		}, []string{"spec.listeners[0].timeout.http.perRequest.unit: must be one of s, ms"}},
		{"tcp timeout duration", KindVirtualNode, func(r *Resource) {
			l := nodeListener(r)
			l.PortMapping.Protocol = "tcp"
			l.Timeout = &ListenerTimeout{TCP: &TCPTimeout{Idle: dur("s", -5)}}
		}, []string{"spec.listeners[0].timeout.tcp.idle.value: must be at least 0"}},

		// TLS.
		{"tls mode", KindVirtualNode, func(r *Resource) { nodeListener(r).TLS = &ListenerTLS{Mode: "ON", Certificate: tlsFile()} },
			[]string{"spec.listeners[0].tls.mode: must be one of STRICT, PERMISSIVE, DISABLED"}},
		{"tls certificate required", KindVirtualNode, func(r *Resource) { nodeListener(r).TLS = &ListenerTLS{Mode: "STRICT"} },
			[]string{"spec.listeners[0].tls.certificate: is required"}},
		{"tls certificate union", KindVirtualNode, func(r *Resource) {
			c := tlsFile()
			c.SDS = &TLSSDSSecret{SecretName: "s"}
			nodeListener(r).TLS = &ListenerTLS{Mode: "STRICT", Certificate: c}
		}, []string{"spec.listeners[0].tls.certificate: exactly one of acm, file, sds must be set"}},
		{"tls file paths", KindVirtualNode, func(r *Resource) {
			nodeListener(r).TLS = &ListenerTLS{Mode: "STRICT", Certificate: &ListenerTLSCertificate{File: &TLSFileCertificate{}}}
		}, []string{"spec.listeners[0].tls.certificate.file.certificateChain: is required", "spec.listeners[0].tls.certificate.file.privateKey: is required"}},
		{"tls sds secret", KindVirtualNode, func(r *Resource) {
			nodeListener(r).TLS = &ListenerTLS{Mode: "STRICT", Certificate: &ListenerTLSCertificate{SDS: &TLSSDSSecret{}}}
		}, []string{"spec.listeners[0].tls.certificate.sds.secretName: is required"}},
		{"tls acm arn", KindVirtualNode, func(r *Resource) {
			nodeListener(r).TLS = &ListenerTLS{Mode: "STRICT", Certificate: &ListenerTLSCertificate{ACM: &ListenerTLSACMCertificate{}}}
		}, []string{"spec.listeners[0].tls.certificate.acm.certificateArn: is required"}},
		{"tls validation trust required", KindVirtualNode, func(r *Resource) {
			nodeListener(r).TLS = &ListenerTLS{Mode: "STRICT", Certificate: tlsFile(), Validation: &ListenerTLSValidationCtx{}}
		}, []string{"spec.listeners[0].tls.validation.trust: is required"}},
		{"tls validation trust union", KindVirtualNode, func(r *Resource) {
			nodeListener(r).TLS = &ListenerTLS{Mode: "STRICT", Certificate: tlsFile(), Validation: &ListenerTLSValidationCtx{Trust: &ListenerTLSValidationCtxTrust{}}}
		}, []string{"spec.listeners[0].tls.validation.trust: exactly one of file, sds must be set"}},
		{"tls validation file", KindVirtualNode, func(r *Resource) {
			nodeListener(r).TLS = &ListenerTLS{Mode: "STRICT", Certificate: tlsFile(), Validation: &ListenerTLSValidationCtx{Trust: &ListenerTLSValidationCtxTrust{File: &TLSValidationFileTrust{}}}}
		}, []string{"spec.listeners[0].tls.validation.trust.file.certificateChain: is required"}},
		{"tls subject alternative names", KindVirtualNode, func(r *Resource) {
			nodeListener(r).TLS = &ListenerTLS{Mode: "STRICT", Certificate: tlsFile(), Validation: &ListenerTLSValidationCtx{
				Trust:                   &ListenerTLSValidationCtxTrust{SDS: &TLSSDSSecret{SecretName: "ca"}},
				SubjectAlternativeNames: &SubjectAlternativeNames{Match: &SubjectAlternativeNameMatchers{}},
			}}
		}, []string{"spec.listeners[0].tls.validation.subjectAlternativeNames.match.exact: must have at least one name"}},
		{"tls subject alternative names match", KindVirtualNode, func(r *Resource) {
			nodeListener(r).TLS = &ListenerTLS{Mode: "STRICT", Certificate: tlsFile(), Validation: &ListenerTLSValidationCtx{
				Trust:                   &ListenerTLSValidationCtxTrust{SDS: &TLSSDSSecret{SecretName: "ca"}},
				SubjectAlternativeNames: &SubjectAlternativeNames{},
			}}
		}, []string{"spec.listeners[0].tls.validation.subjectAlternativeNames.match: is required"}},
		{"client policy validation required", KindVirtualNode, func(r *Resource) { clientTLS(r).Validation = nil },
			[]string{"spec.backendDefaults.clientPolicy.tls.validation: is required"}},
		{"client policy ports", KindVirtualNode, func(r *Resource) { clientTLS(r).Ports = []int{443, 0} },
			[]string{"spec.backendDefaults.clientPolicy.tls.ports[1]: must be between 1 and 65535"}},
		{"client policy trust union", KindVirtualNode, func(r *Resource) { clientTLS(r).Validation.Trust.SDS = &TLSSDSSecret{SecretName: "s"} },
			[]string{"spec.backendDefaults.clientPolicy.tls.validation.trust: exactly one of acm, file, sds must be set"}},
		{"client policy trust required", KindVirtualNode, func(r *Resource) { clientTLS(r).Validation.Trust = nil },
			[]string{"spec.backendDefaults.clientPolicy.tls.validation.trust: is required"}},
		{"client policy certificate union", KindVirtualNode, func(r *Resource) { clientTLS(r).Certificate = &ClientTLSCertificate{} },
			[]string{"spec.backendDefaults.clientPolicy.tls.certificate: exactly one of file, sds must be set"}},
		{"client policy acm authorities", KindVirtualNode, func(r *Resource) {
			clientTLS(r).Validation.Trust = &TLSValidationContextTrust{ACM: &TLSValidationACMTrust{CertificateAuthorityArns: []string{"a", "b", "c", "d"}}}
		}, []string{"spec.backendDefaults.clientPolicy.tls.validation.trust.acm.certificateAuthorityArns: must have between 1 and 3 entries"}},

		// Logging.
		{"access log file required", KindVirtualNode, func(r *Resource) { r.VirtualNodeSpec.Logging = &Logging{AccessLog: &AccessLog{}} },
			[]string{"spec.logging.accessLog.file: is required"}},
		{"access log path required", KindVirtualNode, func(r *Resource) { accessLogFile(r).Path = "" },
			[]string{"spec.logging.accessLog.file.path: is required"}},
		{"access log format union", KindVirtualNode, func(r *Resource) {
			accessLogFile(r).Format = &LoggingFormat{Text: ptr("%START_TIME%"), JSON: []JSONFormatRef{{Key: "a", Value: "b"}}}
		}, []string{"spec.logging.accessLog.file.format: exactly one of json, text must be set"}},
		{"access log json key", KindVirtualNode, func(r *Resource) { accessLogFile(r).Format = &LoggingFormat{JSON: []JSONFormatRef{{Value: "b"}}} },
			[]string{"spec.logging.accessLog.file.format.json[0].key: is required"}},
		{"access log json value", KindVirtualNode, func(r *Resource) { accessLogFile(r).Format = &LoggingFormat{JSON: []JSONFormatRef{{Key: "a"}}} },
			[]string{"spec.logging.accessLog.file.format.json[0].value: is required"}},
		{"access log json duplicate", KindVirtualNode, func(r *Resource) {
			accessLogFile(r).Format = &LoggingFormat{JSON: []JSONFormatRef{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}}
		}, []string{`spec.logging.accessLog.file.format.json[1].key: duplicate key "a" (also spec.logging.accessLog.file.format.json[0])`}},
		{"access log text", KindVirtualNode, func(r *Resource) { accessLogFile(r).Format = &LoggingFormat{Text: ptr("")} },
			[]string{"spec.logging.accessLog.file.format.text: must be between 1 and 1000 characters"}},

		// Service discovery and backends.
		{"service discovery union", KindVirtualNode, func(r *Resource) {
			r.VirtualNodeSpec.ServiceDiscovery.AWSCloudMap = &AWSCloudMapServiceDiscovery{NamespaceName: "n", ServiceName: "s"}
		}, []string{"spec.serviceDiscovery: at most one of dns, awsCloudMap may be set"}},
		{"service discovery required", KindVirtualNode, func(r *Resource) { r.VirtualNodeSpec.ServiceDiscovery = nil },
			[]string{"spec.serviceDiscovery: is required when the node has listeners"}},
		{"service discovery optional without listeners", KindVirtualNode, func(r *Resource) {
			r.VirtualNodeSpec.ServiceDiscovery, r.VirtualNodeSpec.Listeners = nil, nil
		}, nil},
		{"dns hostname", KindVirtualNode, func(r *Resource) { r.VirtualNodeSpec.ServiceDiscovery.DNS.Hostname = "" },
			[]string{"spec.serviceDiscovery.dns.hostname: is required"}},
		{"dns response type", KindVirtualNode, func(r *Resource) { r.VirtualNodeSpec.ServiceDiscovery.DNS.ResponseType = "ROUND_ROBIN" },
			[]string{"spec.serviceDiscovery.dns.responseType: must be one of LOADBALANCER, ENDPOINTS"}},
		{"dns ip preference", KindVirtualNode, func(r *Resource) { r.VirtualNodeSpec.ServiceDiscovery.DNS.IPPreference = "IPv5_ONLY" },
			[]string{"spec.serviceDiscovery.dns.ipPreference: must be one of IPv6_PREFERRED, IPv4_PREFERRED, IPv4_ONLY, IPv6_ONLY"}},
		{"cloud map names", KindVirtualNode, func(r *Resource) {
			r.VirtualNodeSpec.ServiceDiscovery = &ServiceDiscovery{AWSCloudMap: &AWSCloudMapServiceDiscovery{}}
		}, []string{"spec.serviceDiscovery.awsCloudMap.namespaceName: is required", "spec.serviceDiscovery.awsCloudMap.serviceName: is required"}},
		{"cloud map attributes", KindVirtualNode, func(r *Resource) {
			r.VirtualNodeSpec.ServiceDiscovery = &ServiceDiscovery{AWSCloudMap: &AWSCloudMapServiceDiscovery{
				NamespaceName: "n", ServiceName: "s", IPPreference: "any", Attributes: []AWSCloudMapInstanceAttribute{{Value: "v"}, {Key: "k"}},
			}}
		}, []string{
			"spec.serviceDiscovery.awsCloudMap.ipPreference: must be one of IPv6_PREFERRED, IPv4_PREFERRED, IPv4_ONLY, IPv6_ONLY",
			"spec.serviceDiscovery.awsCloudMap.attributes[0].key: is required",
			"spec.serviceDiscovery.awsCloudMap.attributes[1].value: is required",
		}},
		{"backend virtual service", KindVirtualNode, func(r *Resource) { r.VirtualNodeSpec.Backends = []Backend{{}} },
			[]string{"spec.backends[0].virtualService: is required"}},
		{"backend name", KindVirtualNode, func(r *Resource) { r.VirtualNodeSpec.Backends = []Backend{{VirtualService: &VirtualServiceBackend{}}} },
			[]string{"spec.backends[0].virtualService.virtualServiceName: is required"}},
		{"backend duplicate", KindVirtualNode, func(r *Resource) {
			r.VirtualNodeSpec.Backends = []Backend{{VirtualService: &VirtualServiceBackend{VirtualServiceName: "a.b"}}, {VirtualService: &VirtualServiceBackend{VirtualServiceName: "a.b"}}}
		}, []string{"spec.backends[1].virtualService.virtualServiceName: duplicate backend a.b (also spec.backends[0])"}},
		{"backend client policy", KindVirtualNode, func(r *Resource) {
			r.VirtualNodeSpec.Backends = []Backend{{VirtualService: &VirtualServiceBackend{VirtualServiceName: "a.b", ClientPolicy: &ClientPolicy{TLS: &ClientPolicyTLS{}}}}}
		}, []string{"spec.backends[0].virtualService.clientPolicy.tls.validation: is required"}},

		// VirtualService.
		{"provider union", KindVirtualService, func(r *Resource) {
			r.VirtualServiceSpec.Provider.VirtualRouter = &VirtualRouterServiceProvider{VirtualRouterName: "router"}
		}, []string{"spec.provider: at most one of virtualNode, virtualRouter may be set"}},
		{"provider node name", KindVirtualService, func(r *Resource) { r.VirtualServiceSpec.Provider.VirtualNode.VirtualNodeName = "" },
			[]string{"spec.provider.virtualNode.virtualNodeName: is required"}},
		{"provider router name", KindVirtualService, func(r *Resource) {
			r.VirtualServiceSpec.Provider = &VirtualServiceProvider{VirtualRouter: &VirtualRouterServiceProvider{VirtualRouterName: "a b"}}
		}, []string{"spec.provider.virtualRouter.virtualRouterName: must contain only letters, digits, hyphens, underscores and dots, not ' '"}},

		// VirtualRouter.
		{"router listeners", KindVirtualRouter, func(r *Resource) { r.VirtualRouterSpec.Listeners = nil },
			[]string{"spec.listeners: must have at least one listener"}},
		{"router listener protocol", KindVirtualRouter, func(r *Resource) { r.VirtualRouterSpec.Listeners[0].PortMapping.Protocol = "HTTP" },
			[]string{"spec.listeners[0].portMapping.protocol: must be one of http, http2, grpc, tcp"}},
		{"router duplicate port", KindVirtualRouter, func(r *Resource) {
			r.VirtualRouterSpec.Listeners = append(r.VirtualRouterSpec.Listeners, VirtualRouterListener{PortMapping: &PortMapping{Port: 8080, Protocol: "grpc"}})
		}, []string{"spec.listeners[1].portMapping.port: port 8080 is already used by spec.listeners[0]"}},

		// Route.
		{"route type none", KindRoute, func(r *Resource) { r.RouteSpec.HTTPRoute = nil },
			[]string{"spec: exactly one of httpRoute, http2Route, grpcRoute, tcpRoute must be set"}},
		{"route type two", KindRoute, func(r *Resource) { r.RouteSpec.TCPRoute = &TCPRoute{} },
			[]string{"spec: exactly one of httpRoute, http2Route, grpcRoute, tcpRoute must be set"}},
		{"route priority", KindRoute, func(r *Resource) { r.RouteSpec.Priority = ptr(1001) }, []string{"spec.priority: must be between 0 and 1000"}},
		{"route action", KindRoute, func(r *Resource) { r.RouteSpec.HTTPRoute.Action = nil }, []string{"spec.httpRoute.action: is required"}},
		{"route match", KindRoute, func(r *Resource) { r.RouteSpec.HTTPRoute.Match = nil }, []string{"spec.httpRoute.match: is required"}},
		{"no targets", KindRoute, func(r *Resource) { httpAction(r).WeightedTargets = nil },
			[]string{"spec.httpRoute.action.weightedTargets: must have between 1 and 10 targets"}},
		{"too many targets", KindRoute, func(r *Resource) { httpAction(r).WeightedTargets = targets(11) },
			[]string{"spec.httpRoute.action.weightedTargets: must have between 1 and 10 targets"}},
		{"target weight", KindRoute, func(r *Resource) {
			httpAction(r).WeightedTargets = append(httpAction(r).WeightedTargets, WeightedTarget{VirtualNode: "other", Weight: 101})
		}, []string{"spec.httpRoute.action.weightedTargets[1].weight: must be between 0 and 100"}},
		{"target weights all zero", KindRoute, func(r *Resource) {
			httpAction(r).WeightedTargets = []WeightedTarget{{VirtualNode: "a"}, {VirtualNode: "b"}}
		}, []string{"spec.httpRoute.action.weightedTargets: weights must not all be 0"}},
		{"target node", KindRoute, func(r *Resource) { httpAction(r).WeightedTargets[0].VirtualNode = "" },
			[]string{"spec.httpRoute.action.weightedTargets[0].virtualNode: is required"}},
		{"target port", KindRoute, func(r *Resource) { httpAction(r).WeightedTargets[0].Port = -1 },
			[]string{"spec.httpRoute.action.weightedTargets[0].port: must be between 1 and 65535"}},
		{"target duplicate", KindRoute, func(r *Resource) {
			httpAction(r).WeightedTargets = append(httpAction(r).WeightedTargets, WeightedTarget{VirtualNode: "node", Weight: 3})
		}, []string{"spec.httpRoute.action.weightedTargets[1]: duplicate target node (also spec.httpRoute.action.weightedTargets[0])"}},
		{"prefix and path", KindRoute, func(r *Resource) { httpMatch(r).Path = &HTTPPathMatch{Exact: "/a"} },
			[]string{"spec.httpRoute.match: exactly one of prefix, path must be set"}},
		{"neither prefix nor path", KindRoute, func(r *Resource) { httpMatch(r).Prefix = "" },
			[]string{"spec.httpRoute.match: exactly one of prefix, path must be set"}},
		{"prefix slash", KindRoute, func(r *Resource) { httpMatch(r).Prefix = "api" }, []string{"spec.httpRoute.match.prefix: must start with /"}},
		{"path union", KindRoute, func(r *Resource) { m := httpMatch(r); m.Prefix, m.Path = "", &HTTPPathMatch{Exact: "/a", Regex: "/b"} },
			[]string{"spec.httpRoute.match.path: exactly one of exact, regex must be set"}},
		{"path exact slash", KindRoute, func(r *Resource) { m := httpMatch(r); m.Prefix, m.Path = "", &HTTPPathMatch{Exact: "a"} },
			[]string{"spec.httpRoute.match.path.exact: must start with /"}},
		{"path regex", KindRoute, func(r *Resource) { m := httpMatch(r); m.Prefix, m.Path = "", &HTTPPathMatch{Regex: "("} },
			[]string{"spec.httpRoute.match.path.regex: must be a valid regular expression: error parsing regexp: missing closing ): `(`"}},
		{"method", KindRoute, func(r *Resource) { httpMatch(r).Method = "get" },
			[]string{"spec.httpRoute.match.method: must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH"}},
		{"scheme", KindRoute, func(r *Resource) { httpMatch(r).Scheme = "ftp" }, []string{"spec.httpRoute.match.scheme: must be one of http, https"}},
		{"match port", KindRoute, func(r *Resource) { httpMatch(r).Port = 65536 }, []string{"spec.httpRoute.match.port: must be between 1 and 65535"}},
		{"too many headers", KindRoute, func(r *Resource) { httpMatch(r).Headers = headers(11) },
			[]string{"spec.httpRoute.match.headers: must have between 1 and 10 headers"}},
		{"header name", KindRoute, func(r *Resource) { httpMatch(r).Headers = []HTTPRouteHeader{{}} },
			[]string{"spec.httpRoute.match.headers[0].name: is required"}},
		{"header name length", KindRoute, func(r *Resource) { httpMatch(r).Headers = []HTTPRouteHeader{{Name: strings.Repeat("x", 51)}} },
			[]string{"spec.httpRoute.match.headers[0].name: must be at most 50 characters"}},
		{"header match union", KindRoute, func(r *Resource) {
			httpMatch(r).Headers = []HTTPRouteHeader{{Name: "a", Match: &HeaderMatch{}}, {Name: "b", Match: &HeaderMatch{Exact: "x", Suffix: "y"}}}
		}, []string{
			"spec.httpRoute.match.headers[0].match: exactly one of exact, prefix, suffix, regex, range must be set",
			"spec.httpRoute.match.headers[1].match: exactly one of exact, prefix, suffix, regex, range must be set",
		}},
		{"header regex", KindRoute, func(r *Resource) {
			httpMatch(r).Headers = []HTTPRouteHeader{{Name: "a", Match: &HeaderMatch{Regex: "[a-"}}}
		},
			[]string{"spec.httpRoute.match.headers[0].match.regex: must be a valid regular expression: error parsing regexp: missing closing ]: `[a-`"}},
		{"header range", KindRoute, func(r *Resource) {
			httpMatch(r).Headers = []HTTPRouteHeader{{Name: "a", Match: &HeaderMatch{Range: &MatchRange{Start: 5, End: 5}}}}
		}, []string{"spec.httpRoute.match.headers[0].match.range: start must be less than end"}},
		{"query parameter name", KindRoute, func(r *Resource) { httpMatch(r).QueryParameters = []HTTPQueryParameter{{}} },
			[]string{"spec.httpRoute.match.queryParameters[0].name: is required"}},
		{"query parameter match", KindRoute, func(r *Resource) {
			httpMatch(r).QueryParameters = []HTTPQueryParameter{{Name: "q", Match: &QueryParameterMatch{}}}
		}, []string{"spec.httpRoute.match.queryParameters[0].match.exact: is required"}},
		{"too many query parameters", KindRoute, func(r *Resource) {
			for i := range 11 {
				httpMatch(r).QueryParameters = append(httpMatch(r).QueryParameters, HTTPQueryParameter{Name: fmt.Sprint(i)})
			}
		}, []string{"spec.httpRoute.match.queryParameters: must have between 1 and 10 query parameters"}},
		{"retry max retries", KindRoute, func(r *Resource) { httpRetry(r).MaxRetries = nil },
			[]string{"spec.httpRoute.retryPolicy.maxRetries: is required"}},
		{"retry max retries negative", KindRoute, func(r *Resource) { httpRetry(r).MaxRetries = ptr[int64](-1) },
			[]string{"spec.httpRoute.retryPolicy.maxRetries: must be at least 0"}},
		{"retry per-retry timeout", KindRoute, func(r *Resource) { httpRetry(r).PerRetryTimeout = nil },
			[]string{"spec.httpRoute.retryPolicy.perRetryTimeout: is required"}},
		{"retry events", KindRoute, func(r *Resource) { httpRetry(r).HTTPRetryEvents = nil },
			[]string{"spec.httpRoute.retryPolicy: must set at least one of httpRetryEvents, tcpRetryEvents"}},
		{"retry http event", KindRoute, func(r *Resource) { httpRetry(r).HTTPRetryEvents = []string{"5xx"} },
			[]string{"spec.httpRoute.retryPolicy.httpRetryEvents[0]: must be one of server-error, gateway-error, client-error, stream-error"}},
		{"retry tcp event", KindRoute, func(r *Resource) { httpRetry(r).TCPRetryEvents = []string{"reset"} },
			[]string{"spec.httpRoute.retryPolicy.tcpRetryEvents[0]: must be one of connection-error"}},
		{"route timeout", KindRoute, func(r *Resource) { r.RouteSpec.HTTPRoute.Timeout = &HTTPTimeout{Idle: dur("", 1)} },
			[]string{"spec.httpRoute.timeout.idle.unit: must be one of s, ms"}},
		{"http2 route", KindRoute, func(r *Resource) {
			r.RouteSpec.HTTP2Route, r.RouteSpec.HTTPRoute = r.RouteSpec.HTTPRoute, nil
			httpMatch2 := r.RouteSpec.HTTP2Route.Match
			httpMatch2.Prefix = "x"
		}, []string{"spec.http2Route.match.prefix: must start with /"}},
		{"grpc match required", KindRoute, func(r *Resource) { grpcRoute(r).Match = nil }, []string{"spec.grpcRoute.match: is required"}},
		{"grpc action required", KindRoute, func(r *Resource) { grpcRoute(r).Action = nil }, []string{"spec.grpcRoute.action: is required"}},
		{"grpc method needs service", KindRoute, func(r *Resource) { grpcRoute(r).Match = &GRPCRouteMatch{MethodName: "Get"} },
			[]string{"spec.grpcRoute.match.methodName: requires serviceName"}},
		{"grpc match port", KindRoute, func(r *Resource) { grpcRoute(r).Match.Port = 99999 },
			[]string{"spec.grpcRoute.match.port: must be between 1 and 65535"}},
		{"grpc metadata count", KindRoute, func(r *Resource) {
			m := grpcRoute(r).Match
			for i := range 11 {
				m.Metadata = append(m.Metadata, GRPCRouteMetadata{Name: fmt.Sprint(i)})
			}
		}, []string{"spec.grpcRoute.match.metadata: must have between 1 and 10 entries"}},
		{"grpc metadata name", KindRoute, func(r *Resource) {
			grpcRoute(r).Match.Metadata = []GRPCRouteMetadata{{Match: &HeaderMatch{Exact: "x"}}}
		}, []string{"spec.grpcRoute.match.metadata[0].name: is required"}},
		{"grpc metadata match", KindRoute, func(r *Resource) {
			grpcRoute(r).Match.Metadata = []GRPCRouteMetadata{{Name: "m", Match: &HeaderMatch{Prefix: "a", Regex: "b"}}}
		}, []string{"spec.grpcRoute.match.metadata[0].match: exactly one of exact, prefix, suffix, regex, range must be set"}},
		{"grpc retry events", KindRoute, func(r *Resource) {
			grpcRoute(r).RetryPolicy = &GRPCRetryPolicy{MaxRetries: ptr[int64](1), PerRetryTimeout: dur("s", 1), GRPCRetryEvents: []string{"aborted"}}
		}, []string{"spec.grpcRoute.retryPolicy.grpcRetryEvents[0]: must be one of cancelled, deadline-exceeded, internal, resource-exhausted, unavailable"}},
		{"grpc retry needs an event", KindRoute, func(r *Resource) {
			grpcRoute(r).RetryPolicy = &GRPCRetryPolicy{MaxRetries: ptr[int64](1), PerRetryTimeout: dur("s", 1)}
		}, []string{"spec.grpcRoute.retryPolicy: must set at least one of grpcRetryEvents, httpRetryEvents, tcpRetryEvents"}},
		{"grpc targets", KindRoute, func(r *Resource) { grpcRoute(r).Action.WeightedTargets[0].Weight = 0 },
			[]string{"spec.grpcRoute.action.weightedTargets: weights must not all be 0"}},
		{"grpc timeout", KindRoute, func(r *Resource) { grpcRoute(r).Timeout = &GRPCTimeout{PerRequest: &Duration{Unit: "s"}} },
			[]string{"spec.grpcRoute.timeout.perRequest.value: is required"}},
		{"tcp action", KindRoute, func(r *Resource) { r.RouteSpec.HTTPRoute, r.RouteSpec.TCPRoute = nil, &TCPRoute{} },
			[]string{"spec.tcpRoute.action: is required"}},
		{"tcp match port and timeout", KindRoute, func(r *Resource) {
			r.RouteSpec.HTTPRoute = nil
			r.RouteSpec.TCPRoute = &TCPRoute{
				Action:  &TCPRouteAction{WeightedTargets: []WeightedTarget{{VirtualNode: "node", Weight: 1}}},
				Match:   &TCPRouteMatch{Port: -3},
				Timeout: &TCPTimeout{Idle: dur("us", 1)},
			}
		}, []string{"spec.tcpRoute.match.port: must be between 1 and 65535", "spec.tcpRoute.timeout.idle.unit: must be one of s, ms"}},

		// VirtualGateway.
		{"gateway listeners", KindVirtualGateway, func(r *Resource) { r.VirtualGatewaySpec.Listeners = nil },
			[]string{"spec.listeners: must have at least one listener"}},
		{"gateway protocol", KindVirtualGateway, func(r *Resource) { r.VirtualGatewaySpec.Listeners[0].PortMapping.Protocol = "tcp" },
			[]string{"spec.listeners[0].portMapping.protocol: must be one of http, http2, grpc"}},
		{"gateway duplicate port", KindVirtualGateway, func(r *Resource) {
			r.VirtualGatewaySpec.Listeners = append(r.VirtualGatewaySpec.Listeners, VirtualGatewayListener{PortMapping: &PortMapping{Port: 8080, Protocol: "grpc"}})
		}, []string{"spec.listeners[1].portMapping.port: port 8080 is already used by spec.listeners[0]"}},
		{"gateway connection pool", KindVirtualGateway, func(r *Resource) {
			r.VirtualGatewaySpec.Listeners[0].ConnectionPool = &VirtualGatewayConnectionPool{GRPC: &GRPCConnectionPool{MaxRequests: 1}}
		}, []string{"spec.listeners[0].connectionPool.grpc: does not match the listener protocol http"}},
		{"gateway health check protocol", KindVirtualGateway, func(r *Resource) {
			r.VirtualGatewaySpec.Listeners[0].HealthCheck = &HealthCheckPolicy{HealthyThreshold: 2, UnhealthyThreshold: 2, IntervalMillis: 5000, TimeoutMillis: 2000, Protocol: "tcp"}
		}, []string{"spec.listeners[0].healthCheck.protocol: must be one of http, http2, grpc"}},
		{"gateway tls", KindVirtualGateway, func(r *Resource) {
			r.VirtualGatewaySpec.Listeners[0].TLS = &ListenerTLS{Mode: "STRICT", Certificate: &ListenerTLSCertificate{}}
		}, []string{"spec.listeners[0].tls.certificate: exactly one of acm, file, sds must be set"}},
		{"gateway backend defaults", KindVirtualGateway, func(r *Resource) {
			r.VirtualGatewaySpec.BackendDefaults = &VirtualGatewayBackendDefaults{ClientPolicy: &ClientPolicy{TLS: &ClientPolicyTLS{}}}
		}, []string{"spec.backendDefaults.clientPolicy.tls.validation: is required"}},
		{"gateway logging", KindVirtualGateway, func(r *Resource) {
			r.VirtualGatewaySpec.Logging = &VirtualGatewayLogging{AccessLog: &AccessLog{File: &FileAccessLog{}}}
		}, []string{"spec.logging.accessLog.file.path: is required"}},

		// GatewayRoute.
		{"gateway route type", KindGatewayRoute, func(r *Resource) { r.GatewayRouteSpec.HTTPRoute = nil },
			[]string{"spec: exactly one of httpRoute, http2Route, grpcRoute must be set"}},
		{"gateway route priority", KindGatewayRoute, func(r *Resource) { r.GatewayRouteSpec.Priority = ptr(-1) },
			[]string{"spec.priority: must be between 0 and 1000"}},
		{"gateway route action", KindGatewayRoute, func(r *Resource) { r.GatewayRouteSpec.HTTPRoute.Action = nil },
			[]string{"spec.httpRoute.action: is required"}},
		{"gateway route target", KindGatewayRoute, func(r *Resource) { gwAction(r).Target = nil },
			[]string{"spec.httpRoute.action.target: is required"}},
		{"gateway route target service", KindGatewayRoute, func(r *Resource) { gwAction(r).Target.VirtualService = nil },
			[]string{"spec.httpRoute.action.target.virtualService: is required"}},
		{"gateway route target service name", KindGatewayRoute, func(r *Resource) { gwAction(r).Target.VirtualService.VirtualServiceName = "" },
			[]string{"spec.httpRoute.action.target.virtualService.virtualServiceName: is required"}},
		{"gateway route target port", KindGatewayRoute, func(r *Resource) { gwAction(r).Target.Port = 65536 },
			[]string{"spec.httpRoute.action.target.port: must be between 1 and 65535"}},
		{"gateway route match", KindGatewayRoute, func(r *Resource) { r.GatewayRouteSpec.HTTPRoute.Match = nil },
			[]string{"spec.httpRoute.match: is required"}},
		{"gateway route prefix and path", KindGatewayRoute, func(r *Resource) { gwMatch(r).Path = &HTTPPathMatch{Exact: "/a"} },
			[]string{"spec.httpRoute.match: at most one of prefix, path may be set"}},
		{"gateway route match empty", KindGatewayRoute, func(r *Resource) { gwMatch(r).Prefix = "" },
			[]string{"spec.httpRoute.match: must set at least one of prefix, path, hostname"}},
		{"gateway route hostname only", KindGatewayRoute, func(r *Resource) {
			m := gwMatch(r)
			m.Prefix, m.Hostname = "", &GatewayRouteHostnameMatch{Exact: "www.example.com"}
		}, nil},
		{"gateway route hostname union", KindGatewayRoute, func(r *Resource) {
			gwMatch(r).Hostname = &GatewayRouteHostnameMatch{Exact: "a.com", Suffix: ".com"}
		}, []string{"spec.httpRoute.match.hostname: exactly one of exact, suffix must be set"}},
		{"gateway route prefix slash", KindGatewayRoute, func(r *Resource) { gwMatch(r).Prefix = "web" },
			[]string{"spec.httpRoute.match.prefix: must start with /"}},
		{"gateway route path regex", KindGatewayRoute, func(r *Resource) { m := gwMatch(r); m.Prefix, m.Path = "", &HTTPPathMatch{Regex: "*"} },
			[]string{"spec.httpRoute.match.path.regex: must be a valid regular expression: error parsing regexp: missing argument to repetition operator: `*`"}},
		{"gateway route method", KindGatewayRoute, func(r *Resource) { gwMatch(r).Method = "FETCH" },
			[]string{"spec.httpRoute.match.method: must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH"}},
		{"gateway route port", KindGatewayRoute, func(r *Resource) { gwMatch(r).Port = -1 },
			[]string{"spec.httpRoute.match.port: must be between 1 and 65535"}},
		{"gateway route headers", KindGatewayRoute, func(r *Resource) {
			gwMatch(r).Headers = []HTTPGatewayRouteHeader{{Name: "a", Match: &HeaderMatch{Range: &MatchRange{Start: 2, End: 1}}}}
		}, []string{"spec.httpRoute.match.headers[0].match.range: start must be less than end"}},
		{"gateway route query parameters", KindGatewayRoute, func(r *Resource) { gwMatch(r).QueryParameters = []HTTPQueryParameter{{}} },
			[]string{"spec.httpRoute.match.queryParameters[0].name: is required"}},
		{"prefix rewrite needs prefix match", KindGatewayRoute, func(r *Resource) {
			m := gwMatch(r)
			m.Prefix, m.Path = "", &HTTPPathMatch{Exact: "/a"}
			gwAction(r).Rewrite = &HTTPGatewayRouteRewrite{Prefix: &HTTPGatewayRoutePrefixRewrite{Value: "/b/"}}
		}, []string{"spec.httpRoute.action.rewrite.prefix: requires a prefix match"}},
		{"prefix rewrite union", KindGatewayRoute, func(r *Resource) {
			gwAction(r).Rewrite = &HTTPGatewayRouteRewrite{Prefix: &HTTPGatewayRoutePrefixRewrite{DefaultPrefix: "DISABLED", Value: "/b/"}}
		}, []string{"spec.httpRoute.action.rewrite.prefix: exactly one of defaultPrefix, value must be set"}},
		{"prefix rewrite default", KindGatewayRoute, func(r *Resource) {
			gwAction(r).Rewrite = &HTTPGatewayRouteRewrite{Prefix: &HTTPGatewayRoutePrefixRewrite{DefaultPrefix: "OFF"}}
		}, []string{"spec.httpRoute.action.rewrite.prefix.defaultPrefix: must be one of ENABLED, DISABLED"}},
		{"prefix rewrite value", KindGatewayRoute, func(r *Resource) {
			gwAction(r).Rewrite = &HTTPGatewayRouteRewrite{Prefix: &HTTPGatewayRoutePrefixRewrite{Value: "/b"}}
		}, []string{"spec.httpRoute.action.rewrite.prefix.value: must start and end with /"}},
		{"path rewrite needs path match", KindGatewayRoute, func(r *Resource) {
			gwAction(r).Rewrite = &HTTPGatewayRouteRewrite{Path: &HTTPGatewayRoutePathRewrite{Exact: "/b"}}
		}, []string{"spec.httpRoute.action.rewrite.path: requires a path match"}},
		{"path rewrite exact", KindGatewayRoute, func(r *Resource) {
			m := gwMatch(r)
			m.Prefix, m.Path = "", &HTTPPathMatch{Exact: "/a"}
			gwAction(r).Rewrite = &HTTPGatewayRouteRewrite{Path: &HTTPGatewayRoutePathRewrite{Exact: "b"}}
		}, []string{"spec.httpRoute.action.rewrite.path.exact: must start with /"}},
		{"path rewrite exact required", KindGatewayRoute, func(r *Resource) {
			m := gwMatch(r)
			m.Prefix, m.Path = "", &HTTPPathMatch{Exact: "/a"}
			gwAction(r).Rewrite = &HTTPGatewayRouteRewrite{Path: &HTTPGatewayRoutePathRewrite{}}
		}, []string{"spec.httpRoute.action.rewrite.path.exact: is required"}},
		{"hostname rewrite", KindGatewayRoute, func(r *Resource) {
			gwAction(r).Rewrite = &HTTPGatewayRouteRewrite{Hostname: &GatewayRouteHostnameRewrite{DefaultTargetHostname: "yes"}}
		}, []string{"spec.httpRoute.action.rewrite.hostname.defaultTargetHostname: must be one of ENABLED, DISABLED"}},
		{"http2 gateway route", KindGatewayRoute, func(r *Resource) {
			r.GatewayRouteSpec.HTTP2Route, r.GatewayRouteSpec.HTTPRoute = r.GatewayRouteSpec.HTTPRoute, nil
			r.GatewayRouteSpec.HTTP2Route.Match.Prefix = ""
		}, []string{"spec.http2Route.match: must set at least one of prefix, path, hostname"}},
		{"grpc gateway route match", KindGatewayRoute, func(r *Resource) { grpcGatewayRoute(r).Match = &GRPCGatewayRouteMatch{} },
			[]string{"spec.grpcRoute.match: must set at least one of serviceName, hostname"}},
		{"grpc gateway route match required", KindGatewayRoute, func(r *Resource) { grpcGatewayRoute(r).Match = nil },
			[]string{"spec.grpcRoute.match: is required"}},
		{"grpc gateway route metadata", KindGatewayRoute, func(r *Resource) {
			grpcGatewayRoute(r).Match.Metadata = []GRPCGatewayRouteMetadata{{Name: "m", Match: &HeaderMatch{Regex: "("}}}
		}, []string{"spec.grpcRoute.match.metadata[0].match.regex: must be a valid regular expression: error parsing regexp: missing closing ): `(`"}},
		{"grpc gateway route hostname", KindGatewayRoute, func(r *Resource) {
			grpcGatewayRoute(r).Match = &GRPCGatewayRouteMatch{Hostname: &GatewayRouteHostnameMatch{}}
		}, []string{"spec.grpcRoute.match.hostname: exactly one of exact, suffix must be set"}},
		{"grpc gateway route action", KindGatewayRoute, func(r *Resource) { grpcGatewayRoute(r).Action = nil },
			[]string{"spec.grpcRoute.action: is required"}},
		{"grpc gateway route rewrite", KindGatewayRoute, func(r *Resource) {
			grpcGatewayRoute(r).Action.Rewrite = &GRPCGatewayRouteRewrite{Hostname: &GatewayRouteHostnameRewrite{DefaultTargetHostname: "enabled"}}
		}, []string{"spec.grpcRoute.action.rewrite.hostname.defaultTargetHostname: must be one of ENABLED, DISABLED"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := base(t, tc.kind)
			tc.mutate(r)
			err := r.Validate()
			var got []string
			if err != nil {
				var fes FieldErrors
				if !errors.As(err, &fes) {
					t.Fatalf("Validate returned %T, want FieldErrors", err)
				}
				for _, fe := range fes {
					got = append(got, fe.Error())
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		kind Kind
		name string
		want string
	}{
		{KindMesh, "demo", ""},
		{KindVirtualNode, "greeting_v1.blue-2", ""},
		{KindVirtualService, "greeting.demo.svc.cluster.local", ""},
		{KindVirtualService, "greeting", ""},
		{KindMesh, "", "name: is required"},
		{KindMesh, ".", "name: must not be . or .."},
		{KindMesh, "démo", "name: must contain only letters, digits, hyphens, underscores and dots, not 'é'"},
		{KindVirtualService, ".local", "name: must be a hostname: no empty labels, no leading, trailing or double dots"},
		{KindVirtualService, "local.", "name: must be a hostname: no empty labels, no leading, trailing or double dots"},
	}
	for _, tc := range cases {
		err := ValidName(tc.kind, tc.name)
		got := ""
		if err != nil {
			got = err.Error()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Path != "name" {
				t.Errorf("ValidName(%s, %q) = %T, want a *FieldError for name", tc.kind, tc.name, err)
			}
		}
		if got != tc.want {
			t.Errorf("ValidName(%s, %q) = %q, want %q", tc.kind, tc.name, got, tc.want)
		}
	}
}

// TestDocsExamples decodes and validates the YAML examples of
// docs/resources.md, so that the page stays true.
func TestDocsExamples(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../../docs/resources.md")
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	blocks := strings.Split(string(data), "```yaml\n")[1:]
	n := 0
	for _, b := range blocks {
		text, _, _ := strings.Cut(b, "```")
		if !strings.Contains(text, "kind:") || strings.Contains(text, "{...}") {
			continue // the envelope sketch
		}
		n++
		rs, err := DecodeAndValidate([]byte(text))
		if err != nil || len(rs) != 1 {
			t.Errorf("example %d: %d resources, %v\n%s", n, len(rs), err, text)
		}
	}
	if n != 8 {
		t.Errorf("found %d examples, want one per kind and the Mesh's tracing", n)
	}
}
