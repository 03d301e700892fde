package h1guard

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/idlewait"
)

// Reasons a request is rejected; the error given to Options.OnReject
// wraps one of them.
var (
	// ErrContentLengthAndTransferEncoding: the header block has both
	// fields, in any order or case.
	ErrContentLengthAndTransferEncoding = errors.New("request has both Content-Length and Transfer-Encoding")
	// ErrTransferEncodingHTTP10: HTTP/1.0 has no Transfer-Encoding;
	// net/http ignores the field and frames by Content-Length, which an
	// HTTP/1.1 intermediary may not.
	ErrTransferEncodingHTTP10 = errors.New("request has Transfer-Encoding on HTTP/1.0")
	// ErrFoldedFramingField: an obs-fold continuation line starts with
	// Content-Length or Transfer-Encoding; net/http reads it as part of the
	// previous field's value, an intermediary may read it as a field.
	ErrFoldedFramingField = errors.New("obs-fold continuation line starts with Content-Length or Transfer-Encoding")
)

// headSlop is what net/http may read of a request head beyond
// MaxHeaderBytes: its read limit adds 4096 bytes, and its 4 KiB bufio
// buffer may already hold the start of the head. The scanner inspects at
// least that much so that no head net/http accepts goes unread.
const headSlop = 4096 + 4096 + 1024

// Options configures the scanner.
type Options struct {
	// MaxHeaderBytes is the http.Server's MaxHeaderBytes (zero means
	// http.DefaultMaxHeaderBytes, as for the server). A request head or a
	// chunked trailer longer than what net/http would read with this limit
	// is passed through uninspected: net/http answers it with 431.
	MaxHeaderBytes int

	// OnReject, when set, is called on the reading goroutine once a
	// request on conn has been marked for rejection; err wraps one of
	// the Err* reasons. It runs on the request path: keep it short (a
	// counter, not a log line per request).
	OnReject func(conn net.Conn, err error)
}

func (o *Options) limit() int64 {
	n := o.MaxHeaderBytes
	if n <= 0 {
		n = http.DefaultMaxHeaderBytes
	}
	return int64(n) + headSlop
}

// Listen returns a listener whose accepted connections are wrapped with
// NewConn. Wire it between the socket and the server:
//
//	ln, err := net.Listen("tcp", addr)
//	...
//	srv := &http.Server{Handler: h, MaxHeaderBytes: max}
//	err = srv.Serve(h1guard.Listen(ln, h1guard.Options{MaxHeaderBytes: max}))
//
// Accept errors are returned unchanged: net/http's Serve recognises
// temporary errors by a type assertion on net.Error, which wrapping
// would defeat.
func Listen(inner net.Listener, opts Options) net.Listener {
	return &listener{Listener: inner, opts: opts}
}

type listener struct {
	net.Listener
	opts Options
}

// Accept wraps the next connection of the inner listener.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewConn(c, l.opts), nil
}

// NewConn wraps c so that each Read inspects the request framing of the
// bytes it returns (see the package documentation). The result also has
// NetConn() net.Conn, returning c, and CloseWrite; when c is a *tls.Conn
// it has ConnectionState too, so net/http still sets Request.TLS.
//
// A *tls.Conn whose handshake is not complete, or that negotiated h2, is
// returned unchanged: net/http must see the *tls.Conn itself to run the
// handshake and HTTP/2.
//
// Read on the result must not be called concurrently (net/http never
// does); the other methods are those of c.
func NewConn(c net.Conn, opts Options) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		if !st.HandshakeComplete || st.NegotiatedProtocol == "h2" {
			return c
		}
		t := &tlsConn{conn: conn{Conn: c, onReject: opts.OnReject}, tc: tc}
		t.s.init(opts.limit())
		t.outer = t
		return t
	}
	g := &conn{Conn: c, onReject: opts.OnReject}
	g.s.init(opts.limit())
	g.outer = g
	return g
}

// conn is a net.Conn whose reads are scanned.
type conn struct {
	net.Conn
	s        scanner
	onReject func(net.Conn, error)
	outer    net.Conn // what Accept returned, for OnReject
}

// Read reads from the inner connection and scans, and possibly marks, the
// bytes read.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.s.st != stDone {
		c.s.scan(p[:n])
		if c.s.reason != nil {
			c.report()
		}
	}
	return n, err
}

// report hands a rejection to OnReject, once.
func (c *conn) report() {
	why := c.s.reason
	c.s.reason = nil
	if c.onReject != nil {
		c.onReject(c.outer, fmt.Errorf("request %d from %s: %w", c.s.nreq, c.Conn.RemoteAddr(), why))
	}
}

// NetConn returns the wrapped connection.
func (c *conn) NetConn() net.Conn { return c.Conn }

// WaitReadable parks the wrapped connection until it has bytes to read
// (idlewait): the scan holds no bytes of its own, so what the wrapped
// connection has is what a read returns. Over TLS it reports false: the
// TLS connection may hold bytes already read and decrypted.
func (c *conn) WaitReadable(deadline time.Time, fn func()) bool {
	p, ok := c.Conn.(idlewait.Parker)
	return ok && p.WaitReadable(deadline, fn)
}

// StopScanning ends the scanning for good: the connection no longer
// carries HTTP/1.1 requests (a protocol upgrade took it over). It must
// not be called concurrently with Read.
func (c *conn) StopScanning() { c.s.st = stDone }

// CloseWrite half-closes the wrapped connection when it supports that
// (TCP, TLS), and closes it otherwise.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// tlsConn is a conn over a handshaken *tls.Conn.
type tlsConn struct {
	conn
	tc *tls.Conn
}

// ConnectionState returns the TLS state of the wrapped connection;
// net/http copies it into Request.TLS.
func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }
