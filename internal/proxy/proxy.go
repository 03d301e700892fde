package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"

	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/filters/router"
	"github.com/meshlens/meshlens/internal/proxy/hcm"
	"github.com/meshlens/meshlens/internal/proxy/listener"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/sds"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/stats"
)

// Proxy is the data plane runtime. Create it with New, feed it snapshots
// with Apply (from the xDS client), run its admin server with Run, stop it
// with Shutdown or by cancelling Run's context.
type Proxy struct {
	cfg          Config
	log          *slog.Logger
	errLog       *log.Logger // net/http's server errors, at debug level
	listenConfig net.ListenConfig
	started      time.Time

	// state is the current snapshot with its cluster views; the admin
	// server reads it, the data path reads its own copies (listener and
	// chain configs) that Apply updates after it.
	state atomic.Pointer[runtimeState]

	applied     atomic.Bool // a first snapshot is serving
	hcFailed    atomic.Bool // POST /healthcheck/fail
	draining    atomic.Bool // Shutdown started
	cpConnected atomic.Bool

	// mu serialises the control side: Apply, drains, Shutdown. The data
	// path never takes it.
	mu        sync.Mutex
	listeners map[string]*listenerRT
	sockets   map[string]*listener.Socket  // by listener.BindSpec.key
	upstreams map[string]*cluster.Upstream // by cluster name
	exporters map[string]*exporterRT       // tracing, by table.Tracing.Key
	stopped   map[table.Direction]bool
	closed    bool

	admin   *http.Server
	adminLn net.Listener

	// stats holds every stat; dataStats is the same store, or nil when
	// Config.DisableStats leaves the data path without stats.
	stats     *stats.Store
	dataStats *stats.Store
	srvStats  *serverStats
	codec     *codecStats
	mesh      *meshmetrics.Metrics
	flusher   *stats.Flusher
	openConns atomic.Int64 // downstream connections, server.total_connections
	connIDs   atomic.Uint64
	lenv      *listener.Env // what the listeners share
	henv      *hcm.Env      // what the HTTP connection managers share
	secrets   *sds.Store    // TLS secrets received over SDS

	bg    sync.WaitGroup // drains and server goroutines
	conns sync.WaitGroup // per-connection goroutines

	quit     chan struct{} // closed when Shutdown begins
	quitOnce sync.Once
	done     chan struct{} // closed when Shutdown has finished
	shutOnce sync.Once
	shutErr  error
}

// New validates cfg and binds the admin server's socket (so a port
// conflict is reported here, and tests can read AdminAddr); Run serves it.
// Data listeners are bound by Apply.
func New(cfg Config) (*Proxy, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:       cfg,
		log:       cfg.Log,
		errLog:    slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
		started:   time.Now(),
		listeners: map[string]*listenerRT{},
		sockets:   map[string]*listener.Socket{},
		upstreams: map[string]*cluster.Upstream{},
		exporters: map[string]*exporterRT{},
		stopped:   map[table.Direction]bool{},
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	p.listenConfig.KeepAlive = 30 * time.Second
	p.lenv = &listener.Env{Log: p.log, Conns: &p.conns, OpenConns: &p.openConns, ConnIDs: &p.connIDs, HeaderReadTimeout: cfg.HeaderReadTimeout}
	p.stats = cfg.Stats
	if p.stats == nil {
		if p.stats, err = stats.NewStore(stats.Options{}); err != nil {
			return nil, err
		}
	}
	if !cfg.DisableStats {
		p.dataStats = p.stats
	}
	p.srvStats = newServerStats(p.stats)
	p.codec = newCodecStats(p.dataStats)
	p.srvStats.version.Set(cfg.Version)
	self, _ := nodeid.Parse(cfg.NodeID) // an unparsable id labels as unknown
	var meshStore *stats.Store
	if !cfg.DisableStats {
		meshStore, err = stats.NewStore(stats.Options{TagRules: []stats.TagRule{}, PrometheusPrefix: "meshlens_", PrometheusSeconds: true})
		if err != nil {
			return nil, err
		}
	}
	p.mesh = meshmetrics.New(meshStore, self)
	p.mesh.SetMaxRoutes(cfg.MeshMaxRoutes)
	p.secrets = sds.NewStore()
	p.henv = &hcm.Env{Log: p.log, ErrLog: p.errLog, HeaderReadTimeout: cfg.HeaderReadTimeout, StreamIdleTimeout: cfg.StreamIdleTimeout, H2HeaderOverflow: p.codec.h2HeaderOverflow, H2: p.codec.h2, Router: &router.Router{StreamIdleTimeout: cfg.StreamIdleTimeout}, Secrets: p.secrets}
	if p.dataStats != nil {
		p.henv.Mesh = p.mesh
	}
	p.flusher = stats.NewFlusher(p.stats, cfg.StatsFlushInterval, cfg.Log, cfg.StatsSinks...)
	ln, err := p.listenConfig.Listen(context.Background(), "tcp", cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("admin listener %s: %w", cfg.AdminAddr, err)
	}
	p.adminLn = ln
	p.admin = p.newAdminServer()
	return p, nil
}

// MeshStats is the store of the mesh metrics (nil when stats are off).
func (p *Proxy) MeshStats() *stats.Store { return p.mesh.Store() }

// AdminAddr is the admin server's bound address.
func (p *Proxy) AdminAddr() net.Addr { return p.adminLn.Addr() }

// BoundListener is one socket a listener is bound to.
type BoundListener struct {
	Listener string   // xDS listener name
	Port     uint32   // the Listen mapping's listener port, 0 for the listener's own socket
	Addr     net.Addr // the bound address (useful when configured with port 0)
}

// Listeners lists the bound sockets, sorted by listener name then port.
func (p *Proxy) Listeners() []BoundListener {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []BoundListener
	for _, s := range p.sockets {
		b := s.Binding()
		if b == nil || s.Closed() {
			continue
		}
		out = append(out, BoundListener{Listener: b.Runtime.Name, Port: b.ForcedPort, Addr: s.Addr()})
	}
	slices.SortFunc(out, func(a, b BoundListener) int {
		if a.Listener != b.Listener {
			if a.Listener < b.Listener {
				return -1
			}
			return 1
		}
		return int(a.Port) - int(b.Port)
	})
	return out
}

// SetControlPlaneConnected records whether the xDS stream is up, for
// /stats (control_plane.connected_state) and /server_info.
func (p *Proxy) SetControlPlaneConnected(up bool) {
	p.cpConnected.Store(up)
	v := int64(0)
	if up {
		v = 1
	}
	p.srvStats.cpConnected.Set(v)
}

// Stats is the proxy's stats store.
func (p *Proxy) Stats() *stats.Store { return p.stats }

// Run serves the admin API until ctx is done or Shutdown (or
// /quitquitquit) is called; on ctx's end it shuts the proxy down
// gracefully (Config.DrainTimeout) before returning.
func (p *Proxy) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	p.bg.Go(p.flushLoop)
	p.bg.Go(p.outlierLoop)
	p.bg.Go(func() {
		if err := p.admin.Serve(p.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	})
	select {
	case <-ctx.Done():
		return p.Shutdown(context.Background())
	case <-p.quit:
		<-p.done
		return p.shutErr
	case err := <-errc:
		_ = p.Shutdown(context.Background())
		return fmt.Errorf("admin server: %w", err)
	}
}

// Shutdown stops the proxy gracefully: the server state turns DRAINING (so
// /ready and the App Mesh health check fail), listeners stop accepting,
// in-flight requests and TCP sessions get up to Config.DrainTimeout (or
// until ctx ends) to finish, then everything is closed, the admin server
// last. It is safe to call more than once; later calls wait for the first.
// It returns when ctx ends even if something the shutdown waits for has
// not ended (a connection's goroutine), so that a process exits in the
// time it was given; the error then says how many connections were
// still open.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.shutOnce.Do(func() {
		go func() {
			p.shutErr = p.shutdown(ctx, p.cfg.DrainTimeout)
			close(p.done)
		}()
	})
	select {
	case <-p.done:
		return p.shutErr
	case <-ctx.Done():
		return fmt.Errorf("shutdown unfinished with %d downstream connections open: %w", p.openConns.Load(), ctx.Err())
	}
}

func (p *Proxy) shutdown(ctx context.Context, drain time.Duration) error {
	p.draining.Store(true)
	p.quitOnce.Do(func() { close(p.quit) })
	p.mu.Lock()
	p.closed = true
	for addr, sock := range p.sockets {
		sock.Close()
		delete(p.sockets, addr)
	}
	lrts := p.listeners
	p.listeners = map[string]*listenerRT{}
	p.mu.Unlock()

	dctx, cancel := context.WithTimeout(ctx, drain)
	defer cancel()
	var wg sync.WaitGroup
	for _, lrt := range lrts {
		servers := make([]*hcm.Server, 0, len(lrt.servers))
		for _, hs := range lrt.servers {
			servers = append(servers, hs)
		}
		wg.Go(func() { lrt.drain(dctx, servers) })
	}
	wg.Wait()

	p.mu.Lock()
	for _, u := range p.upstreams {
		u.StopHealthChecks()
		u.CloseIdle()
	}
	ectx, ecancel := context.WithTimeout(context.Background(), 2*time.Second)
	p.shutdownExporters(ectx)
	ecancel()
	p.mu.Unlock()
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	if err := p.admin.Shutdown(actx); err != nil {
		_ = p.admin.Close()
	}
	_ = p.adminLn.Close()
	p.conns.Wait()
	p.bg.Wait()
	// The sinks receive the last counts.
	p.refreshServerStats()
	fctx, fcancel := context.WithTimeout(context.Background(), time.Second)
	_ = p.flusher.Flush(fctx)
	fcancel()
	if rs := p.state.Load(); rs != nil {
		rs.release()
	}
	p.log.Info("proxy stopped")
	return ctx.Err()
}

// flushLoop refreshes the server stats and flushes the store every
// Config.StatsFlushInterval until the proxy quits.
func (p *Proxy) flushLoop() {
	t := time.NewTicker(p.cfg.StatsFlushInterval)
	defer t.Stop()
	ctx := context.Background()
	for {
		select {
		case <-p.quit:
			return // shutdown flushes once more when traffic has stopped
		case <-t.C:
			p.refreshServerStats()
			_ = p.flusher.Flush(ctx)
			if p.mesh.Store() != nil {
				p.mesh.Store().MergeHistograms()
				p.mesh.EvictIdle(time.Now(), p.cfg.MeshIdleTimeout)
			}
		}
	}
}

// quitNow is /quitquitquit: shut down without a drain period, as Envoy
// exits at once.
func (p *Proxy) quitNow() {
	go func() {
		p.shutOnce.Do(func() {
			p.shutErr = p.shutdown(context.Background(), 0)
			close(p.done)
		})
	}()
}

// outlierLoop returns ejected endpoints when their time is up and decays
// the ejection multipliers, every cluster at its own interval, until the
// proxy quits.
func (p *Proxy) outlierLoop() {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case now := <-t.C:
			next := cluster.MaxOutlierSweep
			if rs := p.state.Load(); rs != nil {
				next = cluster.SweepOutliers(now, rs.views)
			}
			t.Reset(next)
		}
	}
}

// UpdateSecrets swaps in TLS secrets received over SDS: the next
// handshake of every listener and cluster that names them uses them.
func (p *Proxy) UpdateSecrets(secrets map[string]*tlsv3.Secret) error {
	if err := p.secrets.Update(secrets); err != nil {
		return err
	}
	p.recordCertExpiry()
	return nil
}

// MeshIdentity returns the certificate received over SDS whose URI SAN
// is uri (the proxy's mesh CA identity), or nil before it has arrived.
func (p *Proxy) MeshIdentity(uri string) *tls.Certificate {
	for _, s := range p.secrets.Secrets() {
		if s.Cert != nil && len(s.Leaf.URIs) == 1 && s.Leaf.URIs[0].String() == uri {
			return s.Cert
		}
	}
	return nil
}
