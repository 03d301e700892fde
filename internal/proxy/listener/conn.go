package listener

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/idlewait"
	"github.com/meshlens/meshlens/internal/stats"
)

// Info is what the listener learnt about a downstream connection before
// choosing its filter chain: Envoy's filter chain match inputs, and the
// connection's identity for access logs.
type Info struct {
	Local  netip.AddrPort
	Remote netip.AddrPort
	// Dst is the original destination: where the client was going before
	// iptables redirected it, else the local address, else (on a Listen
	// socket) the local address with the mapped listener port.
	Dst        netip.AddrPort
	Redirected bool
	// Transport is "tls" or "raw_buffer" when the TLS inspector ran, else "".
	Transport  string
	ServerName string   // TLS SNI, lower case
	AppProtos  []string // TLS ALPN offers, or the HTTP inspector's finding
	// ID numbers the connection (%CONNECTION_ID%).
	ID uint64
}

// Conn is a downstream connection: it replays the bytes the inspectors
// peeked at, carries what they found, and keeps the listener's
// connection stats and the matched chain's byte counters.
type Conn struct {
	net.Conn
	peeked []byte
	Info   Info

	// Stats: the chain's byte counters (set once a chain is matched) and
	// the listener's connection stats, closed out once in Close.
	opened time.Time
	rx, tx *stats.Counter
	stats  *Stats
	env    *Env
	closed atomic.Bool
	// idle parks the connection while its server waits for its next
	// request (WaitReadable).
	idle idlewait.Slot
}

// WaitReadable parks the connection until it has bytes to read, then
// runs fn on a goroutine of its own (idlewait.Slot.Park): an idle
// keep-alive connection holds no goroutine. It reports false when the
// connection cannot be parked: bytes the inspectors peeked at wait to be
// read, or the connection is not a socket.
func (c *Conn) WaitReadable(deadline time.Time, fn func()) bool {
	if len(c.peeked) > 0 {
		return false
	}
	return c.idle.Park(c.Conn, deadline, fn)
}

// SetReadDeadline sets the read deadline; a parked connection wakes and
// reads under it.
func (c *Conn) SetReadDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	c.idle.SetReadDeadline(t)
	return err
}

// SetDeadline sets both deadlines; a parked connection wakes.
func (c *Conn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	c.idle.SetReadDeadline(t)
	return err
}

// SetCounters makes rx and tx count the bytes read and written from now
// on: the matched chain's downstream_cx_{rx,tx}_bytes_total.
func (c *Conn) SetCounters(rx, tx *stats.Counter) { c.rx, c.tx = rx, tx }

// Opened is when the listener accepted the connection.
func (c *Conn) Opened() time.Time { return c.opened }

// Write sends p and counts the bytes.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.tx.Add(uint64(n))
	return n, err
}

// Hold keeps the proxy's shutdown waiting for the connection after the
// goroutine the listener handed it over on has returned, for a server
// that serves it on goroutines of its own (h1server's
// ServeConnDetached); the server calls the function returned, once,
// when it is done with the connection.
func (c *Conn) Hold() (release func()) {
	c.env.Conns.Add(1)
	return c.env.Conns.Done
}

// Close closes the connection and, the first time, counts it closed.
func (c *Conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.stats.cxActive.Dec()
		c.stats.cxDestroy.Inc()
		c.stats.cxLength.RecordDuration(time.Since(c.opened))
		c.env.OpenConns.Add(-1)
	}
	err := c.Conn.Close()
	// A parked connection wakes and finds itself closed, so its server
	// ends it as it ends one whose blocked read failed.
	c.idle.Wake()
	return err
}

// Read returns the peeked bytes first.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.peeked) > 0 {
		n := copy(p, c.peeked)
		c.peeked = c.peeked[n:]
		if len(c.peeked) == 0 {
			c.peeked = nil
		}
		c.rx.Add(uint64(n))
		return n, nil
	}
	n, err := c.Conn.Read(p)
	c.rx.Add(uint64(n))
	return n, err
}

// NetConn returns the connection under the counters and the replay, for
// looks at the socket (internal/proxy/sockpeek); I/O goes through c.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes the underlying TCP connection (for tcp_proxy).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
