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
// then swapped in. Compile does the middle two in one pass (compile.go,
// route.go, cluster.go); the request path is match.go (listener filter
// chains and routes), pick.go (weighted clusters and endpoints) and
// rewrite.go.
//
// The Envoy subset accepted, and what each field becomes, is documented in
// docs/proxy-xds.md. Where Envoy offers a feature that would make a route,
// filter chain or TLS context match or accept more than it says if it were
// ignored (runtime_fraction, source_prefix_ranges, non-exact SAN
// matchers...), Compile rejects it rather than serve a looser config;
// features that only add behaviour (header additions, stats options) are
// ignored. HTTP filters are compiled into the filter chain the proxy runs
// (package chain); an HTTP filter meshlens does not run is refused unless
// it is marked is_optional, as Envoy refuses one it does not know.
//
// Nothing here is written by hand that a library does: go-control-plane
// provides the protos and their validation (Validate), regexp provides
// RE2. What is hand-written is Envoy's matching and selection semantics,
// which no Go library exposes for a data path.
package table

import (
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
	"github.com/meshlens/meshlens/internal/proxy/filters/ratelimit"
	"github.com/meshlens/meshlens/internal/xdsproto"
)

// Snapshot is one complete data-plane configuration.
type Snapshot struct {
	// Versions holds the xDS version of each resource type it was built
	// from, keyed by type URL.
	Versions map[string]string
	// Listeners sorted by name. api_listener listeners (for proxyless
	// gRPC clients) are not here.
	Listeners []*Listener
	// Clusters by name: every cluster CDS delivered. A route or TCP proxy
	// naming a cluster that is not here points at a placeholder whose
	// NotFound is set (see Cluster.NotFound).
	Clusters map[string]*Cluster
	// Routes holds every route configuration a listener uses, by name:
	// RDS ones and inline ones (named as the inline config names itself).
	Routes map[string]*RouteTable
	// Resources keeps the xDS resources the snapshot was compiled from,
	// by type URL, for /config_dump.
	Resources map[string][]xdsproto.Message
	// RateLimits are the HTTP local rate limit configurations of every
	// connection manager and route, each once: the runtime provisions
	// their stats (Provision) before serving the snapshot.
	RateLimits []*ratelimit.Config
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

// String names the direction as Envoy's traffic_direction does.
func (d Direction) String() string {
	switch d {
	case Inbound:
		return "INBOUND"
	case Outbound:
		return "OUTBOUND"
	case Gateway:
		return "GATEWAY"
	}
	return "UNKNOWN"
}

// Listener is one xDS listener.
type Listener struct {
	Name      string
	Address   netip.AddrPort // as configured; the runtime may bind elsewhere
	Direction Direction
	// BindToPort is Envoy's bind_to_port (default true). A listener that
	// does not bind only receives connections handed over by another
	// listener with OriginalDst.
	BindToPort bool
	// OriginalDst: connections were redirected here (iptables REDIRECT or
	// TPROXY); the runtime reads their original destination
	// (SO_ORIGINAL_DST) and matches filter chains on it. Set by the
	// envoy.filters.listener.original_dst listener filter or the legacy
	// use_original_dst field.
	OriginalDst bool
	// TLSInspector and HTTPInspector: the runtime must peek at the first
	// bytes to detect TLS (transport protocol "tls", SNI, ALPN) or the
	// plaintext HTTP version (application protocol "http/1.1" or "h2c").
	// Set when the listener filter is configured or when a filter chain
	// matches on what only that inspector can tell.
	TLSInspector  bool
	HTTPInspector bool
	// Chains in Envoy's precedence order (most specific first). Use
	// MatchChain to select one: Envoy's selection is hierarchical, so
	// "the first chain whose conditions hold" is not the same thing.
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
	// ServerNames match the TLS SNI, lower case: exact names and
	// "*.suffix" wildcards; empty matches any.
	ServerNames []string
	// TransportProtocol is "tls", "raw_buffer" or "" (any).
	TransportProtocol string
	// ApplicationProtocols match the TLS ALPN or the HTTP inspector's
	// finding ("http/1.1", "h2c"); empty matches any.
	ApplicationProtocols []string
	TLS                  *DownstreamTLS
	HTTP                 *HTTPManager
	TCP                  *TCPProxy
	// NetRateLimit is the envoy.filters.network.local_ratelimit filter
	// before a tcp_proxy: one token per connection; nil when there is none.
	NetRateLimit *ratelimit.NetConfig
	// IgnoredFilters names the other network filters before the terminal
	// one, which meshlens does not run (for logs and /config_dump).
	IgnoredFilters []string
	// Meta is the chain's filter_metadata["meshlens"]: for a TCP chain of
	// an outbound listener, the virtual service it reaches.
	Meta MeshMetadata
}

// Codec is the HTTP codec of a connection manager.
type Codec int

// Codecs.
const (
	CodecAuto  Codec = iota // HTTP/1.1, or h2c when the preface says so
	CodecHTTP1              // HTTP/1.1 only
	CodecHTTP2              // HTTP/2 only (prior knowledge or TLS ALPN)
)

// DefaultMaxHeadersCount is Envoy's bound on the header fields of a
// request when max_headers_count is unset.
const DefaultMaxHeadersCount = 100

// HTTPManager is a compiled HttpConnectionManager.
type HTTPManager struct {
	StatPrefix      string
	Codec           Codec
	RouteConfigName string
	Routes          *RouteTable // resolved from RDS or inline; never nil
	// Timeouts. Unset fields get Envoy's defaults (IdleTimeout 1h,
	// StreamIdleTimeout 5m, RequestTimeout none); zero (Envoy's
	// "disabled") means the runtime's finite default.
	IdleTimeout       time.Duration // connection idle
	StreamIdleTimeout time.Duration
	RequestTimeout    time.Duration // whole request, downstream side
	MaxRequestHeaders uint32        // bytes (max_request_headers_kb * 1024); 0 = default
	// MaxHeadersCount bounds the header fields of a request
	// (common_http_protocol_options.max_headers_count; Envoy's 100 when
	// unset).
	MaxHeadersCount uint32
	AccessLogs      []AccessLog
	// Upgrades are the HTTP/1.1 upgrade types (upgrade_configs, lower
	// case, "websocket") forwarded as upgrades; requests for others get
	// 403, as in Envoy.
	Upgrades []string
	// Filters is the HTTP filter chain before the router (grpc_web,
	// cors, fault, local_ratelimit, in the order of http_filters); nil
	// when there is none.
	Filters *chain.Config
	// IgnoredHTTPFilters names the HTTP filters meshlens does not run:
	// those marked is_optional that it does not know, and disabled ones.
	IgnoredHTTPFilters []string
	// Tracing is the tracing field: the provider, sampling and custom
	// tags; nil when the connection manager makes no spans.
	Tracing *Tracing
}

// UpgradeAllowed reports whether upgrade (a request's Upgrade header
// value, any case) is one the connection manager forwards.
func (m *HTTPManager) UpgradeAllowed(upgrade string) bool {
	for _, u := range m.Upgrades {
		if strings.EqualFold(u, upgrade) {
			return true
		}
	}
	return false
}

// AccessLog is a file access log of a connection manager. Format is an
// Envoy format string, or JSONFormat key/format pairs; both empty means
// Envoy's default format. The stdout and stderr loggers become Path
// /dev/stdout and /dev/stderr.
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
	// IdleTimeout: unset in xDS means Envoy's 1h; an explicit 0 (Envoy's
	// "disabled") is kept as 0, which the runtime treats as its finite
	// default.
	IdleTimeout time.Duration
	AccessLogs  []AccessLog
}

// RouteTable is a compiled RouteConfiguration.
type RouteTable struct {
	Name         string
	VirtualHosts []*VirtualHost
	// IgnorePortInHostMatching is Envoy's ignore_port_in_host_matching:
	// the authority's port is dropped before matching domains.
	IgnorePortInHostMatching bool

	// idx is the domain index: built by Compile, or on first use for a
	// table built by hand (tests), then read-only.
	idx atomic.Pointer[domainIndex]
}

// domainIndex finds virtual hosts by domain in Envoy's precedence.
type domainIndex struct {
	exact    map[string]*VirtualHost // lower-case exact domains
	suffixes []wildcardDomain        // "*.x" as ".x", longest first
	prefixes []wildcardDomain        // "x.*" as "x.", longest first
	any      *VirtualHost            // "*"
}

// wildcardDomain is a suffix or prefix wildcard, without its "*".
type wildcardDomain struct {
	part string
	vh   *VirtualHost
}

// VirtualHost matches requests by authority and holds ordered routes.
type VirtualHost struct {
	Name string
	// Domains as in Envoy: exact ("a.b", "a.b:80"), "*.suffix",
	// "prefix*" and "*". Matching follows Envoy's precedence: exact, then
	// longest suffix wildcard, then longest prefix wildcard, then "*".
	Domains []string
	Routes  []*Route
	// Retry is the virtual-host default. Compile already copied it into
	// every Route without its own policy, so the data path reads only
	// Route.Retry.
	Retry *RetryPolicy
	// Meta is the virtual host's filter_metadata["meshlens"] (the
	// virtual service it serves). Compile copies its VirtualService into
	// every Route that names none, so the data path reads only Route.Meta.
	Meta MeshMetadata
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

	// Timeout: unset in xDS means Envoy's 15s; an explicit 0 disables the
	// route timeout (the runtime still bounds idle streams).
	Timeout     time.Duration
	IdleTimeout time.Duration
	Retry       *RetryPolicy // the route's, else its virtual host's; nil = no retries

	PrefixRewrite   string         // replaces the matched prefix (or the whole matched path)
	RegexRewrite    *regexp.Regexp // with RegexSubstitution
	RegexSubstitute string         // as configured (RE2 syntax: \1, \\)
	HostRewrite     string         // literal authority to send upstream
	AutoHostRewrite bool

	// Meta is the route's filter_metadata["meshlens"], with its virtual
	// host's VirtualService when the route names none.
	Meta MeshMetadata

	// Filters is the HTTP filters' configuration for the route: its
	// typed_per_filter_config combined with its virtual host's and route
	// configuration's (chain.Combine); nil when none configures any.
	Filters *chain.Route

	// TracingPercent is the route's tracing.random_sampling as a
	// percentage, overriding its connection manager's; nil when unset.
	TracingPercent *float64

	// regexTemplate is RegexSubstitute in regexp.Expand syntax.
	regexTemplate string
}

// pathKind says which path specifier a RouteMatch holds. Compile sets it;
// a RouteMatch built by hand leaves it zero and the set field decides.
type pathKind uint8

const (
	pathInfer pathKind = iota
	pathPrefix
	pathExact
	pathRegex
	pathSeparated
)

// RouteMatch is a compiled route match. All set conditions must hold.
// Exactly one path condition applies: PathRegex, PathSeparated or Path
// when set (in that order), else Prefix.
type RouteMatch struct {
	Prefix        string
	Path          string // exact
	PathRegex     *regexp.Regexp
	PathSeparated string // path_separated_prefix
	CaseSensitive bool   // Envoy's default is true; never applies to PathRegex
	Headers       []HeaderMatcher
	Query         []QueryMatcher
	GRPC          bool // only gRPC requests (content-type application/grpc*)

	kind pathKind
}

// HeaderMatcher matches one header (pseudo-headers :method, :authority,
// :scheme and :path included; "host" means :authority, as in Envoy). A
// header with several values is matched against the values joined by ",",
// as Envoy does.
//
// A missing header fails every matcher except Present=false, and
// Present=true with Invert, unless TreatMissingAsEmpty, which matches the
// empty string instead: Envoy's rules, so an inverted value match does not
// match a request without the header.
type HeaderMatcher struct {
	Name     string // lower case
	Exact    *string
	Prefix   *string
	Suffix   *string
	Contains *string
	Regex    *regexp.Regexp // whole-value match
	Range    *Int64Range
	Present  *bool // present_match
	Invert   bool
	// IgnoreCase applies to Exact, Prefix, Suffix and Contains.
	IgnoreCase          bool
	TreatMissingAsEmpty bool
}

// Int64Range is [Start, End).
type Int64Range struct{ Start, End int64 }

// QueryMatcher matches one query parameter: its first occurrence,
// percent-decoded, as Envoy does. With no value condition and neither
// Present nor Absent, the parameter must be present.
type QueryMatcher struct {
	Name       string
	Exact      *string
	Prefix     *string
	Suffix     *string
	Contains   *string
	Regex      *regexp.Regexp // whole-value match
	IgnoreCase bool
	Present    bool // present_match: true
	Absent     bool // present_match: false
}

// WeightedCluster is a cluster and its share of traffic.
type WeightedCluster struct {
	Name    string
	Weight  uint32
	Cluster *Cluster // resolved at compile time; never nil (see Cluster.NotFound)
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
	RetryRetriableStatusCodes                      // retriable-status-codes (RetryPolicy.RetriableStatusCodes)
	RetryResetBeforeRequest                        // reset-before-request
	RetryEnvoyRateLimited                          // envoy-ratelimited
)

// RetryPolicy is a compiled retry policy.
type RetryPolicy struct {
	On RetryOn
	// NumRetries: Envoy's default is 1 when a policy is set without it.
	NumRetries    uint32
	PerTryTimeout time.Duration // 0 = the route timeout
	// RetriableStatusCodes are retried when On has RetryRetriableStatusCodes.
	RetriableStatusCodes []uint32
	// Backoff between attempts: Envoy's retry_back_off, defaulting to
	// 25ms base and 10 times the base as the maximum.
	BackoffBase time.Duration
	BackoffMax  time.Duration
}

// DownstreamTLS terminates TLS on a filter chain.
type DownstreamTLS struct {
	CertFile, KeyFile string
	// CAFile verifies client certificates. Clients must present one only
	// when RequireClientCert is set; otherwise a presented certificate is
	// verified and a missing one accepted, as in Envoy.
	CAFile            string
	RequireClientCert bool
	MatchSANs         []string // exact SANs a client certificate must carry (any one)
	SDSCertName       string   // secret names when served by SDS
	SDSCAName         string
	ALPN              []string
}

// ErrMissing is wrapped by Compile errors about a referenced resource that
// was not received (a route configuration or an EDS assignment): the set
// is incomplete rather than invalid. The xDS client waits for more
// instead of NACKing these.
var ErrMissing = errors.New("not received")
