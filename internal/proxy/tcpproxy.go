package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

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

// proxyTCP runs a tcp_proxy filter chain on c until both directions end,
// either side fails, or the session is idle for the idle timeout.
func (lrt *listenerRT) proxyTCP(rs *runtimeState, tp *table.TCPProxy, c *srvConn) {
	s := &tcpSession{down: c}
	lrt.mu.Lock()
	if lrt.draining {
		lrt.mu.Unlock()
		_ = c.Close()
		return
	}
	if lrt.sessions == nil {
		lrt.sessions = map[*tcpSession]struct{}{}
	}
	lrt.sessions[s] = struct{}{}
	lrt.wg.Add(1)
	lrt.mu.Unlock()
	defer func() {
		s.close()
		lrt.mu.Lock()
		delete(lrt.sessions, s)
		lrt.mu.Unlock()
		lrt.wg.Done()
	}()

	view := rs.view(tp.PickCluster(rand.Uint32()))
	if view == nil {
		return
	}
	var ep *endpointRT
	if view.origDst {
		var ok bool
		if ep, ok = view.origDstEndpoint(&c.info, ""); !ok {
			return
		}
	} else if ep = view.pick(); ep == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), view.up.key.connectTimeout)
	up, err := view.up.dial(ctx, "tcp", ep.addr)
	cancel()
	if err != nil {
		lrt.p.log.Debug("tcp proxy: upstream connect failed", "listener", lrt.name, "cluster", view.c.Name, "endpoint", ep.addr, "err", err)
		return
	}
	if view.up.tlsConf != nil {
		tc := tls.Client(up, view.up.tlsConf)
		_ = tc.SetDeadline(time.Now().Add(view.up.key.connectTimeout))
		if err := tc.Handshake(); err != nil {
			_ = up.Close()
			return
		}
		_ = tc.SetDeadline(time.Time{})
		up = tc
	}
	lrt.mu.Lock()
	s.up = up
	lrt.mu.Unlock()

	idle := tp.IdleTimeout
	if idle <= 0 {
		idle = lrt.p.cfg.TCPIdleTimeout
	}
	pipeBoth(c, up, idle)
}

// pipeBoth copies both ways until each direction has ended. A FIN from
// one side is passed on as a half-close and the other direction keeps
// flowing; an error or the idle timeout (no bytes either way for idle)
// ends both.
func pipeBoth(down, up net.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	errc := make(chan error, 1)
	go func() { errc <- pipe(up, down, idle, &last) }()
	err := pipe(down, up, idle, &last)
	if err != nil {
		// Unblock the other direction.
		_ = down.Close()
		_ = up.Close()
	}
	if err2 := <-errc; err2 != nil && err == nil {
		_ = down.Close()
		_ = up.Close()
	}
}

// errIdle ends a TCP session idle for too long.
var errIdle = errors.New("tcp session idle")

// pipe copies src to dst through a pooled buffer; at src's EOF it
// half-closes dst.
func pipe(dst, src net.Conn, idle time.Duration, last *atomic.Int64) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		_ = src.SetReadDeadline(time.Now().Add(idle))
		n, rerr := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			_ = dst.SetWriteDeadline(time.Now().Add(idle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
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
			return nil
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			if time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other direction is busy
			}
			return errIdle
		default:
			return rerr
		}
	}
}
