package tracing

// Attribute keys. The HTTP, network and RPC keys are OpenTelemetry's
// semantic conventions (stable HTTP conventions, v1.23 and later); the
// meshlens.* keys are the mesh's own.
const (
	KeyHTTPRequestMethod      = "http.request.method"
	KeyURLPath                = "url.path"
	KeyHTTPRoute              = "http.route"
	KeyHTTPResponseStatusCode = "http.response.status_code"
	KeyServerAddress          = "server.address"
	KeyServerPort             = "server.port"
	KeyNetworkPeerAddress     = "network.peer.address"
	KeyNetworkPeerPort        = "network.peer.port"
	KeyUserAgentOriginal      = "user_agent.original"

	KeyRPCSystem         = "rpc.system"
	KeyRPCService        = "rpc.service"
	KeyRPCMethod         = "rpc.method"
	KeyRPCGRPCStatusCode = "rpc.grpc.status_code"

	KeyMesh            = "meshlens.mesh"
	KeyVirtualNode     = "meshlens.virtual_node"
	KeyVirtualGateway  = "meshlens.virtual_gateway"
	KeyVirtualService  = "meshlens.virtual_service"
	KeyRoute           = "meshlens.route"
	KeyUpstreamCluster = "meshlens.upstream_cluster"
	KeyResponseFlags   = "meshlens.response_flags"
	KeyRetryCount      = "meshlens.retry_count"
	KeyAttempt         = "meshlens.attempt"
	// KeyTailKept marks a span kept by the tail rule, not by head sampling.
	KeyTailKept = "meshlens.tail_kept"

	// KeyServiceName is the resource's service.name.
	KeyServiceName = "service.name"
)

// Event names the proxy records on spans.
const (
	// EventRetry: an attempt failed and another is made.
	EventRetry = "retry"
	// EventTimeout: a request or per-try timeout fired.
	EventTimeout = "timeout"
	// EventEjection: outlier detection ejected the upstream host.
	EventEjection = "ejection"
	// EventOverflow: a circuit breaker refused the request.
	EventOverflow = "overflow"
)
