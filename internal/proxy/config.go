package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/meshlens/meshlens/internal/stats"
)

// Disabled is the value of Config.IngressAddr or Config.EgressAddr that
// binds no shared socket for that listener: the inbound listener is then
// reachable only through its Listen mappings, the outbound one not at all.
const Disabled = "none"

// Defaults of Config. They are finite everywhere Envoy's would be "forever",
// so that a misbehaving peer cannot hold resources indefinitely.
const (
	DefaultAdminAddr             = "127.0.0.1:9901"
	DefaultEgressAddr            = "127.0.0.1:15001"
	DefaultDrainTimeout          = 10 * time.Second
	DefaultMaxRequestHeaderBytes = 60 << 10 // Envoy's max_request_headers_kb default
	DefaultHeaderReadTimeout     = 10 * time.Second
	DefaultIdleTimeout           = 5 * time.Minute
	DefaultStreamIdleTimeout     = 5 * time.Minute
	DefaultTCPIdleTimeout        = time.Hour // Envoy's tcp_proxy default
	DefaultConnectTimeout        = 5 * time.Second
	DefaultUpstreamIdleTimeout   = 90 * time.Second
	DefaultMaxConnsPerHost       = 1024 // Envoy's circuit-breaker max_connections default
	DefaultMaxIdleConnsPerHost   = 128
)

// Config is the runtime configuration of a Proxy: everything that does not
// come from xDS. The zero value of every field but NodeID means its default.
type Config struct {
	// NodeID is the data plane's identity, mesh/<m>/virtualNode/<n> or
	// mesh/<m>/virtualGateway/<n>; it is reported by /server_info.
	NodeID string
	// Cluster is Envoy's node.cluster (APPMESH_RESOURCE_CLUSTER); reported
	// by /server_info only.
	Cluster string
	// Version is reported by /server_info; default "meshlens/dev".
	Version string
	// Gateway says the proxy runs as a virtual gateway rather than a
	// sidecar. Gateway listeners bind their xDS address (or Listen[port])
	// either way; this only changes what /server_info reports.
	Gateway bool

	// AdminAddr is where the admin server listens. Default 127.0.0.1:9901:
	// the admin API can stop the proxy, so it is never exposed unless asked.
	AdminAddr string
	// IngressAddr is where the sidecar's inbound listener (lds_ingress_*)
	// binds. Default: its xDS address (0.0.0.0:15000, where iptables
	// redirects inbound traffic). Disabled binds nothing but Listen mappings.
	IngressAddr string
	// EgressAddr is where the sidecar's outbound listener (lds_egress_*)
	// binds. Default 127.0.0.1:15001, not the xDS 0.0.0.0: the outbound
	// listener forwards anywhere the mesh allows, and an open forward proxy
	// must be asked for. iptables REDIRECT still reaches it on loopback.
	EgressAddr string
	// EgressPorts maps a destination port P to a dedicated local address
	// serving the outbound listener's filter chain for port P, so that an
	// application that is not intercepted can reach a TCP backend (whose
	// chain is chosen by destination port) at a fixed local port:
	// 5432 -> 127.0.0.1:15432.
	EgressPorts map[uint32]string
	// Listen maps a virtual node or gateway listener port P to a dedicated
	// bind address. For a sidecar the socket serves the inbound filter
	// chain of port P without interception (e.g. 9080 -> 127.0.0.1:29080);
	// for a gateway it replaces the listener's xDS address.
	Listen map[uint32]string
	// App maps an inbound listener port P to where the local application
	// really listens; it replaces the endpoints of the cluster(s) the
	// inbound chain of port P routes to (default: what xDS says,
	// 127.0.0.1:P).
	App map[uint32]string

	// Log receives operational logs (never per-request ones). Default
	// slog.Default().
	Log *slog.Logger

	// DrainTimeout bounds how long Shutdown, /drain_listeners?graceful and
	// the removal of a listener wait for in-flight requests and
	// connections before closing them. Default 10s: well inside the 30s
	// grace period ECS and Kubernetes give a task by default, leaving the
	// application time to stop after its sidecar. (Envoy's 600s
	// --drain-time-s would be cut short by those grace periods anyway.)
	DrainTimeout time.Duration

	// MaxRequestHeaderBytes limits a request's header section (request
	// line and headers, or an HTTP/2 header list); larger requests get
	// 431. An HTTP connection manager's max_request_headers_kb overrides it.
	// Default 60 KiB, as Envoy. (net/http allows 4 KiB of slack on
	// HTTP/1.1.)
	MaxRequestHeaderBytes int
	// HeaderReadTimeout bounds reading a request's headers, and the
	// listener inspectors' peek at a new connection. Default 10s.
	HeaderReadTimeout time.Duration
	// IdleTimeout closes a downstream HTTP connection with no request in
	// flight after this long when xDS disables the connection manager's
	// idle_timeout (when xDS leaves it unset, Envoy's 1h applies).
	// Default 5m.
	IdleTimeout time.Duration
	// StreamIdleTimeout ends a request on which no body bytes moved in
	// either direction for this long (408 before the response started,
	// a reset after) when xDS disables the connection manager's
	// stream_idle_timeout (when xDS leaves it unset, Envoy's 5m applies).
	// Default 5m.
	StreamIdleTimeout time.Duration
	// TCPIdleTimeout closes a proxied TCP connection with no bytes in
	// either direction when xDS disables tcp_proxy's idle_timeout.
	// Default 1h.
	TCPIdleTimeout time.Duration
	// ConnectTimeout bounds upstream dials when a cluster has none.
	// Default 5s.
	ConnectTimeout time.Duration
	// UpstreamIdleTimeout closes pooled upstream connections idle this
	// long. Default 90s.
	UpstreamIdleTimeout time.Duration
	// MaxConnsPerHost bounds connections to one upstream endpoint when the
	// cluster's circuit breaker does not; requests beyond it wait for a
	// connection. Default 1024.
	MaxConnsPerHost int
	// MaxIdleConnsPerHost bounds pooled idle connections per upstream
	// endpoint. Default 128.
	MaxIdleConnsPerHost int

	// Stats is the store the proxy's stats live in (Envoy's names; see
	// docs/stats.md). Nil means a new store without fixed tags; pass one
	// built with stats.FixedTagsFromEnv for App Mesh's tags.
	Stats *stats.Store
	// StatsSinks receive the stats every StatsFlushInterval (statsD,
	// DogStatsD, EMF). The flush also refreshes the histogram quantiles
	// /stats prints, so it runs without sinks too.
	StatsSinks []stats.Sink
	// StatsFlushInterval is Envoy's stats_flush_interval; 0 means 5s.
	StatsFlushInterval time.Duration
	// MeshMaxRoutes caps the calling side's mesh-metric edges (one per
	// virtual service, node and route; beyond it, route="__overflow__"),
	// MeshIdleTimeout evicts series unchanged that long; 0 means
	// meshmetrics' defaults (1000, 10m).
	MeshMaxRoutes   int
	MeshIdleTimeout time.Duration
	// DisableStats turns off the per-listener, per-cluster and mesh
	// stats of the data path (server.* stays), to measure their cost.
	DisableStats bool
	// Pprof serves Go's profiles under /debug/pprof/ on the admin port.
	Pprof bool
	// StdlibHTTP1Client sends plaintext HTTP/1.1 upstream with net/http's
	// Transport instead of the synchronous client (h1client), to compare
	// the two.
	StdlibHTTP1Client bool
	// Tracing, when set, is a tracing provider from the environment (App
	// Mesh's ENABLE_ENVOY_XRAY_TRACING, ENABLE_ENVOY_JAEGER_TRACING): it
	// replaces the provider of every HTTP connection manager's tracing
	// and gives one to those xDS gave none (effectiveTracing).
	Tracing *TracingOverride
	// ControlPlaneDial, when set, gives the gRPC options of the control
	// plane's xDS address (its TLS and the proxy's bearer token): the
	// OTLP exporter to the builtin tracing provider's collector
	// (xdsmeta.BuiltinTracingClusterName), which is the control plane,
	// dials with them, so that its spans are authenticated as its xDS
	// stream is.
	ControlPlaneDial func() []grpc.DialOption
}

// withDefaults returns c with every unset field at its default, or an
// error naming the first invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.Version == "" {
		c.Version = "meshlens/dev"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = DefaultAdminAddr
	}
	if c.EgressAddr == "" {
		c.EgressAddr = DefaultEgressAddr
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&c.DrainTimeout, DefaultDrainTimeout)
	setDur(&c.HeaderReadTimeout, DefaultHeaderReadTimeout)
	setDur(&c.IdleTimeout, DefaultIdleTimeout)
	setDur(&c.StreamIdleTimeout, DefaultStreamIdleTimeout)
	setDur(&c.TCPIdleTimeout, DefaultTCPIdleTimeout)
	setDur(&c.ConnectTimeout, DefaultConnectTimeout)
	setDur(&c.UpstreamIdleTimeout, DefaultUpstreamIdleTimeout)
	if c.MaxRequestHeaderBytes == 0 {
		c.MaxRequestHeaderBytes = DefaultMaxRequestHeaderBytes
	}
	if c.MaxConnsPerHost == 0 {
		c.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	setDur(&c.StatsFlushInterval, stats.DefaultFlushInterval)
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}

	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DrainTimeout", c.DrainTimeout}, {"HeaderReadTimeout", c.HeaderReadTimeout},
		{"IdleTimeout", c.IdleTimeout}, {"StreamIdleTimeout", c.StreamIdleTimeout}, {"TCPIdleTimeout", c.TCPIdleTimeout},
		{"ConnectTimeout", c.ConnectTimeout}, {"UpstreamIdleTimeout", c.UpstreamIdleTimeout},
		{"StatsFlushInterval", c.StatsFlushInterval},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: negative duration %s", d.name, d.v))
		}
	}
	if c.MaxRequestHeaderBytes < 0 || c.MaxConnsPerHost < 0 || c.MaxIdleConnsPerHost < 0 {
		errs = append(errs, errors.New("MaxRequestHeaderBytes, MaxConnsPerHost and MaxIdleConnsPerHost must not be negative"))
	}
	checkAddr := func(field, addr string, allowDisabled bool) {
		if addr == "" || (allowDisabled && addr == Disabled) {
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	checkAddr("AdminAddr", c.AdminAddr, false)
	checkAddr("IngressAddr", c.IngressAddr, true)
	checkAddr("EgressAddr", c.EgressAddr, true)
	for p, a := range c.EgressPorts {
		checkAddr(fmt.Sprintf("EgressPorts[%d]", p), a, false)
	}
	for p, a := range c.Listen {
		checkAddr(fmt.Sprintf("Listen[%d]", p), a, false)
	}
	for p, a := range c.App {
		checkAddr(fmt.Sprintf("App[%d]", p), a, false)
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("proxy config: %w", err)
	}
	return c, nil
}
