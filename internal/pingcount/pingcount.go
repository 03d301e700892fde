// Package pingcount counts the HTTP/2 PING frames the peer of a connection
// sends, for tests of gRPC's flow-control settings: with fixed windows,
// gRPC's bandwidth estimation, which answers data with a PING, is off.
package pingcount

import (
	"io"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"
)

// Counter counts the PING frames (not PING ACKs) read on the connections
// it wraps.
type Counter struct {
	pings atomic.Int64
	wg    sync.WaitGroup
}

// Wrap returns conn with what it reads also parsed as HTTP/2 frames.
// clientPreface: the peer is a client, whose bytes start with the
// connection preface.
func (c *Counter) Wrap(conn net.Conn, clientPreface bool) net.Conn {
	pr, pw := io.Pipe()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer pr.Close()
		if clientPreface {
			if _, err := io.ReadFull(pr, make([]byte, len(http2.ClientPreface))); err != nil {
				return
			}
		}
		fr := http2.NewFramer(nil, pr)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
				c.pings.Add(1)
			}
		}
	}()
	return &teeConn{Conn: conn, w: pw}
}

// Pings waits until every wrapped connection is closed and returns the
// PING frames their peers sent.
func (c *Counter) Pings() int64 {
	c.wg.Wait()
	return c.pings.Load()
}

// teeConn writes what it reads to w.
type teeConn struct {
	net.Conn
	w *io.PipeWriter
}

func (c *teeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.w.Write(b[:n])
	}
	if err != nil {
		c.w.CloseWithError(err)
	}
	return n, err
}

func (c *teeConn) Close() error {
	c.w.Close()
	return c.Conn.Close()
}
