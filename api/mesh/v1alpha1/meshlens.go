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
	Fault     *Fault     `json:"fault,omitempty"`
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
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
