package proxy

import (
	"context"
	"crypto/tls"
	"slices"
	"sync"

	"github.com/meshlens/meshlens/internal/proxy/hcm"
	"github.com/meshlens/meshlens/internal/proxy/listener"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tunnel"
)

// listenerRT is the runtime of one xDS listener (by name): its accept
// path (package listener), its HTTP chain servers and its TCP sessions.
// Its sockets are owned by the Proxy (they are keyed by address and may
// move between listeners).
type listenerRT struct {
	p    *Proxy
	name string
	rt   *listener.Runtime

	// servers by hcm.ServerKey; only Apply and drains touch it (under p.mu).
	servers map[string]*hcm.Server

	sessions tunnel.Set // TCP sessions
}

// listenerConfig is where one snapshot's listener hands the connections
// it matched to a chain (serve, the listener.Config's Serve).
type listenerConfig struct {
	lrt *listenerRT
	rs  *runtimeState
	// servers maps each HTTP chain of the listener to its server.
	servers map[*table.FilterChain]*hcm.Server
	// tcp holds the stats and access logs of each TCP chain.
	tcp map[*table.FilterChain]*tcpChain
}

// serve hands a connection matched to chain to the chain's HTTP
// connection manager or TCP proxy.
func (cfg *listenerConfig) serve(chain *table.FilterChain, sc *listener.Conn) {
	switch {
	case chain.HTTP != nil:
		hs := cfg.servers[chain]
		if hs == nil {
			_ = sc.Close()
			return
		}
		if cc := hs.Config.Load(); cc != nil {
			sc.SetCounters(cc.Stats.CxRxBytes, cc.Stats.CxTxBytes)
		}
		hs.Serve(&hcm.Conn{Conn: sc})
	case chain.TCP != nil:
		tc := cfg.tcp[chain]
		if tc == nil {
			tc = &tcpChain{stats: &tunnel.Stats{}}
		}
		sc.SetCounters(tc.stats.RxBytes, tc.stats.TxBytes)
		cfg.lrt.proxyTCP(cfg.rs, chain, tc, sc)
	default:
		_ = sc.Close()
	}
}

// tcpChain is what a TCP proxy chain's sessions count and log into.
type tcpChain struct {
	stats *tunnel.Stats
	logs  []tunnel.Log
	dir   table.Direction
	// tls terminates the chain's TLS; unusable says why the chain cannot
	// serve (its TLS names SDS secrets or its files do not load), and
	// its connections are closed.
	tls      *tls.Config
	unusable string
}

// drain stops a listener that left the snapshot (or the whole proxy):
// its HTTP servers finish in-flight requests, its TCP sessions may run
// until ctx ends, then everything left is closed. Its sockets must
// already be closed.
func (lrt *listenerRT) drain(ctx context.Context, servers []*hcm.Server) {
	var wg sync.WaitGroup
	for _, hs := range servers {
		wg.Go(func() { hs.Drain(ctx) })
	}
	lrt.sessions.Drain(ctx)
	wg.Wait()
}

// bindSpecs lists where a listener binds (docs/proxy.md, "Listener
// binding").
func (p *Proxy) bindSpecs(l *table.Listener) []listener.BindSpec {
	if !l.BindToPort {
		return nil
	}
	xdsAddr := l.Address.String()
	switch l.Direction {
	case table.Inbound:
		var out []listener.BindSpec
		switch p.cfg.IngressAddr {
		case Disabled:
		case "":
			out = append(out, listener.BindSpec{Addr: xdsAddr, Listener: l.Name})
		default:
			out = append(out, listener.BindSpec{Addr: p.cfg.IngressAddr, Listener: l.Name})
		}
		seen := map[uint32]bool{}
		for _, c := range l.Chains {
			port := c.DestinationPort
			if a, ok := p.cfg.Listen[port]; ok && port != 0 && !seen[port] {
				seen[port] = true
				out = append(out, listener.BindSpec{Addr: a, Listener: l.Name, ForcedPort: port})
			}
		}
		return out
	case table.Outbound:
		var out []listener.BindSpec
		if p.cfg.EgressAddr != Disabled {
			out = append(out, listener.BindSpec{Addr: p.cfg.EgressAddr, Listener: l.Name})
		}
		ports := make([]uint32, 0, len(p.cfg.EgressPorts))
		for port := range p.cfg.EgressPorts {
			ports = append(ports, port)
		}
		slices.Sort(ports)
		for _, port := range ports {
			out = append(out, listener.BindSpec{Addr: p.cfg.EgressPorts[port], Listener: l.Name, ForcedPort: port})
		}
		return out
	default:
		if a, ok := p.cfg.Listen[uint32(l.Address.Port())]; ok {
			return []listener.BindSpec{{Addr: a, Listener: l.Name}}
		}
		return []listener.BindSpec{{Addr: xdsAddr, Listener: l.Name}}
	}
}
