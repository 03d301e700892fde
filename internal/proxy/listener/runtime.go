package listener

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

// Runtime is one xDS listener's accept path, by name: the configuration
// its connections read, swapped per snapshot.
type Runtime struct {
	Name string
	env  *Env
	cfg  atomic.Pointer[Config]
}

// NewRuntime returns the runtime of the listener name, with no
// configuration yet.
func NewRuntime(name string, env *Env) *Runtime { return &Runtime{Name: name, env: env} }

// Config is what a listener's accept path reads, once per connection.
type Config struct {
	Listener *table.Listener
	Stats    *Stats
	// Serve takes a connection matched to chain (an HTTP connection
	// manager or a tcp_proxy): the next stage of the pipeline. The
	// connection is Serve's to close.
	Serve func(chain *table.FilterChain, c *Conn)
}

// Store makes cfg the configuration of new connections.
func (r *Runtime) Store(cfg *Config) { r.cfg.Store(cfg) }

// Load is the current configuration.
func (r *Runtime) Load() *Config { return r.cfg.Load() }

// handleConn classifies a new connection, selects its filter chain and
// hands it over to the chain's HTTP connection manager or TCP proxy.
func (r *Runtime) handleConn(c net.Conn, forcedPort uint32) {
	cfg := r.cfg.Load()
	l := cfg.Listener
	sc := &Conn{Conn: c, opened: time.Now(), stats: cfg.Stats, env: r.env}
	sc.Info.ID = r.env.ConnIDs.Add(1)
	r.env.OpenConns.Add(1)
	cfg.Stats.cxTotal.Inc()
	cfg.Stats.cxActive.Inc()
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		sc.Info.Local = a.AddrPort()
	}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		sc.Info.Remote = a.AddrPort()
	}
	sc.Info.Dst = sc.Info.Local
	switch {
	case forcedPort != 0:
		sc.Info.Dst = netip.AddrPortFrom(sc.Info.Local.Addr(), uint16(forcedPort))
	case l.OriginalDst:
		if tc, ok := c.(*net.TCPConn); ok {
			if dst, err := originalDst(tc); err == nil && dst != sc.Info.Local {
				sc.Info.Dst, sc.Info.Redirected = dst, true
			}
		}
	}
	sc.inspect(l.TLSInspector, l.HTTPInspector, time.Now().Add(r.env.HeaderReadTimeout))

	tp := sc.Info.Transport
	if tp == "" {
		tp = "raw_buffer"
	}
	chain := l.MatchChain(table.ConnInfo{
		Dest:                 sc.Info.Dst,
		ServerName:           sc.Info.ServerName,
		TransportProtocol:    tp,
		ApplicationProtocols: sc.Info.AppProtos,
	})
	if chain == nil && !sc.Info.Redirected && forcedPort == 0 && len(l.Chains) == 1 && l.Default == nil {
		// Not intercepted, so the destination port says nothing: a
		// listener with a single chain serves it.
		chain = l.Chains[0]
	}
	if chain == nil {
		cfg.Stats.noChain.Inc()
		_ = sc.Close()
		return
	}
	cfg.Serve(chain, sc)
}
