package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
	"github.com/meshlens/meshlens/internal/proxy/hcm"
	"github.com/meshlens/meshlens/internal/proxy/listener"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tunnel"
	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

// A snapshot goes live in four steps, as Caddy's config lifecycle does:
//
//  1. plan: decide where each listener binds, refusing collisions;
//     nothing is touched yet.
//  2. provision: build upstreams, cluster views, stats scopes, access
//     logs, the sockets that are new and the listener runtimes; any
//     error undoes all of it (abort) and the previous snapshot keeps
//     serving.
//  3. swap: make the snapshot current: store the listener and chain
//     configs, swap the runtime state, point sockets at their
//     listeners and start the new ones. Nothing here can fail.
//  4. retire: close what no listener wants and drain, in the
//     background, the listeners, HTTP servers and upstreams that left.

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
	t := &applyTxn{p: p, s: s}
	if err := t.plan(); err != nil {
		return err
	}
	if err := t.provision(); err != nil {
		t.abort()
		return err
	}
	t.swap()
	t.retire()
	if !p.applied.Swap(true) {
		p.log.Info("first configuration applied; proxy is live", "listeners", len(s.Listeners), "clusters", len(s.Clusters))
	}
	return nil
}

// applyTxn is one Apply in progress: what each step hands the next. It
// lives under Proxy.mu.
type applyTxn struct {
	p *Proxy
	s *table.Snapshot

	// plan: the sockets the snapshot wants, by listener.BindSpec.key.
	specs map[string]listener.BindSpec

	// provision: the upstreams by cluster name (created lists the new
	// ones), the runtime state, the stats scopes and access-log writers
	// acquired, the sockets bound, and the listener runtimes with the
	// configs swap stores.
	ups      map[string]*cluster.Upstream
	created  []*cluster.Upstream
	rs       *runtimeState
	res      scopes
	logs     []*accesslog.Writer
	chainRTs map[*table.FilterChain]*chainRT
	lstats   map[string]*listener.Stats
	bound    []*listener.Socket
	lrts     map[string]*listenerRT
	pending  []listenerSwap
	// exps are the tracing exporters by provider key (createdExps the
	// new ones).
	exps        map[string]*exporterRT
	createdExps []*exporterRT

	// retired drains what the snapshot no longer has; filled by
	// provision (HTTP servers a listener dropped) and retire.
	retired []func(ctx context.Context)
}

// chainRT is what a filter chain acquired for the snapshot: its stats,
// access logs and, for an HTTP chain, its compiled HTTP filter chain.
type chainRT struct {
	stats   *hcm.Stats
	tcp     *tunnel.Stats
	logs    []hcm.ChainLog
	filters *chain.Chain
	tracer  *tracing.Tracer
	formats propagation.Formats
}

// listenerSwap is one listener's new configuration, stored by swap.
type listenerSwap struct {
	lrt     *listenerRT
	servers map[string]*hcm.Server
	chains  []serverSwap
	cfg     *listener.Config
}

// serverSwap is one HTTP chain's new configuration on its server.
type serverSwap struct {
	hs  *hcm.Server
	cfg *hcm.ChainConfig
}

// plan checks the listeners and decides where each binds; addresses must
// not collide.
func (t *applyTxn) plan() error {
	t.specs = map[string]listener.BindSpec{}
	names := map[string]*table.Listener{}
	for _, l := range t.s.Listeners {
		if _, dup := names[l.Name]; dup {
			return fmt.Errorf("apply: listener %s appears twice", l.Name)
		}
		names[l.Name] = l
		if t.p.stopped[l.Direction] {
			continue // /drain_listeners: no new sockets for these
		}
		for _, b := range t.p.bindSpecs(l) {
			k := b.Key()
			if prev, ok := t.specs[k]; ok {
				return fmt.Errorf("apply: listeners %s and %s both bind %s", prev.Listener, b.Listener, b.Addr)
			}
			t.specs[k] = b
		}
	}
	return nil
}

// swap makes the snapshot current: listener and chain configs, the
// runtime state, the sockets' listeners; then starts the new sockets.
func (t *applyTxn) swap() {
	p := t.p
	for _, ls := range t.pending {
		for _, sc := range ls.chains {
			sc.hs.Config.Store(sc.cfg)
		}
		ls.lrt.servers = ls.servers
		ls.lrt.rt.Store(ls.cfg)
	}
	if old := p.state.Swap(t.rs); old != nil {
		old.release()
	}
	for _, sock := range t.bound {
		p.sockets[sock.Key()] = sock
	}
	for k, sock := range p.sockets {
		spec, ok := t.specs[k]
		if !ok {
			sock.Close()
			delete(p.sockets, k)
			continue
		}
		sock.Bind(&listener.Binding{Runtime: t.lrts[spec.Listener].rt, ForcedPort: spec.ForcedPort})
	}
	for _, sock := range t.bound {
		p.bg.Go(sock.AcceptLoop)
	}
}

// retire drains, in the background for up to Config.DrainTimeout, the
// listeners and HTTP servers that left, then closes the upstreams no
// cluster kept.
func (t *applyTxn) retire() {
	p := t.p
	for name, lrt := range p.listeners {
		if t.lrts[name] != nil {
			continue
		}
		servers := make([]*hcm.Server, 0, len(lrt.servers))
		for _, hs := range lrt.servers {
			servers = append(servers, hs)
		}
		t.retired = append(t.retired, func(ctx context.Context) { lrt.drain(ctx, servers) })
	}
	var oldUps []*cluster.Upstream
	for name, u := range p.upstreams {
		if t.ups[name] != u {
			oldUps = append(oldUps, u)
			u.StopHealthChecks()
		}
	}
	t.retireExporters()
	p.listeners = t.lrts
	p.upstreams = t.ups
	retired := t.retired
	if len(retired) == 0 && len(oldUps) == 0 {
		return
	}
	p.bg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
		defer cancel()
		var wg sync.WaitGroup
		for _, f := range retired {
			wg.Go(func() { f(ctx) })
		}
		wg.Wait()
		for _, u := range oldUps {
			u.CloseIdle()
			u.RetireOutliers()
			u.Stats.Release()
		}
	})
}
