package listener

import (
	"crypto/tls"
	"errors"
	"io"
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
		logRefusal(c, err)
		_ = c.Close()
		return nil
	}
	_ = c.SetDeadline(time.Time{})
	return tc
}

// logRefusal says why a TLS handshake was refused (a missing, expired,
// untrusted or wrong-identity client certificate), at most once a second
// per listener so that a flood of bad clients cannot flood the log; the
// ssl.* stats count every one. A client that hangs up says nothing.
func logRefusal(c *Conn, err error) {
	if c.env == nil || c.env.Log == nil || errors.Is(err, io.EOF) {
		return
	}
	if ls := c.stats; ls != nil {
		now := time.Now().UnixNano()
		last := ls.lastRefusalLog.Load()
		if now-last < int64(time.Second) || !ls.lastRefusalLog.CompareAndSwap(last, now) {
			return
		}
	}
	c.env.Log.Warn("TLS handshake refused", "peer", c.RemoteAddr().String(), "local", c.LocalAddr().String(), "error", err.Error())
}
