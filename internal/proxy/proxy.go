package proxy

import (
	"context"
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

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
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
	sockets   map[string]*socket   // by bindSpec.key
	upstreams map[string]*upstream // by cluster name
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
	mesh      *meshMetrics
	flusher   *stats.Flusher
	openConns atomic.Int64 // downstream connections, server.total_connections
	connIDs   atomic.Uint64

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
		sockets:   map[string]*socket{},
		upstreams: map[string]*upstream{},
		stopped:   map[table.Direction]bool{},
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	p.listenConfig.KeepAlive = 30 * time.Second
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
	p.mesh = newMeshMetrics(meshStore, self)
	p.flusher = stats.NewFlusher(p.stats, cfg.StatsFlushInterval, cfg.Log, cfg.StatsSinks...)
	ln, err := p.listenConfig.Listen(context.Background(), "tcp", cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("admin listener %s: %w", cfg.AdminAddr, err)
	}
	p.adminLn = ln
	p.admin = p.newAdminServer()
	return p, nil
}

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
		b := s.binding.Load()
		if b == nil || s.closed.Load() {
			continue
		}
		out = append(out, BoundListener{Listener: b.lrt.name, Port: b.forcedPort, Addr: s.ln.Addr()})
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

// ErrShutdown is returned by Apply once Shutdown has begun.
var ErrShutdown = errors.New("proxy is shutting down")

// Apply provisions and swaps in a snapshot. It binds the sockets new
// listeners need, prepares upstream pools and TLS, and only when all of it
// succeeded makes the snapshot current; otherwise it returns the error
// (the xDS client NACKs) and the previous snapshot keeps serving
// untouched. Listeners whose socket address is unchanged keep their
// socket; removed ones stop accepting and drain their connections for up
// to Config.DrainTimeout in the background. Requests and connections in
// flight finish on the snapshot they started with.
func (p *Proxy) Apply(s *table.Snapshot) error {
	if s == nil {
		return errors.New("apply: nil snapshot")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrShutdown
	}

	// 1. Where each listener binds; addresses must not collide.
	specs := map[string]bindSpec{}
	names := map[string]*table.Listener{}
	for _, l := range s.Listeners {
		if _, dup := names[l.Name]; dup {
			return fmt.Errorf("apply: listener %s appears twice", l.Name)
		}
		names[l.Name] = l
		if p.stopped[l.Direction] {
			continue // /drain_listeners: no new sockets for these
		}
		for _, b := range p.bindSpecs(l) {
			k := b.key()
			if prev, ok := specs[k]; ok {
				return fmt.Errorf("apply: listeners %s and %s both bind %s", prev.listener, b.listener, b.addr)
			}
			specs[k] = b
		}
	}

	// 2. Upstreams: reuse when the connection settings are unchanged.
	newUps := map[string]*upstream{}
	var created []*upstream
	var res scopes
	var logs []*accesslog.Writer
	fail := func(err error) error {
		for _, u := range created {
			u.stopHealthChecks()
			u.closeIdle()
			u.stats.release()
		}
		res.release()
		for _, w := range logs {
			_ = w.Close()
		}
		return err
	}
	for name, c := range s.Clusters {
		key := keyOf(c, p.cfg.ConnectTimeout)
		if u := p.upstreams[name]; u != nil && u.key == key {
			newUps[name] = u
			continue
		}
		u, err := p.newUpstream(c, key)
		if errors.Is(err, errSDS) {
			p.log.Warn("cluster not served: its TLS context uses SDS", "cluster", name)
			u = &upstream{name: name, key: key, endpoints: map[string]*endpointStats{}, stats: newClusterStats(p.clusterScope(name)), log: p.log}
		} else if err != nil {
			return fail(fmt.Errorf("apply: %w", err))
		}
		newUps[name] = u
		created = append(created, u)
	}
	rs := p.buildState(s, newUps)

	// Stats scopes and access logs of the listeners and chains. The
	// previous snapshot's are released after the swap, so the stats of
	// what stays carry over.
	type chainRT struct {
		stats   *hcmStats
		tcp     *tcpStats
		logs    []chainLog
		filters *chain.Chain
	}
	acquire := func(prefix string) *stats.Scope { return res.acquire(p.dataStats, prefix) }
	if old := p.state.Load(); old != nil {
		carryBuckets(old.snap, s)
	}
	for _, rl := range s.RateLimits {
		rl.Provision(acquire(rl.StatsPrefix()))
	}
	chainRTs := map[*table.FilterChain]*chainRT{}
	lstats := map[string]*listenerStats{}
	for _, l := range s.Listeners {
		lstats[l.Name] = newListenerStats(res.acquire(p.dataStats, "listener."+listenerStatName(l)+"."))
		chains := l.Chains
		if l.Default != nil {
			chains = append(slices.Clip(chains), l.Default)
		}
		for _, c := range chains {
			crt := &chainRT{}
			var als []table.AccessLog
			switch {
			case c.HTTP != nil:
				crt.stats = newHCMStats(res.acquire(p.dataStats, "http."+c.HTTP.StatPrefix+"."))
				crt.filters = chain.New(c.HTTP.Filters, c.HTTP.StatPrefix, acquire)
				als = c.HTTP.AccessLogs
			case c.TCP != nil:
				crt.tcp = newTCPStats(res.acquire(p.dataStats, "tcp."+c.TCP.StatPrefix+"."))
				if rl := c.NetRateLimit; rl != nil {
					rl.Provision(acquire(rl.StatsPrefix()))
				}
				als = c.TCP.AccessLogs
			}
			for _, al := range als {
				f, err := accesslog.FromConfig(al.Format, al.JSONFormat)
				if err != nil {
					return fail(fmt.Errorf("apply: listener %s: chain %q: access log %s: %w", l.Name, c.Name, al.Path, err))
				}
				w, err := accesslog.Get(al.Path, accesslog.Options{})
				if err != nil {
					return fail(fmt.Errorf("apply: listener %s: chain %q: access log: %w", l.Name, c.Name, err))
				}
				logs = append(logs, w)
				crt.logs = append(crt.logs, chainLog{f: f, w: w})
			}
			chainRTs[c] = crt
		}
	}
	rs.scopes, rs.logWriters = res, logs

	// 3. Bind the sockets that are new. Nothing is swapped until all bound.
	var bound []*socket
	for k, spec := range specs {
		if old := p.sockets[k]; old != nil {
			continue
		}
		sock, err := p.listen(k, spec.addr)
		if err != nil {
			for _, b := range bound {
				b.close()
			}
			return fail(fmt.Errorf("apply: listener %s: bind %s: %w", spec.listener, spec.addr, err))
		}
		bound = append(bound, sock)
	}

	// 4. Listener runtimes and their HTTP servers; swap configs.
	newLRTs := map[string]*listenerRT{}
	var retired []func(ctx context.Context)
	for _, l := range s.Listeners {
		lrt := p.listeners[l.Name]
		if lrt == nil {
			lrt = &listenerRT{p: p, name: l.Name, servers: map[string]*httpServer{}}
		}
		newLRTs[l.Name] = lrt
		servers := map[string]*httpServer{}
		byChain := map[*table.FilterChain]*httpServer{}
		chains := l.Chains
		if l.Default != nil {
			chains = append(slices.Clip(chains), l.Default)
		}
		listenerTLS := slices.ContainsFunc(chains, func(c *table.FilterChain) bool { return c.TLS != nil })
		for _, c := range chains {
			if c.HTTP == nil {
				continue
			}
			idle, maxHdr := p.httpLimits(c.HTTP)
			key := serverKey(c, idle, maxHdr)
			hs := servers[key]
			if hs == nil {
				hs = lrt.servers[key]
			}
			if hs == nil {
				hs = p.newHTTPServer(key, c, idle, maxHdr)
				if hs.unusable != "" {
					p.log.Warn("filter chain not served", "listener", l.Name, "chain", c.Name, "reason", hs.unusable)
				}
			}
			crt := chainRTs[c]
			hs.cfg.Store(&chainConfig{chain: c, rs: rs, dir: l.Direction, stats: crt.stats, logs: crt.logs, listenerTLS: listenerTLS, filters: crt.filters})
			servers[key] = hs
			byChain[c] = hs
		}
		var gone []*httpServer
		for key, hs := range lrt.servers {
			if servers[key] == nil {
				gone = append(gone, hs)
			}
		}
		if len(gone) > 0 {
			retired = append(retired, func(ctx context.Context) {
				for _, hs := range gone {
					hs.drain(ctx)
				}
			})
		}
		lrt.servers = servers
		tcp := map[*table.FilterChain]*tcpChain{}
		for _, c := range chains {
			if crt := chainRTs[c]; crt.tcp != nil {
				tc := &tcpChain{stats: crt.tcp, logs: crt.logs, dir: l.Direction}
				if c.TLS != nil {
					conf, err := downstreamTLSConfig(c.TLS, nil)
					if err != nil {
						p.log.Warn("TCP filter chain not served: its TLS cannot be set up", "listener", l.Name, "chain", c.Name, "err", err)
						tc.unusable = err.Error()
					}
					tc.tls = conf
				}
				tcp[c] = tc
			}
		}
		lrt.cfg.Store(&listenerConfig{l: l, rs: rs, servers: byChain, stats: lstats[l.Name], tcp: tcp})
	}
	if old := p.state.Swap(rs); old != nil {
		old.release()
	}

	// 5. Point sockets at their listeners; start the new ones; close the
	// ones no listener wants.
	for _, sock := range bound {
		p.sockets[sock.key] = sock
	}
	for k, sock := range p.sockets {
		spec, ok := specs[k]
		if !ok {
			sock.close()
			delete(p.sockets, k)
			continue
		}
		sock.binding.Store(&socketBinding{lrt: newLRTs[spec.listener], forcedPort: spec.forcedPort})
	}
	for _, sock := range bound {
		p.bg.Go(sock.acceptLoop)
	}

	// 6. Drain what left: listeners, chains, upstreams.
	for name, lrt := range p.listeners {
		if newLRTs[name] != nil {
			continue
		}
		servers := make([]*httpServer, 0, len(lrt.servers))
		for _, hs := range lrt.servers {
			servers = append(servers, hs)
		}
		retired = append(retired, func(ctx context.Context) { lrt.drain(ctx, servers) })
	}
	var oldUps []*upstream
	for name, u := range p.upstreams {
		if newUps[name] != u {
			oldUps = append(oldUps, u)
			u.stopHealthChecks()
		}
	}
	p.listeners = newLRTs
	p.upstreams = newUps
	if len(retired) > 0 || len(oldUps) > 0 {
		p.bg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
			defer cancel()
			var wg sync.WaitGroup
			for _, f := range retired {
				wg.Go(func() { f(ctx) })
			}
			wg.Wait()
			for _, u := range oldUps {
				u.closeIdle()
				u.retireOutliers()
				u.stats.release()
			}
		})
	}
	if !p.applied.Swap(true) {
		p.log.Info("first configuration applied; proxy is live", "listeners", len(s.Listeners), "clusters", len(s.Clusters))
	}
	return nil
}

// httpLimits are an HTTP chain's connection idle timeout and header limit.
func (p *Proxy) httpLimits(m *table.HTTPManager) (time.Duration, int) {
	idle := m.IdleTimeout
	if idle <= 0 {
		idle = p.cfg.IdleTimeout
	}
	maxHdr := int(m.MaxRequestHeaders)
	if maxHdr <= 0 {
		maxHdr = p.cfg.MaxRequestHeaderBytes
	}
	return idle, maxHdr
}

// buildState prepares the per-cluster views of a snapshot, applying the
// Config.App overrides to the clusters inbound chains route to.
func (p *Proxy) buildState(s *table.Snapshot, ups map[string]*upstream) *runtimeState {
	overrides := map[string]string{}
	for _, l := range s.Listeners {
		if l.Direction != table.Inbound {
			continue
		}
		for _, c := range l.Chains {
			app, ok := p.cfg.App[c.DestinationPort]
			if !ok || c.DestinationPort == 0 {
				continue
			}
			for _, name := range chainClusters(c) {
				overrides[name] = app
			}
		}
	}
	rs := &runtimeState{
		snap:      s,
		appliedAt: time.Now(),
		views:     make(map[*table.Cluster]*clusterView, len(s.Clusters)),
		byName:    make(map[string]*clusterView, len(s.Clusters)),
	}
	for name, c := range s.Clusters {
		u := ups[name]
		var v *clusterView
		if u.h1 == nil && u.h2 == nil && u.tlsConf == nil && c.TLS != nil {
			v = &clusterView{c: c, up: u, limits: limitsOf(c.Limits)} // unusable (SDS): no endpoints
		} else {
			v = newClusterView(c, u, overrides[name])
		}
		rs.views[c] = v
		rs.byName[name] = v
		v.up.view.Store(v)
		v.up.prune(v)
		v.up.setLimits(v.limits)
		v.up.syncHealthChecks(v)
		v.up.stats.setMembership(v)
		if v.c.Panic {
			v.up.stats.lbHealthyPanic.Inc()
		}
	}
	p.meshEdges(s, rs)
	return rs
}

// meshEdges gives every cluster view the calling side's mesh-metric
// edges of the virtual services routed to it, keyed by service.
func (p *Proxy) meshEdges(s *table.Snapshot, rs *runtimeState) {
	if p.dataStats == nil {
		return
	}
	add := func(service string, c *table.Cluster) {
		v := rs.byName[c.Name]
		if v == nil {
			return
		}
		if v.edges == nil {
			v.edges = map[string]*meshEdge{}
		}
		if v.edges[service] == nil {
			v.edges[service] = p.mesh.outboundEdge(service, c.Meta.Mesh, c.Meta.VirtualNode)
		}
	}
	for _, l := range s.Listeners {
		if l.Direction == table.Inbound {
			continue
		}
		chains := l.Chains
		if l.Default != nil {
			chains = append(slices.Clip(chains), l.Default)
		}
		for _, c := range chains {
			if c.TCP != nil {
				for _, wc := range c.TCP.Clusters {
					if wc.Cluster != nil {
						add(c.Meta.VirtualService, wc.Cluster)
					}
				}
			}
			if c.HTTP == nil || c.HTTP.Routes == nil {
				continue
			}
			for _, vh := range c.HTTP.Routes.VirtualHosts {
				for _, r := range vh.Routes {
					for _, wc := range r.Clusters {
						if wc.Cluster != nil {
							add(r.Meta.VirtualService, wc.Cluster)
						}
					}
				}
			}
		}
	}
}

// clusterScope acquires a cluster's stats scope, nil when stats are off.
func (p *Proxy) clusterScope(name string) *stats.Scope {
	if p.dataStats == nil {
		return nil
	}
	return p.dataStats.Scope("cluster." + name + ".")
}

// chainClusters names the clusters a filter chain can send to.
func chainClusters(c *table.FilterChain) []string {
	var out []string
	if c.TCP != nil {
		for _, wc := range c.TCP.Clusters {
			out = append(out, wc.Name)
		}
	}
	if c.HTTP != nil && c.HTTP.Routes != nil {
		for _, vh := range c.HTTP.Routes.VirtualHosts {
			for _, r := range vh.Routes {
				for _, wc := range r.Clusters {
					out = append(out, wc.Name)
				}
			}
		}
	}
	return out
}

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
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.shutOnce.Do(func() {
		p.shutErr = p.shutdown(ctx, p.cfg.DrainTimeout)
		close(p.done)
	})
	select {
	case <-p.done:
		return p.shutErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Proxy) shutdown(ctx context.Context, drain time.Duration) error {
	p.draining.Store(true)
	p.quitOnce.Do(func() { close(p.quit) })
	p.mu.Lock()
	p.closed = true
	for addr, sock := range p.sockets {
		sock.close()
		delete(p.sockets, addr)
	}
	lrts := p.listeners
	p.listeners = map[string]*listenerRT{}
	p.mu.Unlock()

	dctx, cancel := context.WithTimeout(ctx, drain)
	defer cancel()
	var wg sync.WaitGroup
	for _, lrt := range lrts {
		servers := make([]*httpServer, 0, len(lrt.servers))
		for _, hs := range lrt.servers {
			servers = append(servers, hs)
		}
		wg.Go(func() { lrt.drain(dctx, servers) })
	}
	wg.Wait()

	p.mu.Lock()
	for _, u := range p.upstreams {
		u.stopHealthChecks()
		u.closeIdle()
	}
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
			if p.mesh.store != nil {
				p.mesh.store.MergeHistograms()
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
