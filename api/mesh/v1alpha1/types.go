package v1alpha1

import "time"

// Kind names a resource type, spelled as App Mesh spells it.
type Kind string

// The resource kinds of the App Mesh model.
const (
	KindMesh           Kind = "Mesh"
	KindVirtualNode    Kind = "VirtualNode"
	KindVirtualService Kind = "VirtualService"
	KindVirtualRouter  Kind = "VirtualRouter"
	KindRoute          Kind = "Route"
	KindVirtualGateway Kind = "VirtualGateway"
	KindGatewayRoute   Kind = "GatewayRoute"
)

// Kinds lists every kind in the order a batch is best applied: a resource
// comes after the resources it refers to.
var Kinds = []Kind{
	KindMesh, KindVirtualNode, KindVirtualRouter, KindRoute,
	KindVirtualService, KindVirtualGateway, KindGatewayRoute,
}

// Key identifies one resource. Parent is the virtual router of a Route or
// the virtual gateway of a GatewayRoute, and empty for every other kind;
// Mesh is empty for a Mesh.
type Key struct {
	Kind   Kind   `json:"kind"`
	Mesh   string `json:"mesh,omitempty"`
	Parent string `json:"parent,omitempty"`
	Name   string `json:"name"`
}

// String renders the key as kind followed by its path, for messages.
func (k Key) String() string {
	switch {
	case k.Kind == KindMesh:
		return string(k.Kind) + " " + k.Name
	case k.Parent != "":
		return string(k.Kind) + " " + k.Mesh + "/" + k.Parent + "/" + k.Name
	default:
		return string(k.Kind) + " " + k.Mesh + "/" + k.Name
	}
}

// Resource is one document of the meshlens format: a kind, the names that
// place it, App Mesh's metadata and status, and the kind's spec. Exactly
// one of the spec fields is set, the one that matches Kind; in the JSON
// and YAML form it appears under the single key "spec".
type Resource struct {
	Kind           Kind      `json:"kind"`
	Mesh           string    `json:"mesh,omitempty"`
	Name           string    `json:"name"`
	VirtualRouter  string    `json:"virtualRouter,omitempty"`
	VirtualGateway string    `json:"virtualGateway,omitempty"`
	Metadata       *Metadata `json:"metadata,omitempty"`
	Status         *Status   `json:"status,omitempty"`
	Tags           []Tag     `json:"tags,omitempty"`

	MeshSpec           *MeshSpec           `json:"-"`
	VirtualNodeSpec    *VirtualNodeSpec    `json:"-"`
	VirtualServiceSpec *VirtualServiceSpec `json:"-"`
	VirtualRouterSpec  *VirtualRouterSpec  `json:"-"`
	RouteSpec          *RouteSpec          `json:"-"`
	VirtualGatewaySpec *VirtualGatewaySpec `json:"-"`
	GatewayRouteSpec   *GatewayRouteSpec   `json:"-"`
}

// Key returns the resource's identity.
func (r *Resource) Key() Key {
	k := Key{Kind: r.Kind, Mesh: r.Mesh, Name: r.Name}
	switch r.Kind {
	case KindMesh:
		k.Mesh = ""
	case KindRoute:
		k.Parent = r.VirtualRouter
	case KindGatewayRoute:
		k.Parent = r.VirtualGateway
	}
	return k
}

// Spec returns the spec that matches the resource's kind, or nil.
func (r *Resource) Spec() any {
	switch r.Kind {
	case KindMesh:
		return r.MeshSpec
	case KindVirtualNode:
		return r.VirtualNodeSpec
	case KindVirtualService:
		return r.VirtualServiceSpec
	case KindVirtualRouter:
		return r.VirtualRouterSpec
	case KindRoute:
		return r.RouteSpec
	case KindVirtualGateway:
		return r.VirtualGatewaySpec
	case KindGatewayRoute:
		return r.GatewayRouteSpec
	}
	return nil
}

// Metadata is App Mesh's ResourceMetadata, kept by the store.
type Metadata struct {
	Arn           string    `json:"arn,omitempty"`
	UID           string    `json:"uid,omitempty"`
	Version       int64     `json:"version,omitempty"`
	CreatedAt     time.Time `json:"createdAt,omitzero"`
	LastUpdatedAt time.Time `json:"lastUpdatedAt,omitzero"`
	MeshOwner     string    `json:"meshOwner,omitempty"`
	ResourceOwner string    `json:"resourceOwner,omitempty"`
}

// Status is App Mesh's resource status: ACTIVE, INACTIVE or DELETED.
type Status struct {
	Status string `json:"status"`
}

// Tag is an App Mesh resource tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// ---- Mesh ----

// MeshSpec is App Mesh's MeshSpec.
type MeshSpec struct {
	EgressFilter     *EgressFilter         `json:"egressFilter,omitempty"`
	ServiceDiscovery *MeshServiceDiscovery `json:"serviceDiscovery,omitempty"`
	// Meshlens holds meshlens's extensions (see meshlens.go).
	Meshlens *MeshMeshlens `json:"meshlens,omitempty"`
}

// EgressFilter says whether traffic may leave the mesh: ALLOW_ALL or DROP_ALL.
type EgressFilter struct {
	Type string `json:"type"`
}

// MeshServiceDiscovery holds the mesh-wide IP preference.
type MeshServiceDiscovery struct {
	IPPreference string `json:"ipPreference,omitempty"`
}

// ---- shared pieces ----

// Duration is App Mesh's Duration: a value and a unit, "s" or "ms".
type Duration struct {
	Unit  string `json:"unit,omitempty"`
	Value *int64 `json:"value,omitempty"`
}

// PortMapping is a listener's port and protocol (http, http2, grpc, tcp).
type PortMapping struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

// HealthCheckPolicy is a listener's active health check.
type HealthCheckPolicy struct {
	HealthyThreshold   int    `json:"healthyThreshold"`
	IntervalMillis     int64  `json:"intervalMillis"`
	Path               string `json:"path,omitempty"`
	Port               int    `json:"port,omitempty"`
	Protocol           string `json:"protocol"`
	TimeoutMillis      int64  `json:"timeoutMillis"`
	UnhealthyThreshold int    `json:"unhealthyThreshold"`
}

// OutlierDetection ejects hosts that return server errors.
type OutlierDetection struct {
	BaseEjectionDuration *Duration `json:"baseEjectionDuration"`
	Interval             *Duration `json:"interval"`
	MaxEjectionPercent   int       `json:"maxEjectionPercent"`
	MaxServerErrors      int64     `json:"maxServerErrors"`
}

// ListenerTimeout holds one timeout block per protocol; the one that
// matches the listener's protocol applies.
type ListenerTimeout struct {
	HTTP  *HTTPTimeout `json:"http,omitempty"`
	HTTP2 *HTTPTimeout `json:"http2,omitempty"`
	GRPC  *GRPCTimeout `json:"grpc,omitempty"`
	TCP   *TCPTimeout  `json:"tcp,omitempty"`
}

// HTTPTimeout is App Mesh's HttpTimeout.
type HTTPTimeout struct {
	Idle       *Duration `json:"idle,omitempty"`
	PerRequest *Duration `json:"perRequest,omitempty"`
}

// GRPCTimeout is App Mesh's GrpcTimeout.
type GRPCTimeout struct {
	Idle       *Duration `json:"idle,omitempty"`
	PerRequest *Duration `json:"perRequest,omitempty"`
}

// TCPTimeout is App Mesh's TcpTimeout.
type TCPTimeout struct {
	Idle *Duration `json:"idle,omitempty"`
}

// ConnectionPool limits connections and requests to a virtual node's
// listener; one block per protocol.
type ConnectionPool struct {
	HTTP  *HTTPConnectionPool  `json:"http,omitempty"`
	HTTP2 *HTTP2ConnectionPool `json:"http2,omitempty"`
	GRPC  *GRPCConnectionPool  `json:"grpc,omitempty"`
	TCP   *TCPConnectionPool   `json:"tcp,omitempty"`
}

// HTTPConnectionPool is App Mesh's VirtualNodeHttpConnectionPool.
type HTTPConnectionPool struct {
	MaxConnections     int `json:"maxConnections"`
	MaxPendingRequests int `json:"maxPendingRequests,omitempty"`
}

// HTTP2ConnectionPool is App Mesh's VirtualNodeHttp2ConnectionPool.
type HTTP2ConnectionPool struct {
	MaxRequests int `json:"maxRequests"`
}

// GRPCConnectionPool is App Mesh's VirtualNodeGrpcConnectionPool.
type GRPCConnectionPool struct {
	MaxRequests int `json:"maxRequests"`
}

// TCPConnectionPool is App Mesh's VirtualNodeTcpConnectionPool.
type TCPConnectionPool struct {
	MaxConnections int `json:"maxConnections"`
}

// ListenerTLS terminates TLS on a listener.
type ListenerTLS struct {
	Mode        string                    `json:"mode"`
	Certificate *ListenerTLSCertificate   `json:"certificate"`
	Validation  *ListenerTLSValidationCtx `json:"validation,omitempty"`
}

// ListenerTLSCertificate is where a listener finds its certificate: an ACM
// ARN (kept, not acted on), files, or an SDS secret.
type ListenerTLSCertificate struct {
	ACM  *ListenerTLSACMCertificate `json:"acm,omitempty"`
	File *TLSFileCertificate        `json:"file,omitempty"`
	SDS  *TLSSDSSecret              `json:"sds,omitempty"`
}

// ListenerTLSACMCertificate names an ACM certificate.
type ListenerTLSACMCertificate struct {
	CertificateArn string `json:"certificateArn"`
}

// TLSFileCertificate is a certificate chain and key on the proxy's disk.
type TLSFileCertificate struct {
	CertificateChain string `json:"certificateChain"`
	PrivateKey       string `json:"privateKey"`
}

// TLSSDSSecret names a secret served by SDS.
type TLSSDSSecret struct {
	SecretName string `json:"secretName"`
}

// ListenerTLSValidationCtx says which client certificates a listener trusts.
type ListenerTLSValidationCtx struct {
	SubjectAlternativeNames *SubjectAlternativeNames       `json:"subjectAlternativeNames,omitempty"`
	Trust                   *ListenerTLSValidationCtxTrust `json:"trust"`
}

// ListenerTLSValidationCtxTrust is a trust bundle from a file or SDS.
type ListenerTLSValidationCtxTrust struct {
	File *TLSValidationFileTrust `json:"file,omitempty"`
	SDS  *TLSSDSSecret           `json:"sds,omitempty"`
}

// TLSValidationFileTrust is a CA bundle on the proxy's disk.
type TLSValidationFileTrust struct {
	CertificateChain string `json:"certificateChain"`
}

// SubjectAlternativeNames restricts the peer's SANs.
type SubjectAlternativeNames struct {
	Match *SubjectAlternativeNameMatchers `json:"match"`
}

// SubjectAlternativeNameMatchers matches SANs exactly.
type SubjectAlternativeNameMatchers struct {
	Exact []string `json:"exact"`
}

// ClientPolicy is how a proxy talks to a backend.
type ClientPolicy struct {
	TLS *ClientPolicyTLS `json:"tls,omitempty"`
}

// ClientPolicyTLS originates TLS to a backend.
type ClientPolicyTLS struct {
	Certificate *ClientTLSCertificate `json:"certificate,omitempty"`
	Enforce     *bool                 `json:"enforce,omitempty"`
	Ports       []int                 `json:"ports,omitempty"`
	Validation  *TLSValidationContext `json:"validation"`
}

// ClientTLSCertificate is the client certificate presented for mTLS.
type ClientTLSCertificate struct {
	File *TLSFileCertificate `json:"file,omitempty"`
	SDS  *TLSSDSSecret       `json:"sds,omitempty"`
}

// TLSValidationContext says which server certificates a client trusts.
type TLSValidationContext struct {
	SubjectAlternativeNames *SubjectAlternativeNames   `json:"subjectAlternativeNames,omitempty"`
	Trust                   *TLSValidationContextTrust `json:"trust"`
}

// TLSValidationContextTrust is a trust bundle from ACM (kept, not acted
// on), a file, or SDS.
type TLSValidationContextTrust struct {
	ACM  *TLSValidationACMTrust  `json:"acm,omitempty"`
	File *TLSValidationFileTrust `json:"file,omitempty"`
	SDS  *TLSSDSSecret           `json:"sds,omitempty"`
}

// TLSValidationACMTrust lists ACM private CAs.
type TLSValidationACMTrust struct {
	CertificateAuthorityArns []string `json:"certificateAuthorityArns"`
}

// BackendDefaults apply to every backend that sets no client policy.
type BackendDefaults struct {
	ClientPolicy *ClientPolicy `json:"clientPolicy,omitempty"`
}

// Logging configures the access log.
type Logging struct {
	AccessLog *AccessLog `json:"accessLog,omitempty"`
}

// AccessLog writes to a file.
type AccessLog struct {
	File *FileAccessLog `json:"file,omitempty"`
}

// FileAccessLog is a path (such as /dev/stdout) and an optional format.
type FileAccessLog struct {
	Path   string         `json:"path"`
	Format *LoggingFormat `json:"format,omitempty"`
}

// LoggingFormat is either Envoy's text format or JSON key/value pairs.
type LoggingFormat struct {
	JSON []JSONFormatRef `json:"json,omitempty"`
	Text *string         `json:"text,omitempty"`
}

// JSONFormatRef is one key of a JSON access-log line and its format string.
type JSONFormatRef struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ---- VirtualNode ----

// VirtualNodeSpec is App Mesh's VirtualNodeSpec.
type VirtualNodeSpec struct {
	BackendDefaults  *BackendDefaults  `json:"backendDefaults,omitempty"`
	Backends         []Backend         `json:"backends,omitempty"`
	Listeners        []Listener        `json:"listeners,omitempty"`
	Logging          *Logging          `json:"logging,omitempty"`
	ServiceDiscovery *ServiceDiscovery `json:"serviceDiscovery,omitempty"`
	// Meshlens holds meshlens's extensions (see meshlens.go).
	Meshlens *NodeMeshlens `json:"meshlens,omitempty"`
}

// Backend is a virtual service this node calls.
type Backend struct {
	VirtualService *VirtualServiceBackend `json:"virtualService,omitempty"`
}

// VirtualServiceBackend names the service and its client policy.
type VirtualServiceBackend struct {
	ClientPolicy       *ClientPolicy `json:"clientPolicy,omitempty"`
	VirtualServiceName string        `json:"virtualServiceName"`
}

// Listener is a virtual node's inbound listener.
type Listener struct {
	ConnectionPool   *ConnectionPool    `json:"connectionPool,omitempty"`
	HealthCheck      *HealthCheckPolicy `json:"healthCheck,omitempty"`
	OutlierDetection *OutlierDetection  `json:"outlierDetection,omitempty"`
	PortMapping      *PortMapping       `json:"portMapping"`
	Timeout          *ListenerTimeout   `json:"timeout,omitempty"`
	TLS              *ListenerTLS       `json:"tls,omitempty"`
	// Meshlens holds the listener's meshlens extension (not App Mesh).
	Meshlens *ListenerMeshlens `json:"meshlens,omitempty"`
}

// ServiceDiscovery says how a node's instances are found: by DNS or in the
// instance registry (App Mesh's AWS Cloud Map).
type ServiceDiscovery struct {
	AWSCloudMap *AWSCloudMapServiceDiscovery `json:"awsCloudMap,omitempty"`
	DNS         *DNSServiceDiscovery         `json:"dns,omitempty"`
}

// AWSCloudMapServiceDiscovery selects registered instances by namespace,
// service and attributes.
type AWSCloudMapServiceDiscovery struct {
	Attributes    []AWSCloudMapInstanceAttribute `json:"attributes,omitempty"`
	IPPreference  string                         `json:"ipPreference,omitempty"`
	NamespaceName string                         `json:"namespaceName"`
	ServiceName   string                         `json:"serviceName"`
}

// AWSCloudMapInstanceAttribute is an attribute an instance must carry.
type AWSCloudMapInstanceAttribute struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// DNSServiceDiscovery resolves a hostname; the listener's port is used.
type DNSServiceDiscovery struct {
	Hostname     string `json:"hostname"`
	IPPreference string `json:"ipPreference,omitempty"`
	ResponseType string `json:"responseType,omitempty"`
}

// ---- VirtualService ----

// VirtualServiceSpec is App Mesh's VirtualServiceSpec.
type VirtualServiceSpec struct {
	Provider *VirtualServiceProvider `json:"provider,omitempty"`
}

// VirtualServiceProvider is a virtual node or a virtual router.
type VirtualServiceProvider struct {
	VirtualNode   *VirtualNodeServiceProvider   `json:"virtualNode,omitempty"`
	VirtualRouter *VirtualRouterServiceProvider `json:"virtualRouter,omitempty"`
}

// VirtualNodeServiceProvider names the node that provides a service.
type VirtualNodeServiceProvider struct {
	VirtualNodeName string `json:"virtualNodeName"`
}

// VirtualRouterServiceProvider names the router that provides a service.
type VirtualRouterServiceProvider struct {
	VirtualRouterName string `json:"virtualRouterName"`
}

// ---- VirtualRouter ----

// VirtualRouterSpec is App Mesh's VirtualRouterSpec.
type VirtualRouterSpec struct {
	Listeners []VirtualRouterListener `json:"listeners,omitempty"`
}

// VirtualRouterListener is a port and protocol the router serves.
type VirtualRouterListener struct {
	PortMapping *PortMapping `json:"portMapping"`
}

// ---- Route ----

// RouteSpec is App Mesh's RouteSpec: exactly one of the four routes.
type RouteSpec struct {
	GRPCRoute  *GRPCRoute `json:"grpcRoute,omitempty"`
	HTTP2Route *HTTPRoute `json:"http2Route,omitempty"`
	HTTPRoute  *HTTPRoute `json:"httpRoute,omitempty"`
	Priority   *int       `json:"priority,omitempty"`
	TCPRoute   *TCPRoute  `json:"tcpRoute,omitempty"`
}

// HTTPRoute is App Mesh's HttpRoute, used for http and http2.
type HTTPRoute struct {
	Action      *HTTPRouteAction `json:"action"`
	Match       *HTTPRouteMatch  `json:"match"`
	RetryPolicy *HTTPRetryPolicy `json:"retryPolicy,omitempty"`
	Timeout     *HTTPTimeout     `json:"timeout,omitempty"`
	// Meshlens holds the route's meshlens extension (not App Mesh).
	Meshlens *RouteMeshlens `json:"meshlens,omitempty"`
}

// HTTPRouteAction splits traffic over weighted targets.
type HTTPRouteAction struct {
	WeightedTargets []WeightedTarget `json:"weightedTargets"`
}

// WeightedTarget is a virtual node, its weight (0-100) and optional port.
type WeightedTarget struct {
	Port        int    `json:"port,omitempty"`
	VirtualNode string `json:"virtualNode"`
	Weight      int    `json:"weight"`
}

// HTTPRouteMatch is App Mesh's HttpRouteMatch.
type HTTPRouteMatch struct {
	Headers         []HTTPRouteHeader    `json:"headers,omitempty"`
	Method          string               `json:"method,omitempty"`
	Path            *HTTPPathMatch       `json:"path,omitempty"`
	Port            int                  `json:"port,omitempty"`
	Prefix          string               `json:"prefix,omitempty"`
	QueryParameters []HTTPQueryParameter `json:"queryParameters,omitempty"`
	Scheme          string               `json:"scheme,omitempty"`
}

// HTTPRouteHeader matches one request header.
type HTTPRouteHeader struct {
	Invert *bool        `json:"invert,omitempty"`
	Match  *HeaderMatch `json:"match,omitempty"`
	Name   string       `json:"name"`
}

// HeaderMatch is App Mesh's HeaderMatchMethod: exactly one member.
type HeaderMatch struct {
	Exact  string      `json:"exact,omitempty"`
	Prefix string      `json:"prefix,omitempty"`
	Range  *MatchRange `json:"range,omitempty"`
	Regex  string      `json:"regex,omitempty"`
	Suffix string      `json:"suffix,omitempty"`
}

// MatchRange is an integer range: start inclusive, end exclusive.
type MatchRange struct {
	End   int64 `json:"end"`
	Start int64 `json:"start"`
}

// HTTPPathMatch matches the whole path exactly or by regular expression.
type HTTPPathMatch struct {
	Exact string `json:"exact,omitempty"`
	Regex string `json:"regex,omitempty"`
}

// HTTPQueryParameter matches one query parameter.
type HTTPQueryParameter struct {
	Match *QueryParameterMatch `json:"match,omitempty"`
	Name  string               `json:"name"`
}

// QueryParameterMatch matches a query parameter's value exactly.
type QueryParameterMatch struct {
	Exact string `json:"exact,omitempty"`
}

// HTTPRetryPolicy is App Mesh's HttpRetryPolicy.
type HTTPRetryPolicy struct {
	HTTPRetryEvents []string  `json:"httpRetryEvents,omitempty"`
	MaxRetries      *int64    `json:"maxRetries"`
	PerRetryTimeout *Duration `json:"perRetryTimeout"`
	TCPRetryEvents  []string  `json:"tcpRetryEvents,omitempty"`
}

// GRPCRoute is App Mesh's GrpcRoute.
type GRPCRoute struct {
	Action      *GRPCRouteAction `json:"action"`
	Match       *GRPCRouteMatch  `json:"match"`
	RetryPolicy *GRPCRetryPolicy `json:"retryPolicy,omitempty"`
	Timeout     *GRPCTimeout     `json:"timeout,omitempty"`
	// Meshlens holds the route's meshlens extension (not App Mesh).
	Meshlens *RouteMeshlens `json:"meshlens,omitempty"`
}

// GRPCRouteAction splits calls over weighted targets.
type GRPCRouteAction struct {
	WeightedTargets []WeightedTarget `json:"weightedTargets"`
}

// GRPCRouteMatch matches a gRPC service, method and metadata.
type GRPCRouteMatch struct {
	Metadata    []GRPCRouteMetadata `json:"metadata,omitempty"`
	MethodName  string              `json:"methodName,omitempty"`
	Port        int                 `json:"port,omitempty"`
	ServiceName string              `json:"serviceName,omitempty"`
}

// GRPCRouteMetadata matches one metadata entry.
type GRPCRouteMetadata struct {
	Invert *bool        `json:"invert,omitempty"`
	Match  *HeaderMatch `json:"match,omitempty"`
	Name   string       `json:"name"`
}

// GRPCRetryPolicy is App Mesh's GrpcRetryPolicy.
type GRPCRetryPolicy struct {
	GRPCRetryEvents []string  `json:"grpcRetryEvents,omitempty"`
	HTTPRetryEvents []string  `json:"httpRetryEvents,omitempty"`
	MaxRetries      *int64    `json:"maxRetries"`
	PerRetryTimeout *Duration `json:"perRetryTimeout"`
	TCPRetryEvents  []string  `json:"tcpRetryEvents,omitempty"`
}

// TCPRoute is App Mesh's TcpRoute.
type TCPRoute struct {
	Action  *TCPRouteAction `json:"action"`
	Match   *TCPRouteMatch  `json:"match,omitempty"`
	Timeout *TCPTimeout     `json:"timeout,omitempty"`
}

// TCPRouteAction splits connections over weighted targets.
type TCPRouteAction struct {
	WeightedTargets []WeightedTarget `json:"weightedTargets"`
}

// TCPRouteMatch matches the listener port.
type TCPRouteMatch struct {
	Port int `json:"port,omitempty"`
}

// ---- VirtualGateway ----

// VirtualGatewaySpec is App Mesh's VirtualGatewaySpec.
type VirtualGatewaySpec struct {
	BackendDefaults *VirtualGatewayBackendDefaults `json:"backendDefaults,omitempty"`
	Listeners       []VirtualGatewayListener       `json:"listeners"`
	Logging         *VirtualGatewayLogging         `json:"logging,omitempty"`
	// Meshlens holds meshlens's extensions (see meshlens.go).
	Meshlens *NodeMeshlens `json:"meshlens,omitempty"`
}

// VirtualGatewayBackendDefaults is the gateway's default client policy.
type VirtualGatewayBackendDefaults struct {
	ClientPolicy *ClientPolicy `json:"clientPolicy,omitempty"`
}

// VirtualGatewayLogging configures the gateway's access log.
type VirtualGatewayLogging struct {
	AccessLog *AccessLog `json:"accessLog,omitempty"`
}

// VirtualGatewayListener is one of the gateway's listeners.
type VirtualGatewayListener struct {
	ConnectionPool *VirtualGatewayConnectionPool `json:"connectionPool,omitempty"`
	HealthCheck    *HealthCheckPolicy            `json:"healthCheck,omitempty"`
	PortMapping    *PortMapping                  `json:"portMapping"`
	TLS            *ListenerTLS                  `json:"tls,omitempty"`
	// Meshlens holds the listener's meshlens extension (not App Mesh).
	Meshlens *GatewayListenerMeshlens `json:"meshlens,omitempty"`
}

// VirtualGatewayConnectionPool limits the gateway's connections; a gateway
// has no TCP listener, so there is no tcp block.
type VirtualGatewayConnectionPool struct {
	HTTP  *HTTPConnectionPool  `json:"http,omitempty"`
	HTTP2 *HTTP2ConnectionPool `json:"http2,omitempty"`
	GRPC  *GRPCConnectionPool  `json:"grpc,omitempty"`
}

// ---- GatewayRoute ----

// GatewayRouteSpec is App Mesh's GatewayRouteSpec: exactly one route.
type GatewayRouteSpec struct {
	GRPCRoute  *GRPCGatewayRoute `json:"grpcRoute,omitempty"`
	HTTP2Route *HTTPGatewayRoute `json:"http2Route,omitempty"`
	HTTPRoute  *HTTPGatewayRoute `json:"httpRoute,omitempty"`
	Priority   *int              `json:"priority,omitempty"`
}

// HTTPGatewayRoute is App Mesh's HttpGatewayRoute.
type HTTPGatewayRoute struct {
	Action *HTTPGatewayRouteAction `json:"action"`
	Match  *HTTPGatewayRouteMatch  `json:"match"`
	// Meshlens holds the gateway route's meshlens extension (not App Mesh).
	Meshlens *GatewayRouteMeshlens `json:"meshlens,omitempty"`
}

// HTTPGatewayRouteAction sends matched requests to a virtual service.
type HTTPGatewayRouteAction struct {
	Rewrite *HTTPGatewayRouteRewrite `json:"rewrite,omitempty"`
	Target  *GatewayRouteTarget      `json:"target"`
}

// GatewayRouteTarget names a virtual service and optionally its port.
type GatewayRouteTarget struct {
	Port           int                         `json:"port,omitempty"`
	VirtualService *GatewayRouteVirtualService `json:"virtualService"`
}

// GatewayRouteVirtualService names the target virtual service.
type GatewayRouteVirtualService struct {
	VirtualServiceName string `json:"virtualServiceName"`
}

// HTTPGatewayRouteRewrite rewrites the hostname, the prefix or the path.
type HTTPGatewayRouteRewrite struct {
	Hostname *GatewayRouteHostnameRewrite   `json:"hostname,omitempty"`
	Path     *HTTPGatewayRoutePathRewrite   `json:"path,omitempty"`
	Prefix   *HTTPGatewayRoutePrefixRewrite `json:"prefix,omitempty"`
}

// GatewayRouteHostnameRewrite sets whether the Host header becomes the
// target service's name (ENABLED, the default) or is kept (DISABLED).
type GatewayRouteHostnameRewrite struct {
	DefaultTargetHostname string `json:"defaultTargetHostname,omitempty"`
}

// HTTPGatewayRoutePathRewrite replaces the whole path.
type HTTPGatewayRoutePathRewrite struct {
	Exact string `json:"exact,omitempty"`
}

// HTTPGatewayRoutePrefixRewrite replaces the matched prefix.
type HTTPGatewayRoutePrefixRewrite struct {
	DefaultPrefix string `json:"defaultPrefix,omitempty"`
	Value         string `json:"value,omitempty"`
}

// HTTPGatewayRouteMatch is App Mesh's HttpGatewayRouteMatch.
type HTTPGatewayRouteMatch struct {
	Headers         []HTTPGatewayRouteHeader   `json:"headers,omitempty"`
	Hostname        *GatewayRouteHostnameMatch `json:"hostname,omitempty"`
	Method          string                     `json:"method,omitempty"`
	Path            *HTTPPathMatch             `json:"path,omitempty"`
	Port            int                        `json:"port,omitempty"`
	Prefix          string                     `json:"prefix,omitempty"`
	QueryParameters []HTTPQueryParameter       `json:"queryParameters,omitempty"`
}

// HTTPGatewayRouteHeader matches one request header.
type HTTPGatewayRouteHeader struct {
	Invert *bool        `json:"invert,omitempty"`
	Match  *HeaderMatch `json:"match,omitempty"`
	Name   string       `json:"name"`
}

// GatewayRouteHostnameMatch matches the Host header exactly or by suffix.
type GatewayRouteHostnameMatch struct {
	Exact  string `json:"exact,omitempty"`
	Suffix string `json:"suffix,omitempty"`
}

// GRPCGatewayRoute is App Mesh's GrpcGatewayRoute.
type GRPCGatewayRoute struct {
	Action *GRPCGatewayRouteAction `json:"action"`
	Match  *GRPCGatewayRouteMatch  `json:"match"`
	// Meshlens holds the gateway route's meshlens extension (not App Mesh).
	Meshlens *GatewayRouteMeshlens `json:"meshlens,omitempty"`
}

// GRPCGatewayRouteAction sends matched calls to a virtual service.
type GRPCGatewayRouteAction struct {
	Rewrite *GRPCGatewayRouteRewrite `json:"rewrite,omitempty"`
	Target  *GatewayRouteTarget      `json:"target"`
}

// GRPCGatewayRouteRewrite rewrites the hostname.
type GRPCGatewayRouteRewrite struct {
	Hostname *GatewayRouteHostnameRewrite `json:"hostname,omitempty"`
}

// GRPCGatewayRouteMatch matches a gRPC service, hostname and metadata.
type GRPCGatewayRouteMatch struct {
	Hostname    *GatewayRouteHostnameMatch `json:"hostname,omitempty"`
	Metadata    []GRPCGatewayRouteMetadata `json:"metadata,omitempty"`
	Port        int                        `json:"port,omitempty"`
	ServiceName string                     `json:"serviceName,omitempty"`
}

// GRPCGatewayRouteMetadata matches one metadata entry.
type GRPCGatewayRouteMetadata struct {
	Invert *bool        `json:"invert,omitempty"`
	Match  *HeaderMatch `json:"match,omitempty"`
	Name   string       `json:"name"`
}
