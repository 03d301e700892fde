package proxy

import (
	"math/rand/v2"
	"net"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/filters/ratelimit"
	"github.com/meshlens/meshlens/internal/proxy/hcm"
	"github.com/meshlens/meshlens/internal/proxy/listener"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tunnel"
)

// proxyTCP hands a connection matched to a tcp_proxy filter chain to the
// TCP proxy (package tunnel), after terminating the chain's TLS.
func (lrt *listenerRT) proxyTCP(rs *runtimeState, chain *table.FilterChain, tc *tcpChain, c *listener.Conn) {
	tp := chain.TCP
	start := time.Now()
	tc.stats.CxTotal.Inc()
	var down net.Conn = c
	switch {
	case !chain.NetRateLimit.AllowConnection(ratelimit.Now()):
		// The network local_ratelimit filter before tcp_proxy found
		// its bucket empty: closed at once, counted by the filter.
		_ = c.Close()
		return
	case tc.unusable != "":
		_ = c.Close()
		return
	case tc.tls != nil:
		// The chain terminates TLS (App Mesh's listener tls on a tcp
		// port): the application gets the plaintext.
		tlsc := listener.TerminateTLS(c, c, tc.tls, lrt.p.cfg.HeaderReadTimeout)
		if tlsc == nil {
			return
		}
		down = tlsc
	}
	t := &tunnel.TCP{
		Down: down, Start: start,
		Remote: c.Info.Remote, Dst: c.Info.Dst, ID: c.Info.ID, ServerName: c.Info.ServerName,
		View:        rs.View(tp.PickCluster(rand.Uint32())),
		IdleTimeout: tp.IdleTimeout,
		Stats:       tc.stats,
		Logs:        tc.logs,
		Listener:    lrt.name,
		Log:         lrt.p.log,
	}
	if t.IdleTimeout <= 0 {
		t.IdleTimeout = lrt.p.cfg.TCPIdleTimeout
	}
	if v := t.View; v != nil && v.OrigDst {
		t.OrigDst, _ = hcm.OrigDstEndpoint(v, &c.Info, "")
	}
	if lrt.p.dataStats != nil {
		if tc.dir == table.Inbound {
			t.Edge = lrt.p.mesh.Unknown()
		} else if t.View != nil {
			t.Edge = t.View.Edges[meshmetrics.EdgeKey{Service: chain.Meta.VirtualService}]
		}
	}
	t.Run(&lrt.sessions)
}
