package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// ConnectError marks a failed upstream dial, so that the handler answers
// Envoy's "connection failure" rather than a reset.
type ConnectError struct{ err error }

func (e *ConnectError) Error() string { return "upstream connect: " + e.err.Error() }
func (e *ConnectError) Unwrap() error { return e.err }

// Dial opens an upstream connection and keeps the connection counters.
func (u *Upstream) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	st := u.Endpoint(addr)
	start := time.Now()
	c, err := u.dialer.DialContext(ctx, network, addr)
	if err != nil {
		st.CxConnectFail.Add(1)
		u.Stats.cxConnectFail.Inc()
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			u.Stats.cxConnectTimeout.Inc()
		}
		return nil, &ConnectError{err}
	}
	now := time.Now()
	u.Stats.cxConnectMs.RecordDuration(now.Sub(start))
	st.CxTotal.Add(1)
	st.CxActive.Add(1)
	u.Stats.cxTotal.Inc()
	u.Stats.CxActive.Inc()
	u.Stats.noteConnections(u.Stats.CxActive.Value())
	return &countedConn{Conn: c, ep: st, cl: u.Stats, opened: now}, nil
}

// countedConn keeps a pooled upstream connection's stats: bytes both
// ways, and the active gauges and lifetime once when it closes.
type countedConn struct {
	net.Conn
	ep     *EndpointStats
	cl     *Stats
	opened time.Time
	closed atomic.Bool
}

// NetConn returns the connection under the counters, for looks at the
// socket (internal/proxy/sockpeek); I/O goes through c.
func (c *countedConn) NetConn() net.Conn { return c.Conn }

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.cl.CxRxBytes.Add(uint64(n))
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.cl.cxTxBytes.Add(uint64(n))
	return n, err
}

// ReadFrom sends a request body, counting it, through the connection's
// own ReadFrom (splice, or a pooled buffer) rather than the 32 KiB buffer
// io.Copy would allocate for a connection that hides it.
func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.Conn}, r)
	}
	c.cl.cxTxBytes.Add(uint64(n))
	return n, err
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.ep.CxActive.Add(-1)
		c.cl.CxActive.Dec()
		c.cl.noteConnections(c.cl.CxActive.Value())
		c.cl.cxDestroy.Inc()
		c.cl.cxLength.RecordDuration(time.Since(c.opened))
	}
	return c.Conn.Close()
}

// CloseWrite lets tcp_proxy half-close upstream connections.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("upstream connection cannot half-close")
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
