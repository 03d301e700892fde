package xds

import (
	"net"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// Tracing: a mesh's spec.meshlens.tracing becomes the tracing field of
// every HTTP connection manager of its sidecars and gateways, in the
// form a real Envoy reads, plus the cluster of the collector where the
// provider needs one. A mesh that says nothing gets the builtin
// provider: OTLP to the control plane's own trace store, at the address
// the control plane gives (Options.BuiltinCollector); without one, no
// tracing. Proxyless gRPC clients get none: gRPC reads no tracing from
// xDS.

// Tracing defaults and names.
const (
	// DefaultSamplingPercentage is the share of requests that start a
	// trace when the mesh names none.
	DefaultSamplingPercentage = 1.0
	// BuiltinTracingClusterName reaches the control plane's OTLP
	// receiver (the builtin provider).
	BuiltinTracingClusterName = xdsmeta.BuiltinTracingClusterName
	// OTLPTracingClusterName reaches the mesh's OTLP collector.
	OTLPTracingClusterName = "cds_tracing_otlp"
	// ZipkinTracingClusterName reaches the mesh's Zipkin collector.
	ZipkinTracingClusterName = "cds_tracing_zipkin"
	// defaultXRayDaemon is where the X-Ray daemon listens by default.
	defaultXRayDaemon = "127.0.0.1:2000"
	// zipkinSpansPath is Zipkin's v2 span intake.
	zipkinSpansPath = "/api/v2/spans"
	// otlpExportTimeout bounds one export of spans over gRPC.
	otlpExportTimeout = 5 * 1e9
)

// meshTracing is the tracing of one mesh, resolved.
type meshTracing struct {
	provider string
	endpoint string // host:port, "" for none
	sampling float64
	manifest string
	tags     []v1alpha1.TracingTag
}

// tracingOf resolves the tracing of the view's mesh, or nil for none.
func (b *viewBuilder) tracingOf() *meshTracing {
	mt := &meshTracing{provider: v1alpha1.TracingBuiltin, sampling: DefaultSamplingPercentage}
	mesh := b.t.lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: b.mesh})
	if mesh != nil && mesh.MeshSpec != nil && mesh.MeshSpec.Meshlens != nil && mesh.MeshSpec.Meshlens.Tracing != nil {
		t := mesh.MeshSpec.Meshlens.Tracing
		if t.Provider != "" {
			mt.provider = t.Provider
		}
		mt.endpoint, mt.manifest, mt.tags = t.Endpoint, t.SamplingRuleManifest, t.CustomTags
		if t.SamplingPercentage != nil {
			mt.sampling = *t.SamplingPercentage
		}
	}
	if o := b.selfTracing(); o != nil && o.SamplingPercentage != nil {
		mt.sampling = *o.SamplingPercentage
	}
	switch mt.provider {
	case v1alpha1.TracingNone:
		return nil
	case v1alpha1.TracingBuiltin:
		if b.t.builtinCollector == "" {
			return nil
		}
		mt.endpoint = b.t.builtinCollector
	case v1alpha1.TracingXRay:
		if mt.endpoint == "" {
			mt.endpoint = defaultXRayDaemon
		}
	}
	return mt
}

// selfTracing is the virtual node's or gateway's own override, or nil.
func (b *viewBuilder) selfTracing() *v1alpha1.TracingOverride {
	r := b.t.lookup.Get(b.self)
	switch {
	case r == nil:
		return nil
	case r.VirtualNodeSpec != nil && r.VirtualNodeSpec.Meshlens != nil:
		return r.VirtualNodeSpec.Meshlens.Tracing
	case r.VirtualGatewaySpec != nil && r.VirtualGatewaySpec.Meshlens != nil:
		return r.VirtualGatewaySpec.Meshlens.Tracing
	}
	return nil
}

// traced sets the tracing of an HTTP connection manager of the view and
// adds the collector's cluster to the view once. upstreamSpans makes the
// router start a client span for each upstream request (each retry
// too); the sidecar's inbound connection managers, whose upstream is
// the local application, do without.
func (b *viewBuilder) traced(hcm *hcmv3.HttpConnectionManager, upstreamSpans bool) *hcmv3.HttpConnectionManager {
	mt := b.tracingOf()
	if mt == nil {
		return hcm
	}
	service := b.self.Mesh + "/" + b.self.Name
	tr := &hcmv3.HttpConnectionManager_Tracing{
		ClientSampling:  &typev3.Percent{Value: 100},
		RandomSampling:  &typev3.Percent{Value: mt.sampling},
		OverallSampling: &typev3.Percent{Value: 100},
		CustomTags:      b.customTags(mt.tags),
	}
	if upstreamSpans {
		tr.SpawnUpstreamSpan = wrapperspb.Bool(true)
	}
	var cluster *clusterv3.Cluster
	switch mt.provider {
	case v1alpha1.TracingBuiltin, v1alpha1.TracingOTLP:
		name := OTLPTracingClusterName
		if mt.provider == v1alpha1.TracingBuiltin {
			name = BuiltinTracingClusterName
		}
		cluster = collectorCluster(name, mt.endpoint, true)
		tr.Provider = &tracev3.Tracing_Http{
			Name: "envoy.tracers.opentelemetry",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.OpenTelemetryConfig{
				GrpcService: &corev3.GrpcService{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: name}},
					Timeout:         durationpb.New(otlpExportTimeout),
				},
				ServiceName: service,
			})},
		}
	case v1alpha1.TracingZipkin:
		cluster = collectorCluster(ZipkinTracingClusterName, mt.endpoint, false)
		host, _, _ := net.SplitHostPort(mt.endpoint)
		tr.Provider = &tracev3.Tracing_Http{
			Name: "envoy.tracers.zipkin",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.ZipkinConfig{
				CollectorCluster:         ZipkinTracingClusterName,
				CollectorEndpoint:        zipkinSpansPath,
				CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON,
				CollectorHostname:        host,
				TraceId_128Bit:           true,
				SharedSpanContext:        wrapperspb.Bool(false),
			})},
		}
	case v1alpha1.TracingXRay:
		host, port := splitHostPort(mt.endpoint)
		cfg := &tracev3.XRayConfig{
			DaemonEndpoint: &corev3.SocketAddress{Protocol: corev3.SocketAddress_UDP, Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}},
			SegmentName:    service,
		}
		if mt.manifest != "" {
			cfg.SamplingRuleManifest = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: mt.manifest}}
		}
		tr.Provider = &tracev3.Tracing_Http{
			Name:       "envoy.tracers.xray",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(cfg)},
		}
	}
	hcm.Tracing = tr
	if cluster != nil && !b.hasCluster(cluster.Name) {
		b.clusters = append(b.clusters, cluster)
	}
	return hcm
}

func (b *viewBuilder) hasCluster(name string) bool {
	for _, c := range b.clusters {
		if c.Name == name {
			return true
		}
	}
	return false
}

// customTags tags every span with the mesh and the virtual node or
// gateway, then the mesh's own tags.
func (b *viewBuilder) customTags(tags []v1alpha1.TracingTag) []*tracingtypev3.CustomTag {
	self := "meshlens.virtual_node"
	if b.self.Kind == v1alpha1.KindVirtualGateway {
		self = "meshlens.virtual_gateway"
	}
	out := []*tracingtypev3.CustomTag{literalTag("meshlens.mesh", b.self.Mesh), literalTag(self, b.self.Name)}
	for _, t := range tags {
		if t.RequestHeader != nil {
			out = append(out, &tracingtypev3.CustomTag{Tag: t.Tag, Type: &tracingtypev3.CustomTag_RequestHeader{
				RequestHeader: &tracingtypev3.CustomTag_Header{Name: t.RequestHeader.Name, DefaultValue: t.RequestHeader.DefaultValue},
			}})
			continue
		}
		out = append(out, literalTag(t.Tag, t.Literal))
	}
	return out
}

func literalTag(tag, value string) *tracingtypev3.CustomTag {
	return &tracingtypev3.CustomTag{Tag: tag, Type: &tracingtypev3.CustomTag_Literal_{Literal: &tracingtypev3.CustomTag_Literal{Value: value}}}
}

// collectorCluster reaches a collector at host:port: STATIC for an IP
// address, STRICT_DNS for a name; http2 for a gRPC collector.
func collectorCluster(name, endpoint string, http2 bool) *clusterv3.Cluster {
	host, port := splitHostPort(endpoint)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(host, port, true, 0)}}},
		},
	}
	if net.ParseIP(host) == nil {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
	}
	if http2 {
		c.TypedExtensionProtocolOptions = http2ProtocolOptions()
	}
	return c
}

// splitHostPort splits a validated host:port.
func splitHostPort(s string) (string, uint32) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return s, 0
	}
	n, _ := strconv.ParseUint(p, 10, 16)
	return host, uint32(n)
}

// routeTracing is a route's override of the mesh's sampling, or nil.
func routeTracing(t *v1alpha1.TracingOverride) *routev3.Tracing {
	if t == nil || t.SamplingPercentage == nil {
		return nil
	}
	return &routev3.Tracing{RandomSampling: fractionalPercent(t.SamplingPercentage)}
}
