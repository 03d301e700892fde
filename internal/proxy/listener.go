package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tunnel"
)

// listenerRT is the runtime of one xDS listener (by name): its HTTP chain
// servers and its TCP sessions. Its sockets are owned by the Proxy (they
// are keyed by address and may move between listeners).
type listenerRT struct {
	p    *Proxy
	name string
	cfg  atomic.Pointer[listenerConfig]

	// servers by serverKey; only Apply and drains touch it (under p.mu).
	servers map[string]*httpServer

	sessions tunnel.Set // TCP sessions
}

// listenerConfig is what the accept path reads, once per connection.
type listenerConfig struct {
	l  *table.Listener
	rs *runtimeState
	// servers maps each HTTP chain of l to its server.
	servers map[*table.FilterChain]*httpServer
	// tcp holds the stats and access logs of each TCP chain of l.
	tcp   map[*table.FilterChain]*tcpChain
	stats *listenerStats
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

// socket is one bound listening socket.
type socket struct {
	p       *Proxy
	key     string // bindSpec.key: what it is kept under across snapshots
	addr    string // as configured
	ln      net.Listener
	binding atomic.Pointer[socketBinding]
	closed  atomic.Bool
	done    chan struct{} // closed when the accept loop returns
}

// socketBinding says which listener a socket serves and, for a Listen
// mapping, the listener port its connections stand for.
type socketBinding struct {
	lrt        *listenerRT
	forcedPort uint32
}

// bindSpec is a socket a snapshot wants.
type bindSpec struct {
	addr       string
	listener   string
	forcedPort uint32
}

// key identifies a socket across snapshots: its address, so that a
// listener whose address is unchanged keeps its socket. A port-0 address
// (tests, ephemeral binds) is a different socket per listener and port.
func (b bindSpec) key() string {
	if _, port, err := net.SplitHostPort(b.addr); err == nil && port == "0" {
		return b.addr + "#" + b.listener + "#" + strconv.FormatUint(uint64(b.forcedPort), 10)
	}
	return b.addr
}

// bindSpecs lists where a listener binds (docs/proxy.md, "Listener
// binding").
func (p *Proxy) bindSpecs(l *table.Listener) []bindSpec {
	if !l.BindToPort {
		return nil
	}
	xdsAddr := l.Address.String()
	switch l.Direction {
	case table.Inbound:
		var out []bindSpec
		switch p.cfg.IngressAddr {
		case Disabled:
		case "":
			out = append(out, bindSpec{addr: xdsAddr, listener: l.Name})
		default:
			out = append(out, bindSpec{addr: p.cfg.IngressAddr, listener: l.Name})
		}
		seen := map[uint32]bool{}
		for _, c := range l.Chains {
			port := c.DestinationPort
			if a, ok := p.cfg.Listen[port]; ok && port != 0 && !seen[port] {
				seen[port] = true
				out = append(out, bindSpec{addr: a, listener: l.Name, forcedPort: port})
			}
		}
		return out
	case table.Outbound:
		var out []bindSpec
		if p.cfg.EgressAddr != Disabled {
			out = append(out, bindSpec{addr: p.cfg.EgressAddr, listener: l.Name})
		}
		ports := make([]uint32, 0, len(p.cfg.EgressPorts))
		for port := range p.cfg.EgressPorts {
			ports = append(ports, port)
		}
		slices.Sort(ports)
		for _, port := range ports {
			out = append(out, bindSpec{addr: p.cfg.EgressPorts[port], listener: l.Name, forcedPort: port})
		}
		return out
	default:
		if a, ok := p.cfg.Listen[uint32(l.Address.Port())]; ok {
			return []bindSpec{{addr: a, listener: l.Name}}
		}
		return []bindSpec{{addr: xdsAddr, listener: l.Name}}
	}
}

// listen binds a socket; it does not accept yet.
func (p *Proxy) listen(key, addr string) (*socket, error) {
	ln, err := p.listenConfig.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &socket{p: p, key: key, addr: addr, ln: ln, done: make(chan struct{})}, nil
}

// acceptLoop accepts until the socket is closed.
func (s *socket) acceptLoop() {
	defer close(s.done)
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as
			// net/http does rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.p.log.Warn("accept failed", "addr", s.addr, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		b := s.binding.Load()
		s.p.conns.Add(1)
		go func() {
			defer s.p.conns.Done()
			b.lrt.handleConn(c, b.forcedPort)
		}()
	}
}

// close stops accepting; connections already accepted are unaffected.
func (s *socket) close() {
	if s.closed.CompareAndSwap(false, true) {
		_ = s.ln.Close()
	}
}

// handleConn classifies a new connection, selects its filter chain and
// hands it over to the chain's HTTP server or TCP proxy.
func (lrt *listenerRT) handleConn(c net.Conn, forcedPort uint32) {
	cfg := lrt.cfg.Load()
	l := cfg.l
	sc := &srvConn{Conn: c, opened: time.Now(), listener: cfg.stats, p: lrt.p}
	sc.info.id = lrt.p.connIDs.Add(1)
	lrt.p.openConns.Add(1)
	cfg.stats.cxTotal.Inc()
	cfg.stats.cxActive.Inc()
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		sc.info.local = a.AddrPort()
	}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		sc.info.remote = a.AddrPort()
	}
	sc.info.dst = sc.info.local
	switch {
	case forcedPort != 0:
		sc.info.dst = netip.AddrPortFrom(sc.info.local.Addr(), uint16(forcedPort))
	case l.OriginalDst:
		if tc, ok := c.(*net.TCPConn); ok {
			if dst, err := originalDst(tc); err == nil && dst != sc.info.local {
				sc.info.dst, sc.info.redirected = dst, true
			}
		}
	}
	sc.inspect(l.TLSInspector, l.HTTPInspector, time.Now().Add(lrt.p.cfg.HeaderReadTimeout))

	tp := sc.info.transport
	if tp == "" {
		tp = "raw_buffer"
	}
	chain := l.MatchChain(table.ConnInfo{
		Dest:                 sc.info.dst,
		ServerName:           sc.info.serverName,
		TransportProtocol:    tp,
		ApplicationProtocols: sc.info.appProtos,
	})
	if chain == nil && !sc.info.redirected && forcedPort == 0 && len(l.Chains) == 1 && l.Default == nil {
		// Not intercepted, so the destination port says nothing: a
		// listener with a single chain serves it.
		chain = l.Chains[0]
	}
	switch {
	case chain == nil:
		cfg.stats.noChain.Inc()
		_ = sc.Close()
	case chain.HTTP != nil:
		hs := cfg.servers[chain]
		if hs == nil {
			_ = sc.Close()
			return
		}
		if cc := hs.cfg.Load(); cc != nil {
			sc.rx, sc.tx = cc.stats.cxRxBytes, cc.stats.cxTxBytes
		}
		hs.serve(sc)
	case chain.TCP != nil:
		tc := cfg.tcp[chain]
		if tc == nil {
			tc = &tcpChain{stats: &tunnel.Stats{}}
		}
		sc.rx, sc.tx = tc.stats.RxBytes, tc.stats.TxBytes
		lrt.proxyTCP(cfg.rs, chain, tc, sc)
	default:
		_ = sc.Close()
	}
}

// drain stops a listener that left the snapshot (or the whole proxy):
// its HTTP servers finish in-flight requests, its TCP sessions may run
// until ctx ends, then everything left is closed. Its sockets must
// already be closed.
func (lrt *listenerRT) drain(ctx context.Context, servers []*httpServer) {
	var wg sync.WaitGroup
	for _, hs := range servers {
		wg.Go(func() { hs.drain(ctx) })
	}
	lrt.sessions.Drain(ctx)
	wg.Wait()
}

// terminateTLS runs the server side of the TLS handshake on a matched
// downstream connection, within timeout, and counts it in the listener's
// ssl.* stats. It is the one place both HTTP and TCP chains terminate
// TLS. On failure it closes c and returns nil.
func terminateTLS(c *srvConn, conf *tls.Config, timeout time.Duration) *tls.Conn {
	tc := tls.Server(c, conf)
	_ = c.SetDeadline(time.Now().Add(timeout))
	err := tc.Handshake()
	if ls := c.listener; ls != nil {
		ls.ssl.Get(ls.scope).Record(err, tc.ConnectionState(), true)
	}
	if err != nil {
		_ = c.Close()
		return nil
	}
	_ = c.SetDeadline(time.Time{})
	return tc
}
