package h2client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	streamapi "github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// Defaults for the zero values of Transport's fields.
const (
	DefaultStreamWindow          = 256 << 10
	DefaultConnWindow            = 1 << 20
	DefaultMaxResponseHeaderSize = 1 << 20
	DefaultWriteTimeout          = 30 * time.Second
	// DefaultSettingsTimeout bounds the wait for the server's first
	// SETTINGS frame on a new connection.
	DefaultSettingsTimeout = 10 * time.Second
)

// maxUnprocessedRetries is how many times an attempt the server did not
// process (GOAWAY) is sent again on another connection.
const maxUnprocessedRetries = 3

// Transport is a pool of HTTP/2 connections per endpoint address; it
// implements stream.Upstream. The zero value is not usable: Dial must be
// set. Its fields must not change once it is used.
type Transport struct {
	// Dial opens a connection to addr, ready for the HTTP/2 preface (a
	// TLS connection has negotiated h2). Its error is returned wrapped by
	// RoundTrip, so the caller's connect-failure type shows through.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// TLS makes :scheme https.
	TLS bool
	// MaxConnsPerHost bounds the connections per address; 0: no bound.
	MaxConnsPerHost int
	// IdleConnTimeout closes a connection without streams for that
	// long; 0: never.
	IdleConnTimeout time.Duration
	// MaxResponseHeaderBytes bounds a response's header list (also
	// advertised as SETTINGS_MAX_HEADER_LIST_SIZE).
	MaxResponseHeaderBytes uint32
	// StreamWindow and ConnWindow are the receive windows.
	StreamWindow, ConnWindow uint32
	// WriteTimeout bounds one write of a batch of frames.
	WriteTimeout time.Duration

	mu    sync.Mutex
	pools map[string]*pool
}

var _ streamapi.Upstream = (*Transport)(nil)

// pool is the connections to one address; guarded by Transport.mu.
type pool struct {
	conns   []*conn
	dialing bool
	// wait is closed (and cleared) when a connection may have a free
	// slot or a dial ended; nil while nobody waits.
	wait chan struct{}
}

func (p *pool) notifyLocked() {
	if p.wait != nil {
		close(p.wait)
		p.wait = nil
	}
}

// RoundTrip implements stream.Upstream.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	fields, bodyLen, err := requestFields(req, t.TLS)
	if err != nil {
		closeBody(body)
		return nil, err
	}
	if bodyLen == 0 && body != nil {
		closeBody(body)
		body = nil
	}
	// A body that has all arrived (a unary gRPC call) goes out with the
	// head, in the same write, and needs no pump; it is kept for an
	// attempt sent again on another connection.
	var pre []byte
	var end bool
	if rr, ok := body.(streamapi.ReadyReader); ok {
		pre, end, err = prefetch(rr)
		if err != nil {
			closeBody(body)
			return nil, err
		}
		if end {
			closeBody(body)
			body = nil
		}
	}
	for try := 0; ; try++ {
		c, err := t.getConn(ctx, req.URL.Host)
		if err != nil {
			closeBody(body)
			return nil, err
		}
		s := c.startStream(req, fields, body, pre, end)
		<-s.headc
		c.mu.Lock()
		resp, err := s.resp, s.err
		unprocessed, bodyOwned := s.unprocessed, !s.bodyStarted
		if err != nil && bodyOwned {
			s.bodyStarted = true // the pump must not start now
		}
		c.mu.Unlock()
		if resp != nil {
			// A failure after the head shows on the body's reads.
			return resp, nil
		}
		if unprocessed && bodyOwned && try < maxUnprocessedRetries && ctx.Err() == nil {
			continue
		}
		if bodyOwned {
			closeBody(body)
		}
		return nil, err
	}
}

func closeBody(b io.ReadCloser) {
	if b != nil {
		_ = b.Close()
	}
}

// getConn returns a connection to addr with a stream slot reserved.
func (t *Transport) getConn(ctx context.Context, addr string) (*conn, error) {
	t.mu.Lock()
	for {
		if t.pools == nil {
			t.pools = make(map[string]*pool)
		}
		p := t.pools[addr]
		if p == nil {
			p = &pool{}
			t.pools[addr] = p
		}
		for _, c := range p.conns {
			if c.reserve() {
				t.mu.Unlock()
				return c, nil
			}
		}
		if !p.dialing && (t.MaxConnsPerHost <= 0 || len(p.conns) < t.MaxConnsPerHost) {
			p.dialing = true
			t.mu.Unlock()
			c, err := t.dial(ctx, addr)
			t.mu.Lock()
			p.dialing = false
			p.notifyLocked()
			if err != nil {
				if len(p.conns) == 0 && p.wait == nil && t.pools[addr] == p {
					delete(t.pools, addr) // no pool kept for an address that cannot be reached
				}
				t.mu.Unlock()
				return nil, err
			}
			p.conns = append(p.conns, c)
			continue
		}
		if p.wait == nil {
			p.wait = make(chan struct{})
		}
		wait := p.wait
		t.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		t.mu.Lock()
	}
}

// dial opens a connection and reads the server's first SETTINGS.
func (t *Transport) dial(ctx context.Context, addr string) (*conn, error) {
	nc, err := t.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("h2client: dial %s: %w", addr, err)
	}
	c, err := newConn(t, addr, nc)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("h2client: %s: %w", addr, err)
	}
	return c, nil
}

// removeConn forgets a connection that takes no more streams.
func (t *Transport) removeConn(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pools[c.addr]
	if p == nil {
		return
	}
	for i, pc := range p.conns {
		if pc == c {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	p.notifyLocked()
	if len(p.conns) == 0 && !p.dialing && p.wait == nil {
		delete(t.pools, c.addr)
	}
}

// slotFreed wakes attempts waiting for a stream slot on addr.
func (t *Transport) slotFreed(addr string) {
	t.mu.Lock()
	if p := t.pools[addr]; p != nil {
		p.notifyLocked()
	}
	t.mu.Unlock()
}

// CloseIdleConnections implements stream.Upstream: connections without
// streams are closed.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*conn
	for _, p := range t.pools {
		for _, c := range p.conns {
			idle = append(idle, c)
		}
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.closeIfIdle()
	}
}

func (t *Transport) streamWindow() int32 {
	if t.StreamWindow > 0 {
		return int32(min(t.StreamWindow, maxWindow))
	}
	return DefaultStreamWindow
}

func (t *Transport) connWindow() int32 {
	if t.ConnWindow > 0 {
		return int32(min(t.ConnWindow, maxWindow))
	}
	return DefaultConnWindow
}

func (t *Transport) maxHeaderBytes() uint32 {
	if t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return DefaultMaxResponseHeaderSize
}

func (t *Transport) writeTimeout() time.Duration {
	if t.WriteTimeout > 0 {
		return t.WriteTimeout
	}
	return DefaultWriteTimeout
}

// Errors an attempt may end with.
var (
	// ErrConnClosed: the connection ended under the stream.
	ErrConnClosed = errors.New("h2client: upstream connection closed")
	// errBodyClosed: a read of a response body after Close.
	errBodyClosed = errors.New("h2client: read on closed response body")
)

// StreamError is a stream the upstream reset (RST_STREAM), or one the
// proxy reset because the upstream broke the protocol on it. Its text
// names the code (REFUSED_STREAM, ...), which the router's retry policy
// reads.
type StreamError struct {
	Code   uint32
	Reason string // set when the proxy reset it: why
}

// Is matches streamapi.ErrRefusedStream for a stream the upstream refused
// (REFUSED_STREAM), which the router may retry as refused.
func (e *StreamError) Is(target error) bool {
	return target == streamapi.ErrRefusedStream && e.Code == uint32(streamapi.ResetRefusedStream)
}

func (e *StreamError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("h2client: upstream protocol error, stream reset (%s): %s", errCodeName(e.Code), e.Reason)
	}
	return "h2client: stream reset by the upstream: " + errCodeName(e.Code)
}

// headerFieldsCap is a guess of a request's header count, to size the
// field slice once.
func headerFieldsCap(h http.Header) int { return 5 + len(h) }
