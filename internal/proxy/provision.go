package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
	"github.com/meshlens/meshlens/internal/proxy/hcm"
	"github.com/meshlens/meshlens/internal/proxy/listener"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tlsctx"
	"github.com/meshlens/meshlens/internal/proxy/tunnel"
	"github.com/meshlens/meshlens/internal/stats"
)

// provision builds everything the snapshot needs without making any of
// it current. On error the caller calls abort.
func (t *applyTxn) provision() error {
	if err := t.provisionUpstreams(); err != nil {
		return err
	}
	t.rs = t.p.buildState(t.s, t.ups)
	if err := t.provisionExporters(); err != nil {
		return err
	}
	if err := t.provisionChains(); err != nil {
		return err
	}
	t.provisionCertExpiry()
	t.rs.scopes, t.rs.logWriters = t.res, t.logs
	if err := t.bind(); err != nil {
		return err
	}
	t.lrts = map[string]*listenerRT{}
	for _, l := range t.s.Listeners {
		t.provisionListener(l)
	}
	return nil
}

// abort undoes a provision that failed: the sockets bound, the upstreams
// created, the scopes and access logs acquired.
func (t *applyTxn) abort() {
	for _, b := range t.bound {
		b.Close()
	}
	for _, u := range t.created {
		u.StopHealthChecks()
		u.CloseIdle()
		u.Stats.Release()
	}
	t.res.release()
	for _, w := range t.logs {
		_ = w.Close()
	}
	for _, e := range t.createdExps {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		e.shutdown(ctx)
		cancel()
	}
}

// provisionUpstreams keeps each cluster's upstream when its connection
// settings are unchanged and builds a new one otherwise.
func (t *applyTxn) provisionUpstreams() error {
	p := t.p
	t.ups = map[string]*cluster.Upstream{}
	for name, c := range t.s.Clusters {
		key := cluster.KeyOf(c, p.cfg.ConnectTimeout)
		if u := p.upstreams[name]; u != nil && u.Key == key {
			t.ups[name] = u
			continue
		}
		u, err := cluster.NewUpstream(c, key, p.poolOptions(), p.clusterScope(name), p.log)
		if errors.Is(err, tlsctx.ErrSDS) {
			p.log.Warn("cluster not served: its TLS context uses SDS", "cluster", name)
			u = cluster.UnservedUpstream(name, key, p.clusterScope(name), p.log)
		} else if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		t.ups[name] = u
		t.created = append(t.created, u)
	}
	return nil
}

// allChains lists a listener's filter chains with its default chain last.
func allChains(l *table.Listener) []*table.FilterChain {
	if l.Default == nil {
		return l.Chains
	}
	return append(slices.Clip(l.Chains), l.Default)
}

// provisionChains acquires the stats scopes and access logs of the
// listeners and chains, builds each HTTP chain's filter chain and
// provisions the rate limits (HTTP and network), whose buckets carry over
// from the previous snapshot where unchanged. The previous snapshot's
// scopes are released after the swap, so the stats of what stays carry
// over.
func (t *applyTxn) provisionChains() error {
	p := t.p
	acquire := func(prefix string) *stats.Scope { return t.res.acquire(p.dataStats, prefix) }
	if old := p.state.Load(); old != nil {
		carryBuckets(old.snap, t.s)
	}
	for _, rl := range t.s.RateLimits {
		rl.Provision(acquire(rl.StatsPrefix()))
	}
	t.chainRTs = map[*table.FilterChain]*chainRT{}
	t.lstats = map[string]*listener.Stats{}
	for _, l := range t.s.Listeners {
		t.lstats[l.Name] = listener.NewStats(t.res.acquire(p.dataStats, "listener."+listener.StatName(l)+"."))
		for _, c := range allChains(l) {
			crt := &chainRT{}
			var als []table.AccessLog
			switch {
			case c.HTTP != nil:
				crt.stats = hcm.NewStats(t.res.acquire(p.dataStats, "http."+c.HTTP.StatPrefix+"."))
				crt.filters = chain.New(c.HTTP.Filters, c.HTTP.StatPrefix, acquire)
				als = c.HTTP.AccessLogs
				tr, fs, err := t.chainTracer(c)
				if err != nil {
					return fmt.Errorf("apply: listener %s: chain %q: tracing: %w", l.Name, c.Name, err)
				}
				crt.tracer, crt.formats = tr, fs
			case c.TCP != nil:
				crt.tcp = tunnel.NewStats(t.res.acquire(p.dataStats, "tcp."+c.TCP.StatPrefix+"."))
				if rl := c.NetRateLimit; rl != nil {
					rl.Provision(acquire(rl.StatsPrefix()))
				}
				als = c.TCP.AccessLogs
			}
			for _, al := range als {
				f, err := accesslog.FromConfig(al.Format, al.JSONFormat)
				if err != nil {
					return fmt.Errorf("apply: listener %s: chain %q: access log %s: %w", l.Name, c.Name, al.Path, err)
				}
				w, err := accesslog.Get(al.Path, accesslog.Options{})
				if err != nil {
					return fmt.Errorf("apply: listener %s: chain %q: access log: %w", l.Name, c.Name, err)
				}
				t.logs = append(t.logs, w)
				crt.logs = append(crt.logs, hcm.ChainLog{Format: f, Writer: w})
			}
			t.chainRTs[c] = crt
		}
	}
	return nil
}

// bind opens the sockets that are new. Nothing is swapped until all are
// bound.
func (t *applyTxn) bind() error {
	for k, spec := range t.specs {
		if old := t.p.sockets[k]; old != nil {
			continue
		}
		sock, err := listener.Listen(t.p.lenv, &t.p.listenConfig, k, spec.Addr)
		if err != nil {
			return fmt.Errorf("apply: listener %s: bind %s: %w", spec.Listener, spec.Addr, err)
		}
		t.bound = append(t.bound, sock)
	}
	return nil
}

// provisionListener prepares a listener's runtime: its HTTP servers (kept
// when their connection settings are unchanged), the configs of its HTTP
// and TCP chains, and the drain of the HTTP servers it no longer has.
func (t *applyTxn) provisionListener(l *table.Listener) {
	p := t.p
	lrt := p.listeners[l.Name]
	if lrt == nil {
		lrt = &listenerRT{p: p, name: l.Name, rt: listener.NewRuntime(l.Name, p.lenv), servers: map[string]*hcm.Server{}}
	}
	t.lrts[l.Name] = lrt
	ls := listenerSwap{lrt: lrt, servers: map[string]*hcm.Server{}}
	byChain := map[*table.FilterChain]*hcm.Server{}
	chains := allChains(l)
	listenerTLS := slices.ContainsFunc(chains, func(c *table.FilterChain) bool { return c.TLS != nil })
	for _, c := range chains {
		if c.HTTP == nil {
			continue
		}
		idle, maxHdr := p.httpLimits(c.HTTP)
		key := hcm.ServerKey(c, idle, maxHdr)
		hs := ls.servers[key]
		if hs == nil {
			hs = lrt.servers[key]
		}
		if hs == nil {
			hs = hcm.NewServer(p.henv, key, c, idle, maxHdr)
			if hs.Unusable != "" {
				p.log.Warn("filter chain not served", "listener", l.Name, "chain", c.Name, "reason", hs.Unusable)
			}
		}
		crt := t.chainRTs[c]
		ls.chains = append(ls.chains, serverSwap{hs: hs, cfg: &hcm.ChainConfig{Chain: c, Clusters: t.rs, Dir: l.Direction, Stats: crt.stats, Logs: crt.logs, ListenerTLS: listenerTLS, Filters: crt.filters, Tracer: crt.tracer, TraceFormats: crt.formats, TraceTags: extraTags(p.effectiveTracing(c.HTTP.Tracing)), TraceHeaderTags: headerTags(p.effectiveTracing(c.HTTP.Tracing))}})
		ls.servers[key] = hs
		byChain[c] = hs
	}
	var gone []*hcm.Server
	for key, hs := range lrt.servers {
		if ls.servers[key] == nil {
			gone = append(gone, hs)
		}
	}
	if len(gone) > 0 {
		t.retired = append(t.retired, func(ctx context.Context) {
			for _, hs := range gone {
				hs.Drain(ctx)
			}
		})
	}
	tcp := map[*table.FilterChain]*tcpChain{}
	for _, c := range chains {
		if crt := t.chainRTs[c]; crt.tcp != nil {
			tc := &tcpChain{stats: crt.tcp, logs: tunnelLogs(crt.logs), dir: l.Direction}
			if c.TLS != nil {
				conf, err := tlsctx.DownstreamConfig(c.TLS, nil, p.secrets)
				if err != nil {
					p.log.Warn("TCP filter chain not served: its TLS cannot be set up", "listener", l.Name, "chain", c.Name, "err", err)
					tc.unusable = err.Error()
				}
				tc.tls = conf
			}
			tcp[c] = tc
		}
	}
	lc := &listenerConfig{lrt: lrt, rs: t.rs, servers: byChain, tcp: tcp}
	ls.cfg = &listener.Config{Listener: l, Stats: t.lstats[l.Name], Serve: lc.serve}
	t.pending = append(t.pending, ls)
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
func (p *Proxy) buildState(s *table.Snapshot, ups map[string]*cluster.Upstream) *runtimeState {
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
		views:     make(map[*table.Cluster]*cluster.View, len(s.Clusters)),
		byName:    make(map[string]*cluster.View, len(s.Clusters)),
	}
	for name, c := range s.Clusters {
		u := ups[name]
		v := cluster.NewView(c, u, overrides[name])
		rs.views[c] = v
		rs.byName[name] = v
		u.Provision(v)
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
	add := func(service, route string, c *table.Cluster) {
		v := rs.byName[c.Name]
		if v == nil {
			return
		}
		if v.Edges == nil {
			v.Edges = map[meshmetrics.EdgeKey]*meshmetrics.Edge{}
		}
		k := meshmetrics.EdgeKey{Service: service, Route: route}
		if v.Edges[k] == nil {
			v.Edges[k] = p.mesh.Outbound(service, route, c.Meta.Mesh, c.Meta.VirtualNode)
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
						add(c.Meta.VirtualService, "", wc.Cluster)
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
							add(r.Meta.VirtualService, r.Name, wc.Cluster)
						}
					}
				}
			}
		}
	}
}

// poolOptions are the proxy-wide settings of the upstream pools.
func (p *Proxy) poolOptions() cluster.PoolOptions {
	return cluster.PoolOptions{
		MaxConnsPerHost:     p.cfg.MaxConnsPerHost,
		MaxIdleConnsPerHost: p.cfg.MaxIdleConnsPerHost,
		IdleTimeout:         p.cfg.UpstreamIdleTimeout,
		StdlibHTTP1Client:   p.cfg.StdlibHTTP1Client,
		Secrets:             p.secrets,
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

// runtimeState is a snapshot with its per-cluster views: what one
// request or connection reads through a single atomic load.
type runtimeState struct {
	snap      *table.Snapshot
	appliedAt time.Time
	views     map[*table.Cluster]*cluster.View
	byName    map[string]*cluster.View

	// certs are the SDS certificates the listeners and clusters use,
	// whose expiry /stats shows (see recordCertExpiry).
	certs []certExpiry

	// scopes and logWriters are what the snapshot acquired for its
	// listeners and chains; released when it is replaced.
	scopes     scopes
	logWriters []*accesslog.Writer
	released   atomic.Bool
}

// release gives back the snapshot's stats scopes and access-log writers
// (once). Requests still running on it may keep using them: released
// handles and closed writers drop updates.
func (rs *runtimeState) release() {
	if !rs.released.CompareAndSwap(false, true) {
		return
	}
	rs.scopes.release()
	for _, w := range rs.logWriters {
		_ = w.Close()
	}
}

// View returns the runtime view of a cluster a route or TCP proxy named;
// nil for a cluster CDS did not deliver.
func (rs *runtimeState) View(c *table.Cluster) *cluster.View {
	if c == nil {
		return nil
	}
	if v := rs.views[c]; v != nil {
		return v
	}
	return rs.byName[c.Name]
}

// tunnelLogs are a TCP chain's access logs as the TCP proxy writes them.
func tunnelLogs(logs []hcm.ChainLog) []tunnel.Log {
	out := make([]tunnel.Log, len(logs))
	for i, l := range logs {
		out[i] = tunnel.Log{Format: l.Format, Writer: l.Writer}
	}
	return out
}

// certExpiry is one SDS secret a listener's or cluster's TLS uses: its
// ssl.certificate.<secret>.expiration_unix_time_seconds gauge lives under
// scope.
type certExpiry struct {
	scope  *stats.Scope
	secret string
}

// provisionCertExpiry lists, per listener and cluster, the SDS secrets
// (certificates and trusted CAs) its TLS contexts name, under the
// listener.<addr>. or cluster.<name>. scope, acquired for the snapshot.
func (t *applyTxn) provisionCertExpiry() {
	p := t.p
	add := func(prefix string, names map[string]bool) {
		if len(names) == 0 || p.dataStats == nil {
			return
		}
		sc := t.res.acquire(p.dataStats, prefix)
		for _, n := range slices.Sorted(maps.Keys(names)) {
			t.rs.certs = append(t.rs.certs, certExpiry{scope: sc, secret: n})
		}
	}
	for _, l := range t.s.Listeners {
		names := map[string]bool{}
		for _, c := range allChains(l) {
			if c.TLS == nil {
				continue
			}
			for _, n := range []string{c.TLS.SDSCertName, c.TLS.SDSCAName} {
				if n != "" {
					names[n] = true
				}
			}
		}
		add("listener."+listener.StatName(l)+".", names)
	}
	for _, c := range t.s.Clusters {
		if c.TLS == nil {
			continue
		}
		names := map[string]bool{}
		for _, n := range []string{c.TLS.SDSCertName, c.TLS.SDSCAName} {
			if n != "" {
				names[n] = true
			}
		}
		add("cluster."+c.Name+".", names)
	}
}
