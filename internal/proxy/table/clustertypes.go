package table

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// The compiled cluster: its endpoints and policies.

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
	Name string
	// ServiceName is the EDS service name whose assignment holds the
	// endpoints (eds_cluster_config.service_name, else Name).
	ServiceName    string
	Type           ClusterType
	LB             LBPolicy
	ConnectTimeout time.Duration // Envoy's default 5s when unset
	HTTP2          bool          // speak HTTP/2 (h2c, or h2 over TLS) upstream
	// UseDownstreamProtocol: HttpProtocolOptions.use_downstream_protocol_config,
	// speak upstream what the downstream spoke.
	UseDownstreamProtocol bool
	Limits                CircuitBreakers
	Outlier               *OutlierDetection
	HealthCheck           *HealthCheck
	TLS                   *UpstreamTLS
	// Endpoints of the cluster, in a stable order. Healthy ones are
	// chosen first; the runtime may eject more (outlier detection).
	// Picking reads Endpoints[i].Healthy, so a Cluster built by hand
	// needs only Endpoints.
	Endpoints []Endpoint
	// Healthy indexes Endpoints that xDS marked healthy (or unknown), for
	// stats and the admin interface.
	Healthy []int
	// PanicThreshold is Envoy's healthy_panic_threshold in percent
	// (default 50): below it, Pick uses every endpoint regardless of
	// health, as Envoy does to avoid overloading the few healthy ones.
	PanicThreshold float64
	// Panic says the xDS health of this snapshot is below PanicThreshold,
	// so Pick is choosing among all endpoints (Envoy's lb_healthy_panic).
	// Set by Compile.
	Panic bool
	// Meta is the cluster's filter_metadata["meshlens"]: the mesh and
	// virtual node it reaches.
	Meta MeshMetadata
	// NotFound marks a placeholder for a cluster a route or TCP proxy
	// names but CDS did not deliver (allowed when the route configuration
	// does not validate clusters, Envoy's default for RDS). It has no
	// endpoints, so Pick fails and the runtime answers 503 (or closes the
	// TCP connection), as Envoy does for an unknown cluster.
	NotFound bool

	// lb is what Pick walks: built by Compile, or on first use for a
	// cluster built by hand, then read-only.
	lb atomic.Pointer[lbSchedule]

	// rr is the round-robin cursor. It is the one mutable field: shared,
	// atomic, never locked.
	rr atomic.Uint64
}

// lbSchedule is a cluster's weighted sequences of endpoint indexes.
type lbSchedule struct {
	// sched holds the healthy endpoints of the best priority, or every
	// endpoint in panic; all holds every endpoint, the last resort when
	// a skip function rejects every scheduled one.
	sched, all []int
	panic      bool
}

// Endpoint is one upstream address.
type Endpoint struct {
	Address  netip.AddrPort // for ClusterEDS and ClusterStatic; DNS clusters when the host is an IP literal
	Hostname string         // for DNS clusters: host:port
	Healthy  bool
	Weight   uint32 // load_balancing_weight, default 1
	// HealthCheckPort is the endpoint's health_check_config.port_value:
	// active health checks go there instead of Address's port. 0 = same.
	HealthCheckPort uint32
	Priority        uint32 // locality priority, 0 = best
	Zone            string // locality zone, for stats and logs
}

// CircuitBreakers are the default-priority thresholds; 0 means Envoy's
// default (1024 each, 3 retries).
type CircuitBreakers struct {
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
	MaxRetries         uint32
	// RetryBudget is the thresholds' retry_budget, nil when unset (the
	// proxy then applies the default budget together with MaxRetries).
	RetryBudget *RetryBudget
}

// RetryBudget bounds the retries in progress to a share of the requests
// in progress, as Envoy's retry_budget: at most Percent of them, but
// always MinConcurrency. Compile fills Envoy's defaults (20 %, 3).
type RetryBudget struct {
	Percent        float64
	MinConcurrency uint32
}

// Envoy's retry_budget defaults.
const (
	DefaultRetryBudgetPercent        = 20.0
	DefaultRetryBudgetMinConcurrency = 3
)

// OutlierDetection ejects endpoints after consecutive server errors.
// Compile fills Envoy's defaults for unset fields (5 errors, 10s interval,
// 30s base ejection, 10%, enforcing 100%).
type OutlierDetection struct {
	Consecutive5xx          uint32
	Interval                time.Duration
	BaseEjectionTime        time.Duration
	MaxEjectionPercent      uint32
	EnforcingConsecutive5xx uint32 // percent chance an ejection is enforced
}

// HealthCheck is an active health check.
type HealthCheck struct {
	Timeout            time.Duration
	Interval           time.Duration
	HealthyThreshold   uint32
	UnhealthyThreshold uint32
	HTTPPath           string // HTTP check when set
	HTTPHost           string // Host of the HTTP check; empty = the cluster name, as Envoy
	HTTP2              bool   // the HTTP check speaks HTTP/2 (codec_client_type HTTP2)
	GRPC               bool   // gRPC health check
	GRPCService        string // service name asked in the gRPC check
	// otherwise a TCP connect check
}

// UpstreamTLS originates TLS to a cluster's endpoints.
type UpstreamTLS struct {
	CertFile, KeyFile string // client certificate for mTLS
	CAFile            string
	MatchSANs         []string // exact SANs the server certificate must carry (any one)
	SNI               string
	ALPN              []string
	SDSCertName       string
	SDSCAName         string
}
