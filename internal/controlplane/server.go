// Package controlplane is the meshlens control plane: it keeps resources in
// the store, accepts instance registrations, serves the REST API, and
// compiles each data plane's view of the mesh into xDS, pushed whenever
// the resources, the registered instances or DNS answers change.
package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/auth"
	"github.com/meshlens/meshlens/internal/metricshistory"
	"github.com/meshlens/meshlens/internal/registry"
	"github.com/meshlens/meshlens/internal/store"
	"github.com/meshlens/meshlens/internal/tracestore"
	"github.com/meshlens/meshlens/internal/xds"
)

// Defaults: every listener binds to loopback unless told otherwise.
const (
	DefaultAPIAddr      = "127.0.0.1:7070"
	DefaultXDSAddr      = "127.0.0.1:15010"
	DefaultMaxBodyBytes = 8 << 20
	DefaultDNSInterval  = 5 * time.Second
	dbFileName          = "meshlens.db"
)

// Config configures a control plane.
type Config struct {
	DataDir string
	// Etcd, when set, keeps the resources in that etcd cluster (shared
	// by every replica given the same cluster and prefix) instead of
	// the bbolt file under DataDir.
	Etcd         *store.EtcdOptions
	APIAddr      string
	XDSAddr      string
	MaxBodyBytes int64         // largest request body the API reads
	DNSInterval  time.Duration // how often dns service discovery re-resolves
	// Resolver answers dns service discovery's lookups (default: the
	// system's resolver, net.DefaultResolver).
	Resolver Resolver
	// ClusterGrace is how long a cluster no route names any more is still
	// served to the data planes (0: xds.Options' default, 10 s); tests
	// that watch a cluster go away set it shorter.
	ClusterGrace time.Duration
	Logger       *slog.Logger
	// TraceStore bounds the built-in trace store (see tracestore). With
	// MaxDiskBytes set and no Dir, spans are kept on disk as well, under
	// DataDir/traces.
	TraceStore tracestore.Options
	// DisableOTLP turns off the trace store's OTLP receivers (gRPC on the
	// xDS address, POST /v1/traces on the API) and the builtin tracing
	// provider that sends proxies' spans to them.
	DisableOTLP bool
	// OTLPAdvertiseAddr is the host:port proxies send spans to for the
	// builtin tracing provider (default: the xDS address, unless that is
	// a wildcard address, which proxies cannot dial).
	OTLPAdvertiseAddr string
	// MetricsHistory bounds the history of the mesh metrics the proxies
	// stream to the metrics service on the xDS address.
	MetricsHistory metricshistory.Options
	// ReplicaID names this replica among those sharing an etcd store
	// (default: hostname:api-port). AdvertiseAPIAddr is the host:port
	// the other replicas reach its API at (default: the API address,
	// with the hostname for a wildcard host). ReplicaTTL is its etcd
	// session's TTL (default DefaultReplicaTTL).
	ReplicaID        string
	AdvertiseAPIAddr string
	ReplicaTTL       time.Duration
	// PrometheusURL, when set, makes the console read traffic from that
	// Prometheus server (which scrapes the proxies) instead of the
	// history.
	PrometheusURL string
	// Auth, when set, holds the tokens every API request and xDS call must
	// present (see auth.go and docs/auth.md); nil checks nothing.
	Auth *auth.Store
	// InsecureAllowUnauthenticated lets the API and xDS bind addresses
	// that are not loopback without Auth (--insecure-allow-unauthenticated).
	InsecureAllowUnauthenticated bool
	// APITLS and XDSTLS, when set, make the API and the xDS server speak
	// TLS with these settings (certificates from --api-tls-cert and
	// --xds-tls-cert, or issued ones through GetCertificate).
	APITLS, XDSTLS *tls.Config
	// PeerTLS is how a replica verifies the other replicas' API
	// certificates when they serve TLS (their peer record says https):
	// RootCAs from --api-tls-ca, nil RootCAs for the system's roots. Nil:
	// the system's roots.
	PeerTLS *tls.Config
	// CA configures the mesh certificate authority, which issues the
	// data planes' identities over SDS.
	CA CAConfig
}

// Resolver looks up a hostname's IPv4 and IPv6 addresses, as
// net.Resolver's LookupHost does.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

func (c *Config) setDefaults() {
	if c.APIAddr == "" {
		c.APIAddr = DefaultAPIAddr
	}
	if c.XDSAddr == "" {
		c.XDSAddr = DefaultXDSAddr
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.DNSInterval <= 0 {
		c.DNSInterval = DefaultDNSInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
}

// Server is a running control plane.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	registry *registry.Registry
	// spanCollector is where the builtin tracing provider sends spans
	// (builtinCollector), empty when it is off.
	spanCollector string
	// leased, with the etcd store, keeps registrations as leased keys
	// that every replica mirrors into registry.
	leased *registry.Leased
	// cluster, with the etcd store, is this replica's membership of the
	// replicas sharing it: peers and the leader election.
	cluster  *cluster
	dns      *resolver
	xds      *xds.Server
	traces   *tracestore.Store
	metrics  *metrics
	history  *metricshistory.Store
	traffic  metricshistory.Reader // the history, or Prometheus
	receiver *metricshistory.Receiver
	// peerHTTP calls the other replicas' APIs.
	peerHTTP *http.Client
	// afterRead, when set (by tests), runs after feedXDS read the
	// instances and before it hands them on.
	afterRead func()
	// beforeApplyWarnings, when set (by tests), runs when an apply starts
	// computing its warnings.
	beforeApplyWarnings func()
	// streamsQuiet, when set (by tests), replaces the const of the same
	// name: how long the streams stay idle before an apply's warnings.
	streamsQuiet time.Duration
	warnings     warningCache
	// feeding is set while feedXDS hands the xDS server its inputs.
	feeding atomic.Bool
	taps    tapLimiter // open /v1/tap streams

	authMetrics authMetrics

	apiLn, xdsLn net.Listener
}

// New opens the store and binds the API and xDS listeners, so that a
// caller knows the addresses (and a port conflict is reported) before Run.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.DataDir == "" {
		return nil, errors.New("data dir: is required")
	}
	if err := checkBinds(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	var prom *metricshistory.Prometheus
	if cfg.PrometheusURL != "" {
		var err error
		if prom, err = metricshistory.NewPrometheus(cfg.PrometheusURL); err != nil {
			return nil, err
		}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	ca, err := openCA(cfg, st)
	if err == nil {
		cfg.XDSTLS, err = xdsClientCertTLS(cfg, ca)
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, store: st,
		registry: registry.New(nil),
		dns:      newResolver(cfg.Logger, cfg.DNSInterval, cfg.Resolver),
	}
	if e, ok := st.(*store.Etcd); ok {
		s.leased = registry.NewLeased(s.registry, e.Client(), e.Prefix(), cfg.Logger)
	}
	s.metrics = newMetrics()
	s.authMetrics = newAuthMetrics(s.metrics.reg)
	if s.apiLn, err = net.Listen("tcp", cfg.APIAddr); err != nil {
		st.Close()
		return nil, fmt.Errorf("api address: %w", err)
	}
	if cfg.APITLS != nil {
		s.apiLn = tls.NewListener(s.apiLn, cfg.APITLS)
	}
	if s.xdsLn, err = net.Listen("tcp", cfg.XDSAddr); err != nil {
		s.apiLn.Close()
		st.Close()
		return nil, fmt.Errorf("xds address: %w", err)
	}
	if s.traces, err = openTraceStore(cfg); err != nil {
		s.xdsLn.Close()
		s.apiLn.Close()
		st.Close()
		return nil, err
	}
	if e, ok := st.(*store.Etcd); ok {
		s.peerHTTP = newPeerClient(cfg.PeerTLS)
		s.cluster = newCluster(e.Client(), e.Prefix(), s.selfPeer(), cfg.ReplicaTTL, cfg.Logger)
		s.dns.onChange = s.publishDNS
		s.cluster.onLead = func(ctx context.Context) {
			s.dns.Run(ctx, func() []string { return hostnames(s.store.Snapshot()) })
		}
	}
	s.history = metricshistory.New(cfg.MetricsHistory)
	s.receiver = metricshistory.NewReceiver(s.history)
	if cfg.Auth != nil {
		s.receiver.Authorize = s.authorizeMetricsNode
	}
	s.traffic = s.history
	if prom != nil {
		s.traffic = prom
	}
	s.spanCollector = s.builtinCollector()
	xopts := xds.Options{Metrics: s.metrics, BuiltinCollector: s.spanCollector, ClusterGrace: cfg.ClusterGrace}
	if cfg.Auth != nil {
		xopts.Authorize = s.authorizeNode
	}
	if ca != nil {
		xopts.Secrets = ca
	}
	s.xds = xds.NewServer(ctx, cfg.Logger, xopts)
	s.metrics.reg.MustRegister(newStateCollector(s))
	s.metrics.reg.MustRegister(newTraceStoreCollector(s.traces))
	return s, nil
}

// openStoreTimeout bounds connecting to an etcd cluster and loading its
// state at start.
const openStoreTimeout = 30 * time.Second

// openStore opens the configured store: the etcd cluster, or the bbolt
// file in the data dir.
func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	if cfg.Etcd == nil {
		return store.Open(filepath.Join(cfg.DataDir, dbFileName), store.Options{Logger: cfg.Logger})
	}
	opts := *cfg.Etcd
	opts.Logger = cfg.Logger
	ctx, cancel := context.WithTimeout(ctx, openStoreTimeout)
	defer cancel()
	return store.OpenEtcd(ctx, opts)
}

// APIAddr is the address the REST API listens on.
func (s *Server) APIAddr() string { return s.apiLn.Addr().String() }

// XDSAddr is the address the xDS server listens on.
func (s *Server) XDSAddr() string { return s.xdsLn.Addr().String() }

// Run serves until ctx ends, then shuts down gracefully and closes the store.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.store.Close()
	defer s.traces.Close()

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(3)
	go func() { defer wg.Done(); s.registry.Run(ctx, time.Second) }()
	if s.leased != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.leased.Run(ctx) }()
	}
	if s.cluster != nil {
		// DNS is resolved by the leader alone, which publishes the
		// answers; every replica follows them.
		wg.Add(1)
		go func() { defer wg.Done(); s.followDNS(ctx) }()
		go func() { defer wg.Done(); s.cluster.run(ctx) }()
	} else {
		go func() { defer wg.Done(); s.dns.Run(ctx, func() []string { return hostnames(s.store.Snapshot()) }) }()
	}
	go func() { defer wg.Done(); s.feedXDS(ctx) }()

	gopts := grpcServerOptions()
	if s.cfg.XDSTLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(s.cfg.XDSTLS)))
	}
	g := grpc.NewServer(append(gopts, s.grpcInterceptors()...)...)
	s.xds.Register(g)
	s.receiver.Register(g)
	if !s.cfg.DisableOTLP {
		var authorize tracestore.AuthorizeServices
		if s.cfg.Auth != nil {
			authorize = s.authorizeSpans
		}
		s.traces.RegisterGRPC(g, authorize)
	}
	go func() {
		if err := g.Serve(s.xdsLn); err != nil {
			errc <- fmt.Errorf("xds server: %w", err)
		}
	}()

	hs := &http.Server{
		Handler:           s.api(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := hs.Serve(s.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("api server: %w", err)
		}
	}()
	s.log.Info("control plane serving", "api", s.APIAddr(), "xds", s.XDSAddr(), "dataDir", s.cfg.DataDir,
		"revision", s.store.Snapshot().Revision(), "auth", s.cfg.Auth != nil, "api_tls", s.cfg.APITLS != nil, "xds_tls", s.cfg.XDSTLS != nil)
	if s.cfg.Auth != nil && s.cfg.Auth.Len() == 0 {
		s.log.Warn("authentication is on but the token file has no token: create one with meshlens token create --auth-tokens "+s.cfg.Auth.Path()+" --role admin",
			"file", s.cfg.Auth.Path())
	}
	if s.cfg.Auth == nil && s.cfg.InsecureAllowUnauthenticated && (!isLoopback(s.cfg.APIAddr) || !isLoopback(s.cfg.XDSAddr)) {
		s.log.Warn("serving without authentication on an address other hosts can reach (--insecure-allow-unauthenticated)",
			"api", s.APIAddr(), "xds", s.XDSAddr())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("control plane shutting down")
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer shutCancel()
	_ = hs.Shutdown(shutCtx)
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutCtx.Done():
		g.Stop() // ADS streams never end on their own
	}
	cancel()
	wg.Wait()
	return runErr
}

// grpcWindow is the flow-control window of the gRPC server's streams and
// connections. A fixed window turns off gRPC's bandwidth estimation, which
// answers data from a client with a PING and then, often, a WINDOW_UPDATE:
// with thousands of proxies ACKing a push, that is two more frames to
// write and one more to read per proxy, for a window that xDS requests and
// span exports (bounded by MaxRecvMsgSize) do not need to grow.
const grpcWindow = 1 << 20

// grpcServerOptions are the gRPC server's limits, keepalives and windows.
func grpcServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(4 << 20),
		grpc.MaxConcurrentStreams(1000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.InitialWindowSize(grpcWindow),
		grpc.InitialConnWindowSize(grpcWindow),
	}
}

// feedXDS hands the xDS server a new input whenever resources, instances
// or DNS answers change. The xDS server debounces bursts.
//
// The registry's change channel is taken before the instances are read:
// a registration that lands after the read closes the channel the next
// wait is on, so it is never missed.
func (s *Server) feedXDS(ctx context.Context) {
	s.feeding.Store(true)
	defer s.feeding.Store(false)
	snaps := s.store.Watch(ctx)
	var snap *store.Snapshot
	regChanged := s.registry.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case next, ok := <-snaps:
			if !ok {
				return
			}
			if snap == nil || !slices.Equal(hostnames(snap), hostnames(next)) {
				s.dns.Kick() // resolve a new hostname now, not at the next tick
			}
			snap = next
		case <-regChanged:
		case <-s.dns.Changed():
		}
		regChanged = s.registry.Changed()
		if snap == nil {
			continue
		}
		view := s.endpointView(snap)
		if s.afterRead != nil {
			s.afterRead()
		}
		s.xds.Update(snap, view)
	}
}

func (s *Server) endpointView(l v1alpha1.Lookup) *endpointView {
	return &endpointView{lookup: l, instances: s.registry.View(), dns: s.dns.Snapshot()}
}
