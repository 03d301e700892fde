package listener

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// maxPeek bounds what the listener inspectors read before deciding: a TLS
// ClientHello fits in one 16 KiB record in practice; an HTTP/1 request
// line longer than this is not worth classifying.
const maxPeek = 64 << 10

// h2Preface is what an HTTP/2 client with prior knowledge sends first.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// inspect runs the listener's TLS and HTTP inspectors on c: it reads the
// first bytes (keeping them for replay) until it can tell TLS from
// plaintext, the SNI and ALPN of a ClientHello, or the HTTP version of a
// request. A client that sends nothing before the deadline is classified
// with what was read so far, as if it spoke no known protocol; it is not
// an error (Envoy's continue_on_listener_filters_timeout).
func (c *Conn) inspect(tlsInspector, httpInspector bool, deadline time.Time) {
	if !tlsInspector && !httpInspector {
		return
	}
	_ = c.Conn.SetReadDeadline(deadline)
	defer func() { _ = c.Conn.SetReadDeadline(time.Time{}) }()
	r := &recorder{conn: c.Conn, buf: c.peeked}
	defer func() { c.peeked = r.buf }()

	if err := r.fill(1); err != nil {
		return
	}
	isTLS := r.buf[0] == 0x16 // TLS handshake record
	if tlsInspector {
		if !isTLS {
			c.Info.Transport = "raw_buffer"
		} else {
			c.Info.Transport = "tls"
			if hello := r.clientHello(); hello != nil {
				c.Info.ServerName = lowerASCII(hello.ServerName)
				c.Info.AppProtos = hello.SupportedProtos
			}
			return
		}
	}
	if httpInspector && !isTLS {
		for {
			proto, more := classifyHTTP(r.buf)
			if !more {
				if proto != "" {
					c.Info.AppProtos = []string{proto}
				}
				return
			}
			if err := r.fill(len(r.buf) + 1); err != nil {
				return
			}
		}
	}
}

// H2Preface reports whether the connection starts with the HTTP/2
// connection preface, reading (and keeping for replay) only as far as the
// bytes match it. A connection that sends nothing before deadline is not
// HTTP/2.
func (c *Conn) H2Preface(deadline time.Time) bool {
	_ = c.Conn.SetReadDeadline(deadline)
	defer func() { _ = c.Conn.SetReadDeadline(time.Time{}) }()
	r := &recorder{conn: c.Conn, buf: c.peeked}
	defer func() { c.peeked = r.buf }()
	for n := 1; n <= len(h2Preface); n++ {
		if len(r.buf) < n && r.fill(n) != nil {
			return false
		}
		if r.buf[n-1] != h2Preface[n-1] {
			return false
		}
	}
	return true
}

// recorder reads from a connection and keeps every byte for replay.
type recorder struct {
	conn net.Conn
	buf  []byte
	pos  int // how far a consumer (the TLS parser) has read buf
}

// fill reads until buf holds at least n bytes.
func (r *recorder) fill(n int) error {
	if n > maxPeek {
		return errors.New("inspect: peek limit reached")
	}
	for len(r.buf) < n {
		if cap(r.buf)-len(r.buf) < 512 {
			nb := make([]byte, len(r.buf), max(2*cap(r.buf), 1024))
			copy(nb, r.buf)
			r.buf = nb
		}
		m, err := r.conn.Read(r.buf[len(r.buf):min(cap(r.buf), maxPeek)])
		r.buf = r.buf[:len(r.buf)+m]
		if err != nil && len(r.buf) < n {
			return err
		}
	}
	return nil
}

// errHelloSeen stops the TLS handshake once the ClientHello is parsed.
var errHelloSeen = errors.New("client hello seen")

// clientHello parses the TLS ClientHello from the recorded bytes (reading
// more as needed) with crypto/tls itself, which stops the handshake as
// soon as it has the hello: no hand-written TLS parser.
func (r *recorder) clientHello() *tls.ClientHelloInfo {
	var hello *tls.ClientHelloInfo
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		hello = &tls.ClientHelloInfo{ServerName: h.ServerName, SupportedProtos: append([]string(nil), h.SupportedProtos...)}
		return nil, errHelloSeen
	}}
	r.pos = 0
	_ = tls.Server(helloConn{r}, cfg).Handshake()
	return hello
}

// helloConn feeds crypto/tls the recorded bytes, then the connection's,
// recording those too; it swallows the alert crypto/tls writes when the
// handshake is stopped.
type helloConn struct{ r *recorder }

func (h helloConn) Read(p []byte) (int, error) {
	r := h.r
	if r.pos == len(r.buf) {
		if err := r.fill(len(r.buf) + 1); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.pos:])
	r.pos += n
	return n, nil
}
func (h helloConn) Write(p []byte) (int, error)        { return 0, io.ErrClosedPipe }
func (h helloConn) Close() error                       { return nil }
func (h helloConn) LocalAddr() net.Addr                { return h.r.conn.LocalAddr() }
func (h helloConn) RemoteAddr() net.Addr               { return h.r.conn.RemoteAddr() }
func (h helloConn) SetDeadline(t time.Time) error      { return nil }
func (h helloConn) SetReadDeadline(t time.Time) error  { return nil }
func (h helloConn) SetWriteDeadline(t time.Time) error { return nil }

// classifyHTTP is Envoy's HTTP inspector: it tells from the first bytes of
// a plaintext connection whether the client speaks HTTP/2 with prior
// knowledge ("h2c"), HTTP/1.1 ("http/1.1") or HTTP/1.0 ("http/1.0"), or
// none of them (""). more says the bytes so far are not enough to decide.
func classifyHTTP(b []byte) (proto string, more bool) {
	if len(b) == 0 {
		return "", true
	}
	if n := min(len(b), len(h2Preface)); string(b[:n]) == h2Preface[:n] {
		if n < len(h2Preface) {
			return "", true
		}
		return "h2c", false
	}
	// Request line: method SP request-target SP HTTP-version CRLF.
	i := 0
	for i < len(b) && isTokenChar(b[i]) {
		i++
	}
	if i == len(b) {
		return "", len(b) < maxPeek
	}
	if i == 0 || b[i] != ' ' {
		return "", false
	}
	i++
	start := i
	for i < len(b) && b[i] > ' ' && b[i] != 0x7f {
		i++
	}
	if i == len(b) {
		return "", len(b) < maxPeek
	}
	if i == start || b[i] != ' ' {
		return "", false
	}
	i++
	rest := b[i:]
	const v10, v11 = "HTTP/1.0", "HTTP/1.1"
	if len(rest) < len(v11)+1 {
		if bytes.HasPrefix([]byte(v11), rest) || bytes.HasPrefix([]byte(v10), rest) {
			return "", true
		}
		return "", false
	}
	if rest[len(v11)] != '\r' && rest[len(v11)] != '\n' {
		return "", false
	}
	switch string(rest[:len(v11)]) {
	case v11:
		return "http/1.1", false
	case v10:
		return "http/1.0", false
	}
	return "", false
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// lowerASCII lower-cases s without allocating when it already is.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
