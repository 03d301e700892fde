package xds

import (
	"fmt"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// connectTimeout is the connect timeout of every cluster, App Mesh's.
const connectTimeout = time.Second

// unlimited is App Mesh's circuit-breaker default: it raised every
// threshold Envoy defaults to 1024 (or 3 retries) to the maximum, so a
// limit exists only where a connection pool sets one.
const unlimited = 2147483647

// clusterReq asks for one outbound cluster on behalf of one data plane.
type clusterReq struct {
	mesh   string
	target target
	// policy is the caller's client policy for the backend that reaches
	// this cluster (or its backend defaults); nil for none.
	policy *v1alpha1.ClientPolicy
	// gwPool is a virtual gateway listener's connection pool, which limits
	// what the gateway sends to its targets.
	gwPool *v1alpha1.VirtualGatewayConnectionPool
	// refused: a backend that reaches this cluster trusts ACM Private CA,
	// so the cluster gets no endpoints (see outboundCluster). Refusal wins
	// over the first backend's policy: traffic that asks for ACM trust is
	// never sent in plaintext through a cluster another backend set up.
	refused bool
}

// outboundCluster returns the EDS cluster and load assignment of a
// request, built once per input and shared by every view that asks for the
// same cluster with the same policy. The load assignment depends only on
// the target, so it is shared whatever the policy.
//
// A cluster whose client policy trusts ACM Private CA gets no endpoints:
// meshlens cannot verify servers against ACM, and sending the traffic in
// plaintext instead would silently drop the encryption the policy asks
// for. TCP connections to it are closed and proxyless calls fail with
// UNAVAILABLE (HTTP routes of such a backend answer 503 themselves, see
// refusedVirtualHost), and a note says why.
func (t *translator) outboundCluster(req *clusterReq, fl Flavour) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment) {
	tls := effectiveTLS(req.policy, req.target.port, t.meshCA)
	refused := req.refused
	key := fmt.Sprintf("%s|%d|%s|%s|%t", req.target.cluster, fl, jsonKey(tls), jsonKey(req.gwPool), refused)
	c := cached(t, t.clusters, key, func() *clusterv3.Cluster {
		// Within one input the key names the cluster; across inputs,
		// everything buildOutboundCluster reads does.
		tg := req.target
		from := fmt.Sprintf("%s|%s|%s|%d|%s|%s|%t", key, req.mesh, tg.node, tg.port, tg.protocol, jsonKey(tg.listener), t.meshCA)
		t.mu.Lock()
		p, ok := t.prevClusters[from]
		t.mu.Unlock()
		if !ok {
			p.c = buildOutboundCluster(req, tls, fl, t.meshCA)
		}
		p.gen = t.gen
		t.mu.Lock()
		t.clusterFrom[from] = p
		t.mu.Unlock()
		return p.c
	})
	return c, t.outboundLoadAssignment(req)
}

// outboundLoadAssignment is the load assignment of outboundCluster.
func (t *translator) outboundLoadAssignment(req *clusterReq) *endpointv3.ClusterLoadAssignment {
	if req.refused {
		return cached(t, t.clas, "acm-refused|"+req.target.cluster, func() *endpointv3.ClusterLoadAssignment {
			return &endpointv3.ClusterLoadAssignment{ClusterName: req.target.cluster}
		})
	}
	return t.loadAssignment(req.mesh, req.target)
}

// trustsACM reports whether an enforced client policy trusts only ACM
// Private CA, which meshlens cannot read.
func trustsACM(p *v1alpha1.ClientPolicy) bool {
	if p == nil || p.TLS == nil || (p.TLS.Enforce != nil && !*p.TLS.Enforce) {
		return false
	}
	v := p.TLS.Validation
	return v != nil && v.Trust != nil && v.Trust.ACM != nil && v.Trust.File == nil && v.Trust.SDS == nil
}

// acmRefused reports whether traffic to a port is refused because its
// client policy trusts ACM Private CA.
func acmRefused(p *v1alpha1.ClientPolicy, port uint32) bool {
	if !trustsACM(p) {
		return false
	}
	if len(p.TLS.Ports) == 0 {
		return true
	}
	for _, pt := range p.TLS.Ports {
		if uint32(pt) == port {
			return true
		}
	}
	return false
}

func buildOutboundCluster(req *clusterReq, tls *v1alpha1.ClientPolicyTLS, fl Flavour, meshCA bool) *clusterv3.Cluster {
	tg := req.target
	c := &clusterv3.Cluster{
		Name:                 tg.cluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsConfigSource()},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		Metadata:             &corev3.Metadata{FilterMetadata: xdsmeta.FilterMetadata(xdsmeta.KeyMesh, req.mesh, xdsmeta.KeyVirtualNode, tg.node)},
	}
	if isHTTP2(tg.protocol) {
		c.TypedExtensionProtocolOptions = http2ProtocolOptions()
	}
	var pool *v1alpha1.ConnectionPool
	if tg.listener != nil {
		pool = tg.listener.ConnectionPool
	}
	if req.gwPool != nil {
		pool = &v1alpha1.ConnectionPool{HTTP: req.gwPool.HTTP, HTTP2: req.gwPool.HTTP2, GRPC: req.gwPool.GRPC}
	}
	c.CircuitBreakers = circuitBreakers(tg.protocol, pool)
	if tg.listener != nil {
		c.OutlierDetection = outlierDetection(tg.listener.OutlierDetection)
		if fl == FlavourEnvoy {
			if hc := healthCheck(tg.listener.HealthCheck); hc != nil {
				c.HealthChecks = []*corev3.HealthCheck{hc}
			}
		}
	}
	// Proxyless gRPC accepts TLS only through certificate provider
	// plugins, not files or SDS, so it gets none.
	if tls != nil && fl == FlavourEnvoy {
		c.TransportSocket = upstreamTLS(tls, meshCA)
	}
	return c
}

// inboundCluster is the STATIC cluster of the local application behind
// one listener of a virtual node, limited by the listener's connection
// pool as App Mesh limits the sidecar's connections to its application.
func inboundCluster(mesh, node string, l *v1alpha1.Listener) *clusterv3.Cluster {
	port, proto := portOf(l.PortMapping)
	name := xdsmeta.InboundClusterName(mesh, node, proto, port)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("127.0.0.1", port, true, 0)},
			}},
		},
		CircuitBreakers: circuitBreakers(proto, l.ConnectionPool),
		Metadata:        &corev3.Metadata{FilterMetadata: xdsmeta.FilterMetadata(xdsmeta.KeyMesh, mesh, xdsmeta.KeyVirtualNode, node)},
	}
	if isHTTP2(proto) {
		c.TypedExtensionProtocolOptions = http2ProtocolOptions()
	}
	return c
}

// passthroughCluster forwards to wherever the connection was going
// (egressFilter ALLOW_ALL).
func passthroughCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 xdsmeta.PassthroughClusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		CircuitBreakers:      circuitBreakers("", nil),
	}
}

// http2ProtocolOptions makes a cluster speak HTTP/2 (h2c) upstream.
func http2ProtocolOptions() map[string]*anypb.Any {
	opts := &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	}
	return map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(opts)}
}

// circuitBreakers translates a listener's connection pool for its
// protocol; thresholds the pool does not set keep App Mesh's defaults.
func circuitBreakers(protocol string, cp *v1alpha1.ConnectionPool) *clusterv3.CircuitBreakers {
	th := &clusterv3.CircuitBreakers_Thresholds{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     wrapperspb.UInt32(unlimited),
		MaxPendingRequests: wrapperspb.UInt32(unlimited),
		MaxRequests:        wrapperspb.UInt32(unlimited),
		MaxRetries:         wrapperspb.UInt32(unlimited),
	}
	positive := func(n int) *wrapperspb.UInt32Value {
		if n <= 0 {
			return nil
		}
		return wrapperspb.UInt32(uint32(min(n, unlimited)))
	}
	set := func(dst **wrapperspb.UInt32Value, n int) {
		if v := positive(n); v != nil {
			*dst = v
		}
	}
	if cp != nil {
		switch protocol {
		case "http":
			if cp.HTTP != nil {
				set(&th.MaxConnections, cp.HTTP.MaxConnections)
				set(&th.MaxPendingRequests, cp.HTTP.MaxPendingRequests)
			}
		case "http2":
			if cp.HTTP2 != nil {
				set(&th.MaxRequests, cp.HTTP2.MaxRequests)
			}
		case "grpc":
			if cp.GRPC != nil {
				set(&th.MaxRequests, cp.GRPC.MaxRequests)
			}
		case "tcp":
			if cp.TCP != nil {
				set(&th.MaxConnections, cp.TCP.MaxConnections)
			}
		}
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
}

// outlierDetection ejects a host after maxServerErrors consecutive 5xx,
// App Mesh's only outlier signal; success-rate ejection is off.
func outlierDetection(od *v1alpha1.OutlierDetection) *clusterv3.OutlierDetection {
	if od == nil || od.MaxServerErrors <= 0 {
		return nil
	}
	out := &clusterv3.OutlierDetection{
		Consecutive_5Xx:          wrapperspb.UInt32(uint32(min(od.MaxServerErrors, unlimited))),
		EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
		EnforcingSuccessRate:     wrapperspb.UInt32(0),
		Interval:                 toDuration(od.Interval),
		BaseEjectionTime:         toDuration(od.BaseEjectionDuration),
	}
	if p := od.MaxEjectionPercent; p >= 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(min(p, 100)))
	}
	return out
}

// healthCheck translates a listener's active health check, run by every
// data plane that reaches the listener.
func healthCheck(hc *v1alpha1.HealthCheckPolicy) *corev3.HealthCheck {
	if hc == nil || hc.IntervalMillis <= 0 || hc.TimeoutMillis <= 0 {
		return nil
	}
	out := &corev3.HealthCheck{
		Timeout:            durationpb.New(time.Duration(hc.TimeoutMillis) * time.Millisecond),
		Interval:           durationpb.New(time.Duration(hc.IntervalMillis) * time.Millisecond),
		HealthyThreshold:   wrapperspb.UInt32(uint32(max(hc.HealthyThreshold, 1))),
		UnhealthyThreshold: wrapperspb.UInt32(uint32(max(hc.UnhealthyThreshold, 1))),
	}
	path := healthCheckPath(hc.Path)
	switch hc.Protocol {
	case "http":
		out.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{Path: path}}
	case "http2":
		out.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
			Path: path, CodecClientType: typev3.CodecClientType_HTTP2,
		}}
	case "grpc":
		out.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{}}
	default: // tcp: a connection that opens is healthy
		out.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}}
	}
	return out
}

// healthCheckPath is the request path of an HTTP health check: "/" when
// none is given, and a leading "/" added when the path lacks one. App
// Mesh accepted "health" (its CDK examples write it so) and checked
// "/health"; a path without the slash would otherwise be appended to the
// endpoint's address ("http://10.0.0.1:8080health") and fail every check.
func healthCheckPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "/" + p
	}
	return p
}

// effectiveTLS returns the TLS a client policy originates to a target
// port: none when the policy is absent, not enforced, limited to other
// ports, or trusts only ACM private CAs while the control plane runs no
// mesh CA (a TLS context without trust would accept any server: such
// traffic is refused instead, see outboundCluster). With a mesh CA, ACM
// trust is trust in the mesh CA's root (see docs/security.md).
func effectiveTLS(p *v1alpha1.ClientPolicy, port uint32, meshCA bool) *v1alpha1.ClientPolicyTLS {
	if p == nil || p.TLS == nil {
		return nil
	}
	tls := p.TLS
	if tls.Enforce != nil && !*tls.Enforce {
		return nil
	}
	if len(tls.Ports) > 0 {
		found := false
		for _, pt := range tls.Ports {
			if uint32(pt) == port {
				found = true
			}
		}
		if !found {
			return nil
		}
	}
	if tls.Validation == nil || tls.Validation.Trust == nil ||
		(tls.Validation.Trust.File == nil && tls.Validation.Trust.SDS == nil && !(meshCA && tls.Validation.Trust.ACM != nil)) {
		return nil
	}
	return tls
}

// upstreamTLS originates TLS (and mTLS with a client certificate) to a
// cluster, trusting the policy's CA bundle and checking its SANs. With a
// mesh CA, ACM trust is the mesh root (MeshCATrustSecret), and a policy
// that trusts it and names no certificate of its own presents the node's
// mesh identity (MeshCAIdentitySecret), so that mesh traffic is mutual TLS.
func upstreamTLS(tls *v1alpha1.ClientPolicyTLS, meshCA bool) *corev3.TransportSocket {
	common := &tlsv3.CommonTlsContext{}
	v := tls.Validation
	var trustFile, trustSDS string
	if v.Trust.File != nil {
		trustFile = v.Trust.File.CertificateChain
	}
	if v.Trust.SDS != nil {
		trustSDS = v.Trust.SDS.SecretName
	}
	acm := meshCA && v.Trust.ACM != nil && trustFile == "" && trustSDS == ""
	if acm {
		trustSDS = MeshCATrustSecret
	}
	setValidation(common, trustFile, trustSDS, v.SubjectAlternativeNames)
	if c := tls.Certificate; c != nil {
		switch {
		case c.File != nil:
			common.TlsCertificates = []*tlsv3.TlsCertificate{fileCertificate(c.File)}
		case c.SDS != nil:
			common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret(c.SDS.SecretName)}
		}
	} else if acm {
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret(MeshCAIdentitySecret)}
	}
	return tlsTransportSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: common})
}

// setValidation sets how a TLS context checks its peer: a CA bundle from a
// file or an SDS secret, and exact subject alternative names (URIs when
// they hold "://", such as SPIFFE ids, DNS names otherwise).
func setValidation(common *tlsv3.CommonTlsContext, trustFile, trustSDS string, sans *v1alpha1.SubjectAlternativeNames) {
	var matchers []*tlsv3.SubjectAltNameMatcher
	if sans != nil && sans.Match != nil {
		for _, s := range sans.Match.Exact {
			if s == "" {
				continue
			}
			typ := tlsv3.SubjectAltNameMatcher_DNS
			if strings.Contains(s, "://") {
				typ = tlsv3.SubjectAltNameMatcher_URI
			}
			matchers = append(matchers, &tlsv3.SubjectAltNameMatcher{
				SanType: typ,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}},
			})
		}
	}
	switch {
	case trustSDS != "" && len(matchers) > 0:
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: matchers},
				ValidationContextSdsSecretConfig: sdsSecret(trustSDS),
			},
		}
	case trustSDS != "":
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: sdsSecret(trustSDS),
		}
	case trustFile != "":
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa:                 fileSource(trustFile),
				MatchTypedSubjectAltNames: matchers,
			},
		}
	}
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

func fileCertificate(f *v1alpha1.TLSFileCertificate) *tlsv3.TlsCertificate {
	return &tlsv3.TlsCertificate{
		CertificateChain: fileSource(f.CertificateChain),
		PrivateKey:       fileSource(f.PrivateKey),
	}
}

// sdsSecret names a secret delivered on the ADS stream.
func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsConfigSource()}
}

func tlsTransportSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}

// mustAny packs a message deterministically (map entries sorted), so the
// same configuration always hashes to the same version. Packing a
// well-formed generated message cannot fail: a failure is a programming
// error.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(fmt.Sprintf("xds: pack %T: %v", m, err))
	}
	return a
}
