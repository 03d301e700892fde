package v1alpha1

// The meshlens extension: policies App Mesh never had, each under one
// object named meshlens in the App Mesh shape it applies to. App Mesh's
// exports never carry it; meshlens accepts it in every input form (its own,
// App Mesh's API input and describe output, CloudFormation), because all
// of them decode into these same types. Each policy becomes a standard
// Envoy HTTP (or network) filter, so an Envoy given the same xDS behaves
// alike; see docs/filters/.

// RouteMeshlens is the meshlens extension of a Route's httpRoute,
// http2Route or grpcRoute. It applies where the route is used: in the
// proxy of every caller of the route's virtual router, and in gateways
// that send to it.
type RouteMeshlens struct {
	Fault     *Fault           `json:"fault,omitempty"`
	RateLimit *RateLimit       `json:"rateLimit,omitempty"`
	Tracing   *TracingOverride `json:"tracing,omitempty"`
}

// ListenerMeshlens is the meshlens extension of a virtual node's
// listener: it applies to every request (or, for tcp, every connection)
// the listener receives.
type ListenerMeshlens struct {
	Fault     *Fault     `json:"fault,omitempty"`
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// GatewayRouteMeshlens is the meshlens extension of a gateway route's
// httpRoute, http2Route or grpcRoute.
type GatewayRouteMeshlens struct {
	CORS      *CORSPolicy `json:"cors,omitempty"`
	RateLimit *RateLimit  `json:"rateLimit,omitempty"`
}

// GatewayListenerMeshlens is the meshlens extension of a virtual
// gateway's listener.
type GatewayListenerMeshlens struct {
	CORS      *CORSPolicy `json:"cors,omitempty"`
	RateLimit *RateLimit  `json:"rateLimit,omitempty"`
	GRPCWeb   *GRPCWeb    `json:"grpcWeb,omitempty"`
}

// Fault injects delays and aborts into a share of requests (Envoy's
// envoy.filters.http.fault).
type Fault struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
	// HeaderControlled lets a request ask for a fault with Envoy's
	// x-envoy-fault-* headers, for the part (delay, abort) not configured
	// here.
	HeaderControlled bool `json:"headerControlled,omitempty"`
}

// FaultDelay delays a percentage of requests by a fixed time.
type FaultDelay struct {
	FixedDelay *Duration `json:"fixedDelay"`
	// Percentage is 0-100, with up to four decimals; 100 when unset.
	Percentage *float64 `json:"percentage,omitempty"`
}

// FaultAbort answers a percentage of requests with an HTTP status or a
// gRPC status, never forwarding them.
type FaultAbort struct {
	HTTPStatus int `json:"httpStatus,omitempty"`
	GRPCStatus int `json:"grpcStatus,omitempty"`
	// Percentage is 0-100, with up to four decimals; 100 when unset.
	Percentage *float64 `json:"percentage,omitempty"`
}

// RateLimit is a token bucket (Envoy's local rate limit): each request,
// or connection on a tcp listener, takes a token; without one it is
// refused.
type RateLimit struct {
	MaxTokens int64 `json:"maxTokens"`
	// TokensPerFill is how many tokens come back every fillInterval;
	// maxTokens when unset.
	TokensPerFill int64     `json:"tokensPerFill,omitempty"`
	FillInterval  *Duration `json:"fillInterval"`
}

// CORSPolicy answers CORS preflight requests and marks responses to
// allowed origins (Envoy's envoy.filters.http.cors).
type CORSPolicy struct {
	AllowOrigins     []OriginMatch `json:"allowOrigins"`
	AllowMethods     []string      `json:"allowMethods,omitempty"`
	AllowHeaders     []string      `json:"allowHeaders,omitempty"`
	ExposeHeaders    []string      `json:"exposeHeaders,omitempty"`
	MaxAge           *Duration     `json:"maxAge,omitempty"`
	AllowCredentials bool          `json:"allowCredentials,omitempty"`
}

// OriginMatch matches an Origin header exactly, by prefix or by an RE2
// regular expression: exactly one member.
type OriginMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"`
}

// GRPCWeb turns gRPC-Web requests from browsers into gRPC and the
// responses back (Envoy's envoy.filters.http.grpc_web).
type GRPCWeb struct {
	Enabled bool `json:"enabled"`
}

// MeshMeshlens is the meshlens extension of a Mesh's spec: policies that
// apply to every virtual node and gateway of the mesh.
type MeshMeshlens struct {
	Tracing *Tracing `json:"tracing,omitempty"`
}

// The tracing providers.
const (
	// TracingBuiltin sends spans over OTLP to the control plane's own
	// trace store; the default.
	TracingBuiltin = "builtin"
	// TracingOTLP sends spans over OTLP/gRPC to a collector.
	TracingOTLP = "otlp"
	// TracingZipkin sends Zipkin v2 JSON spans to a collector.
	TracingZipkin = "zipkin"
	// TracingXRay sends X-Ray segments over UDP to an X-Ray daemon.
	TracingXRay = "xray"
	// TracingNone turns tracing off.
	TracingNone = "none"
)

// Tracing says where the mesh's proxies send spans and how many requests
// they trace. It becomes the tracing field of every HTTP connection
// manager (Envoy's HttpConnectionManager.tracing), so an Envoy given the
// same xDS traces alike. App Mesh had no such field: its Envoy image took
// tracing from environment variables.
type Tracing struct {
	// Provider is builtin (the default), otlp, zipkin, xray or none.
	Provider string `json:"provider,omitempty"`
	// Endpoint is the collector's host:port: an OTLP/gRPC receiver
	// (otlp), a Zipkin server (zipkin, spans POSTed to /api/v2/spans) or
	// an X-Ray daemon (xray, UDP; 127.0.0.1:2000 when unset). Required
	// for otlp and zipkin; not allowed for builtin and none.
	Endpoint string `json:"endpoint,omitempty"`
	// SamplingPercentage is the share of requests that start a trace,
	// 0-100 with up to four decimals (default 1). A request that arrives
	// with a sampling decision keeps it.
	SamplingPercentage *float64 `json:"samplingPercentage,omitempty"`
	// SamplingRuleManifest is the path, on the proxy's host, of an X-Ray
	// sampling rule document (xray only).
	SamplingRuleManifest string `json:"samplingRuleManifest,omitempty"`
	// CustomTags are added to every span.
	CustomTags []TracingTag `json:"customTags,omitempty"`
}

// TracingTag is a span tag whose value is a literal or a request
// header's: exactly one of Literal and RequestHeader.
type TracingTag struct {
	Tag           string            `json:"tag"`
	Literal       string            `json:"literal,omitempty"`
	RequestHeader *TracingHeaderTag `json:"requestHeader,omitempty"`
}

// TracingHeaderTag takes a tag's value from a request header, or
// DefaultValue when the header is absent.
type TracingHeaderTag struct {
	Name         string `json:"name"`
	DefaultValue string `json:"defaultValue,omitempty"`
}

// TracingOverride overrides the mesh's tracing where it is written: for
// the requests one route matches, or for every request a virtual node or
// gateway starts a trace for.
type TracingOverride struct {
	// SamplingPercentage replaces the mesh's samplingPercentage.
	SamplingPercentage *float64 `json:"samplingPercentage,omitempty"`
}

// NodeMeshlens is the meshlens extension of a VirtualNode's or
// VirtualGateway's spec: what applies to every listener of its proxy.
type NodeMeshlens struct {
	Tracing *TracingOverride `json:"tracing,omitempty"`
}
