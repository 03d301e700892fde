package listener

import (
	"crypto/tls"
	"net"
	"time"
)

// TerminateTLS runs the server side of the TLS handshake on a matched
// downstream connection c, within timeout, and counts it in the
// listener's ssl.* stats. over is what TLS reads and writes: c itself, or
// the connection manager's wrapper of it. It is the one place both HTTP
// and TCP chains terminate TLS. On failure it closes c and returns nil.
func TerminateTLS(c *Conn, over net.Conn, conf *tls.Config, timeout time.Duration) *tls.Conn {
	tc := tls.Server(over, conf)
	_ = c.SetDeadline(time.Now().Add(timeout))
	err := tc.Handshake()
	if ls := c.stats; ls != nil {
		ls.ssl.Get(ls.scope).Record(err, tc.ConnectionState(), true)
	}
	if err != nil {
		_ = c.Close()
		return nil
	}
	_ = c.SetDeadline(time.Time{})
	return tc
}
