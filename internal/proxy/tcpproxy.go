package proxy

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// tcpSession is one proxied TCP connection pair.
type tcpSession struct {
	down, up  net.Conn
	closeOnce sync.Once
}

// close tears both sides down (idempotent).
func (s *tcpSession) close() {
	s.closeOnce.Do(func() {
		_ = s.down.Close()
		if s.up != nil {
			_ = s.up.Close()
		}
	})
}

// sessionSet is the open sessions of a listener (TCP proxy) or an HTTP
// server (upgraded connections), which a drain waits for and then closes.
type sessionSet struct {
	mu       sync.Mutex
	set      map[*tcpSession]struct{}
	wg       sync.WaitGroup
	draining bool
}

// add registers s, unless the drain has begun.
func (t *sessionSet) add(s *tcpSession) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return false
	}
	if t.set == nil {
		t.set = map[*tcpSession]struct{}{}
	}
	t.set[s] = struct{}{}
	t.wg.Add(1)
	return true
}

// setUp records s's upstream connection, which a drain closes too.
func (t *sessionSet) setUp(s *tcpSession, up net.Conn) {
	t.mu.Lock()
	s.up = up
	t.mu.Unlock()
}

// remove unregisters s, which has ended.
func (t *sessionSet) remove(s *tcpSession) {
	t.mu.Lock()
	delete(t.set, s)
	t.mu.Unlock()
	t.wg.Done()
}

// drain refuses new sessions, lets the open ones run until ctx ends, then
// closes what is left and waits for it.
func (t *sessionSet) drain(ctx context.Context) {
	t.mu.Lock()
	t.draining = true
	t.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		return
	case <-ctx.Done():
	}
	t.mu.Lock()
	for s := range t.set {
		s.close()
	}
	t.mu.Unlock()
	<-idle
}

// proxyTCP runs a tcp_proxy filter chain on c until both directions end,
// either side fails, or the session is idle for the idle timeout.
func (lrt *listenerRT) proxyTCP(rs *runtimeState, chain *table.FilterChain, tc *tcpChain, c *srvConn) {
	tp := chain.TCP
	start := time.Now()
	tc.stats.cxTotal.Inc()
	var down net.Conn = c
	switch {
	case tc.unusable != "":
		_ = c.Close()
		return
	case tc.tls != nil:
		// The chain terminates TLS (App Mesh's listener tls on a tcp
		// port): the application gets the plaintext.
		tlsc := terminateTLS(c, tc.tls, lrt.p.cfg.HeaderReadTimeout)
		if tlsc == nil {
			return
		}
		down = tlsc
	}
	s := &tcpSession{down: down}
	if !lrt.sessions.add(s) {
		_ = down.Close()
		return
	}
	defer func() {
		s.close()
		lrt.sessions.remove(s)
	}()

	// What the session did, for the access log and the mesh metrics.
	var (
		view    *cluster.View
		ep      *cluster.Endpoint
		flags   accesslog.ResponseFlags
		rx, tx  int64
		started bool
	)
	defer func() {
		d := time.Since(start)
		if started {
			var edge *meshmetrics.Edge
			if tc.dir == table.Inbound {
				edge = lrt.p.mesh.Unknown()
			} else if view != nil {
				edge = view.Edges[meshmetrics.EdgeKey{Service: chain.Meta.VirtualService}]
			}
			if lrt.p.dataStats != nil {
				edge.Record(meshmetrics.TCP, 0, d, uint64(rx), uint64(tx))
			}
		}
		if len(tc.logs) == 0 {
			return
		}
		e := &accesslog.Entry{
			Start: start, Duration: d, Flags: flags,
			BytesReceived: uint64(rx), BytesSent: uint64(tx),
			DownstreamRemote: c.info.remote, DownstreamLocal: c.info.dst,
			ConnectionID: c.info.id, RequestedServerName: c.info.serverName,
		}
		if view != nil {
			e.UpstreamCluster = view.Cluster.Name
		}
		if ep != nil {
			e.UpstreamHost = ep.Addr
		}
		for _, l := range tc.logs {
			l.w.LogEntry(l.f, e)
		}
	}()

	view = rs.view(tp.PickCluster(rand.Uint32()))
	if view == nil {
		tc.stats.cxNoRoute.Inc()
		flags |= accesslog.NoClusterFound
		return
	}
	if view.OrigDst {
		var ok bool
		if ep, ok = origDstEndpoint(view, &c.info, ""); !ok {
			flags |= accesslog.NoHealthyUpstream
			return
		}
	} else if ep = view.Pick(); ep == nil {
		flags |= accesslog.NoHealthyUpstream
		return
	}
	view.Up.MarkUsed()
	if !view.AdmitSession() {
		flags |= accesslog.UpstreamOverflow
		ep = nil
		return
	}
	defer view.Up.Breakers.Sessions.Add(-1)
	ctx, cancel := context.WithTimeout(context.Background(), view.Up.Key.ConnectTimeout)
	up, err := view.Up.Dial(ctx, "tcp", ep.Addr)
	cancel()
	if err != nil {
		lrt.p.log.Debug("tcp proxy: upstream connect failed", "listener", lrt.name, "cluster", view.Cluster.Name, "endpoint", ep.Addr, "err", err)
		flags |= accesslog.UpstreamConnectionFailure
		view.Outcome(ep, true)
		return
	}
	if view.Up.TLSConf != nil {
		tlsc, err := view.Up.Handshake(context.Background(), up, view.Up.TLSConf)
		if err != nil {
			flags |= accesslog.UpstreamConnectionFailure
			view.Outcome(ep, true)
			return
		}
		up = tlsc
	}
	// A TCP session is judged by its connect, as Envoy's tcp_proxy
	// reports to outlier detection.
	view.Outcome(ep, false)
	started = true
	lrt.sessions.setUp(s, up)

	idle := tp.IdleTimeout
	if idle <= 0 {
		idle = lrt.p.cfg.TCPIdleTimeout
	}
	var idled bool
	tx, rx, idled = pipeBoth(down, up, idle)
	if idled {
		tc.stats.idleTimeout.Inc()
	}
}

// pipeBoth copies both ways until each direction has ended. A FIN from
// one side is passed on as a half-close and the other direction keeps
// flowing; an error or the idle timeout (no bytes either way for idle)
// ends both. It returns the bytes sent downstream and upstream, and
// whether the idle timeout ended the session.
func pipeBoth(down, up net.Conn, idle time.Duration) (toDown, toUp int64, idled bool) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	type result struct {
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := pipe(up, down, idle, &last)
		res <- result{n, err}
	}()
	toDown, err := pipe(down, up, idle, &last)
	if err != nil {
		// Unblock the other direction.
		_ = down.Close()
		_ = up.Close()
	}
	r := <-res
	if r.err != nil && err == nil {
		_ = down.Close()
		_ = up.Close()
	}
	return toDown, r.n, errors.Is(err, errIdle) || errors.Is(r.err, errIdle)
}

// errIdle ends a TCP session idle for too long.
var errIdle = errors.New("tcp session idle")

// pipe copies src to dst through a pooled buffer; at src's EOF it
// half-closes dst. It returns the bytes written to dst.
func pipe(dst, src net.Conn, idle time.Duration, last *atomic.Int64) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		_ = src.SetReadDeadline(time.Now().Add(idle))
		n, rerr := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			_ = dst.SetWriteDeadline(time.Now().Add(idle))
			wn, werr := dst.Write(buf[:n])
			total += int64(wn)
			if werr != nil {
				return total, werr
			}
		}
		switch {
		case rerr == nil:
		case rerr == io.EOF:
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			} else {
				_ = dst.Close()
			}
			return total, nil
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			if time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other direction is busy
			}
			return total, errIdle
		default:
			return total, rerr
		}
	}
}
