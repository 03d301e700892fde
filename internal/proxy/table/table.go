// Package table is the proxy's compiled configuration: immutable routing
// tables built from one consistent set of xDS resources. The data path
// reads a *Snapshot through an atomic pointer and never locks or
// allocates to route a request; a new xDS version becomes a new Snapshot
// that replaces the old one whole, so a request that started on one
// snapshot finishes on it.
//
// Lifecycle, as in the rest of meshlens: xDS resources are decoded, then
// Compiled (references resolved, regexes compiled, weights summed), then
// Validated (a snapshot that cannot be served is rejected and NACKed),
// then swapped in.
package table

import (
	"net/netip"
	"regexp"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
)

// Snapshot is one complete data-plane configuration.
type Snapshot struct {
	// Versions holds the xDS version of each resource type it was built
	// from, keyed by type URL.
	Versions map[string]string
	// Listeners sorted by name.
	Listeners []*Listener
	// Clusters by name. Every cluster a route or TCP proxy names is here.
	Clusters map[string]*Cluster
	// Resources keeps the xDS resources the snapshot was compiled from,
	// by type URL, for /config_dump.
	Resources map[string][]proto.Message
}

// Direction says what a listener is for; the runtime uses it to decide
// where to bind and how to name stats.
type Direction int

// Listener directions.
const (
	Inbound  Direction = iota // a sidecar's ingress (lds_ingress_*) towards the local app
	Outbound                  // a sidecar's egress (lds_egress_*) towards the mesh
	Gateway                   // a virtual gateway's listener
)

// Listener is one xDS listener.
type Listener struct {
	Name      string
	Address   netip.AddrPort // as configured; the runtime may bind elsewhere
	Direction Direction
	// Chains are tried in order; the first whose match holds wins.
	Chains []*FilterChain
	// Default serves connections no chain matches; may be nil.
	Default *FilterChain
}

// FilterChain is what a listener does with a connection it matched.
// Exactly one of HTTP and TCP is set.
type FilterChain struct {
	Name string
	// DestinationPort matches the connection's original destination port;
	// 0 matches any.
	DestinationPort uint32
	// PrefixRanges match the original destination address; empty matches any.
	PrefixRanges []netip.Prefix
	// TransportProtocol is "tls", "raw_buffer" or "" (any).
	TransportProtocol string
	TLS               *DownstreamTLS
	HTTP              *HTTPManager
	TCP               *TCPProxy
}

// Codec is the HTTP codec of a connection manager.
type Codec int

// Codecs.
const (
	CodecAuto  Codec = iota // HTTP/1.1, or h2c when the preface says so
	CodecHTTP1              // HTTP/1.1 only
	CodecHTTP2              // HTTP/2 only (prior knowledge or TLS ALPN)
)

// HTTPManager is a compiled HttpConnectionManager.
type HTTPManager struct {
	StatPrefix      string
	Codec           Codec
	RouteConfigName string
	Routes          *RouteTable // resolved from RDS or inline; never nil
	// Timeouts; zero means the runtime's finite default.
	IdleTimeout       time.Duration // connection idle
	StreamIdleTimeout time.Duration
	RequestTimeout    time.Duration // whole request, downstream side
	MaxRequestHeaders uint32        // bytes (max_request_headers_kb * 1024); 0 = default
	AccessLogs        []AccessLog
}

// AccessLog is a file access log of a connection manager. Format is an
// Envoy format string, or JSONFormat key/format pairs; both empty means
// Envoy's default format.
type AccessLog struct {
	Path       string
	Format     string
	JSONFormat map[string]string
}

// TCPProxy is a compiled tcp_proxy filter.
type TCPProxy struct {
	StatPrefix  string
	Clusters    []WeightedCluster // one entry for a plain cluster
	TotalWeight uint32
	IdleTimeout time.Duration
	AccessLogs  []AccessLog
}

// RouteTable is a compiled RouteConfiguration.
type RouteTable struct {
	Name         string
	VirtualHosts []*VirtualHost
}

// VirtualHost matches requests by authority and holds ordered routes.
type VirtualHost struct {
	Name string
	// Domains as in Envoy: exact ("a.b", "a.b:80"), "*.suffix",
	// "prefix*" and "*". Matching follows Envoy's precedence: exact, then
	// longest suffix wildcard, then longest prefix wildcard, then "*".
	Domains []string
	Routes  []*Route
	Retry   *RetryPolicy // virtual-host default, overridden by a route's
}

// Route is one compiled route: a match and what to do.
type Route struct {
	Name  string
	Match RouteMatch
	// Action: exactly one of Clusters (forward) or DirectStatus (answer).
	Clusters     []WeightedCluster
	TotalWeight  uint32
	DirectStatus int
	DirectBody   string

	Timeout     time.Duration // 0 = no route timeout (Envoy's 0 disables); the runtime still bounds idle streams
	IdleTimeout time.Duration
	Retry       *RetryPolicy

	PrefixRewrite   string         // replaces the matched prefix
	RegexRewrite    *regexp.Regexp // with RegexSubstitution
	RegexSubstitute string
	HostRewrite     string // literal authority to send upstream
	AutoHostRewrite bool
}

// RouteMatch is a compiled route match. All set conditions must hold.
type RouteMatch struct {
	Prefix        string
	Path          string // exact
	PathRegex     *regexp.Regexp
	PathSeparated string // path_separated_prefix
	CaseSensitive bool   // Envoy's default is true
	Headers       []HeaderMatcher
	Query         []QueryMatcher
	GRPC          bool // only gRPC requests (content-type application/grpc*)
}

// HeaderMatcher matches one header (pseudo-headers :method, :authority,
// :scheme and :path included). A header with several values is matched
// against the values joined by ",", as Envoy does.
type HeaderMatcher struct {
	Name     string // lower case
	Exact    *string
	Prefix   *string
	Suffix   *string
	Contains *string
	Regex    *regexp.Regexp
	Range    *Int64Range
	Present  *bool // present_match
	Invert   bool
}

// Int64Range is [Start, End).
type Int64Range struct{ Start, End int64 }

// QueryMatcher matches one query parameter.
type QueryMatcher struct {
	Name    string
	Exact   *string
	Prefix  *string
	Regex   *regexp.Regexp
	Present bool // only presence required
}

// WeightedCluster is a cluster and its share of traffic.
type WeightedCluster struct {
	Name    string
	Weight  uint32
	Cluster *Cluster // resolved at compile time
}

// RetryOn is a set of retry conditions.
type RetryOn uint32

// Retry conditions, Envoy's names in comments.
const (
	Retry5xx                   RetryOn = 1 << iota // 5xx
	RetryGatewayError                              // gateway-error
	RetryReset                                     // reset
	RetryConnectFailure                            // connect-failure
	RetryRetriable4xx                              // retriable-4xx
	RetryRefusedStream                             // refused-stream
	RetryGRPCCancelled                             // cancelled
	RetryGRPCDeadline                              // deadline-exceeded
	RetryGRPCInternal                              // internal
	RetryGRPCResourceExhausted                     // resource-exhausted
	RetryGRPCUnavailable                           // unavailable
)

// RetryPolicy is a compiled retry policy.
type RetryPolicy struct {
	On            RetryOn
	NumRetries    uint32
	PerTryTimeout time.Duration
}

// ClusterType is how a cluster finds its endpoints.
type ClusterType int

// Cluster types.
const (
	ClusterEDS ClusterType = iota
	ClusterStatic
	ClusterStrictDNS
	ClusterLogicalDNS
	ClusterOriginalDst
)

// LBPolicy is a cluster's load-balancing policy.
type LBPolicy int

// Load-balancing policies.
const (
	LBRoundRobin LBPolicy = iota
	LBLeastRequest
	LBRandom
)

// Cluster is a compiled upstream cluster with its endpoints.
type Cluster struct {
	Name           string
	Type           ClusterType
	LB             LBPolicy
	ConnectTimeout time.Duration
	HTTP2          bool // speak HTTP/2 (h2c, or h2 over TLS) upstream
	Limits         CircuitBreakers
	Outlier        *OutlierDetection
	HealthCheck    *HealthCheck
	TLS            *UpstreamTLS
	// Endpoints of the cluster, in a stable order. Healthy ones are
	// chosen first; the runtime may eject more (outlier detection).
	Endpoints []Endpoint
	// Healthy indexes Endpoints that xDS marked healthy (or unknown).
	Healthy []int

	// rr is the round-robin cursor. It is the one mutable field: shared,
	// atomic, never locked.
	rr atomic.Uint64
}

// Endpoint is one upstream address.
type Endpoint struct {
	Address  netip.AddrPort // for ClusterEDS and ClusterStatic
	Hostname string         // for DNS clusters: host:port
	Healthy  bool
	Weight   uint32
}

// CircuitBreakers are the default-priority thresholds; 0 means Envoy's
// default (1024 each, 3 retries).
type CircuitBreakers struct {
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
	MaxRetries         uint32
}

// OutlierDetection ejects endpoints after consecutive server errors.
type OutlierDetection struct {
	Consecutive5xx     uint32
	Interval           time.Duration
	BaseEjectionTime   time.Duration
	MaxEjectionPercent uint32
}

// HealthCheck is an active health check.
type HealthCheck struct {
	Timeout            time.Duration
	Interval           time.Duration
	HealthyThreshold   uint32
	UnhealthyThreshold uint32
	HTTPPath           string // HTTP check when set
	GRPC               bool   // gRPC health check
	// otherwise a TCP connect check
}

// DownstreamTLS terminates TLS on a filter chain.
type DownstreamTLS struct {
	CertFile, KeyFile string
	CAFile            string   // when set, client certificates are required and verified
	MatchSANs         []string // exact SANs a client certificate must carry
	SDSCertName       string   // secret names when served by SDS
	SDSCAName         string
	ALPN              []string
}

// UpstreamTLS originates TLS to a cluster's endpoints.
type UpstreamTLS struct {
	CertFile, KeyFile string // client certificate for mTLS
	CAFile            string
	MatchSANs         []string
	SNI               string
	ALPN              []string
	SDSCertName       string
	SDSCAName         string
}
