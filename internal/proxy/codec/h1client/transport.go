package h1client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/sockpeek"
)

// Defaults for the zero values of Transport's fields.
const (
	DefaultMaxIdleConnsPerHost    = 128
	DefaultIdleConnTimeout        = 90 * time.Second
	DefaultMaxResponseHeaderBytes = 1 << 20
	DefaultBufferSize             = 16 << 10
)

// ErrNoResponse is wrapped by errors that happen after a connection to
// the upstream was obtained but before a complete response head was read:
// the upstream reset or closed the connection, or writing the request
// failed. A proxy typically answers these with "upstream reset before
// headers".
var ErrNoResponse = errors.New("h1client: connection failed before a response head was read")

// ErrMalformedResponse is wrapped by errors about a response that does not
// parse as HTTP/1.x: a bad status line or field line, an oversized head,
// conflicting or invalid framing, a bad chunk.
var ErrMalformedResponse = errors.New("h1client: malformed response")

// Transport is an http.RoundTripper for HTTP/1.1 to one or more upstream
// addresses, named by req.URL.Host. It keeps a pool of idle connections
// per address. The zero value with Dial set is ready to use; the fields
// must not change after the first RoundTrip. It is safe for concurrent use.
type Transport struct {
	// Dial opens a connection to addr ("ip:port"). It is required. Its
	// errors are returned by RoundTrip as they are, so the caller can tell
	// connect failures apart. The connections' deadlines must work.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// MaxIdleConnsPerHost bounds the idle connections kept per address;
	// 0 means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int

	// MaxConnsPerHost bounds the connections per address, idle, in use
	// and being dialled; 0 means unlimited. At the limit, RoundTrip waits
	// for a connection until the request's context is done.
	MaxConnsPerHost int

	// IdleConnTimeout is how long a connection may stay idle before it is
	// closed; 0 means DefaultIdleConnTimeout.
	IdleConnTimeout time.Duration

	// MaxResponseHeaderBytes bounds the bytes of a response head (status
	// line and fields, and separately each interim response and the
	// trailer section); 0 means DefaultMaxResponseHeaderBytes.
	MaxResponseHeaderBytes int

	// ReadBufferSize and WriteBufferSize size each connection's buffers;
	// 0 means DefaultBufferSize.
	ReadBufferSize, WriteBufferSize int

	pools sync.Map // addr string -> *hostPool
}

// hostPool holds the connections to one address.
type hostPool struct {
	t    *Transport
	addr string

	mu      sync.Mutex
	idle    []*conn // LIFO: the most recently used connection is last
	open    int     // connections idle, in use or being dialled
	waiters []chan struct{}
	// retired: the pool had nothing left and left the transport's map
	// (so that addresses used once do not accumulate); a RoundTrip that
	// still holds it looks the address up again.
	retired bool
}

// errPoolRetired tells RoundTrip to look its pool up again.
var errPoolRetired = errors.New("h1client: host pool retired")

// freeLocked gives up one connection slot, wakes a waiter, and retires
// the pool when nothing is left in it.
func (p *hostPool) freeLocked() {
	p.open--
	p.wakeLocked()
	p.retireIfEmptyLocked()
}

func (p *hostPool) retireIfEmptyLocked() {
	if p.open == 0 && len(p.idle) == 0 && len(p.waiters) == 0 && !p.retired {
		p.retired = true
		p.t.pools.CompareAndDelete(p.addr, p)
	}
}

func (t *Transport) maxIdle() int {
	if t.MaxIdleConnsPerHost > 0 {
		return t.MaxIdleConnsPerHost
	}
	return DefaultMaxIdleConnsPerHost
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleConnTimeout > 0 {
		return t.IdleConnTimeout
	}
	return DefaultIdleConnTimeout
}

func (t *Transport) maxHeaderBytes() int {
	if t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return DefaultMaxResponseHeaderBytes
}

func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

func (t *Transport) pool(addr string) *hostPool {
	if p, ok := t.pools.Load(addr); ok {
		return p.(*hostPool)
	}
	p, _ := t.pools.LoadOrStore(addr, &hostPool{t: t, addr: addr})
	return p.(*hostPool)
}

// RoundTrip sends req to req.URL.Host and returns the response head; the
// body streams from the connection. See the package documentation for
// the request semantics and the differences from http.Transport.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	hasBody := req.Body != nil && req.Body != http.NoBody
	if err := checkRequest(req, hasBody); err != nil {
		if hasBody {
			req.Body.Close()
		}
		return nil, err
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		if hasBody {
			req.Body.Close()
		}
		return nil, err
	}
	p := t.pool(req.URL.Host)
	for attempt := 0; ; attempt++ {
		c, err := p.get(ctx, attempt > 0, hasBody && req.ContentLength != 0)
		if err == errPoolRetired {
			p = t.pool(req.URL.Host)
			attempt--
			continue
		}
		if err != nil {
			if hasBody {
				req.Body.Close()
			}
			return nil, err
		}
		resp, retry, err := c.roundTrip(ctx, req, hasBody)
		if err == nil {
			return resp, nil
		}
		if retry && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return nil, err
	}
}

// checkRequest rejects what cannot be sent as an HTTP/1.1 request.
func checkRequest(req *http.Request, hasBody bool) error {
	if req.URL == nil {
		return errors.New("h1client: request has no URL")
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "" {
		return errors.New("h1client: unsupported scheme " + quote(req.URL.Scheme))
	}
	if req.URL.Host == "" {
		return errors.New("h1client: request URL has no host")
	}
	if req.Method == "CONNECT" {
		return errors.New("h1client: CONNECT is not supported")
	}
	if req.ContentLength > 0 && !hasBody {
		return errors.New("h1client: request has ContentLength " + itoa(req.ContentLength) + " and no Body")
	}
	return nil
}

// get returns an idle connection to the pool's address, or dials one.
// fresh skips the idle connections; probe checks that an idle connection
// was not closed by the upstream.
func (p *hostPool) get(ctx context.Context, fresh, probe bool) (*conn, error) {
	t := p.t
	max := t.MaxConnsPerHost
	for {
		p.mu.Lock()
		if p.retired {
			p.mu.Unlock()
			return nil, errPoolRetired
		}
		if !fresh {
			for len(p.idle) > 0 {
				c := p.idle[len(p.idle)-1]
				p.idle[len(p.idle)-1] = nil
				p.idle = p.idle[:len(p.idle)-1]
				c.timer.Stop()
				if time.Since(c.idleAt) >= t.idleTimeout() {
					p.freeLocked()
					p.mu.Unlock()
					c.nc.Close()
					p.mu.Lock()
					continue
				}
				p.mu.Unlock()
				c.takeBuffers()
				if probe && !c.alive() {
					c.close()
					p.mu.Lock()
					continue
				}
				return c, nil
			}
		}
		if fresh && max > 0 && p.open >= max && len(p.idle) > 0 {
			// A retry wants a new connection; make room by closing
			// the oldest idle one.
			c := p.idle[0]
			copy(p.idle, p.idle[1:])
			p.idle[len(p.idle)-1] = nil
			p.idle = p.idle[:len(p.idle)-1]
			p.open--
			c.timer.Stop()
			c.nc.Close()
		}
		if max <= 0 || p.open < max {
			p.open++
			p.mu.Unlock()
			return p.dial(ctx)
		}
		w := make(chan struct{}, 1)
		p.waiters = append(p.waiters, w)
		p.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			p.mu.Lock()
			found := false
			for i, x := range p.waiters {
				if x == w {
					p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
					found = true
					break
				}
			}
			if !found {
				// We were woken already; pass it on.
				p.wakeLocked()
			}
			p.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// wakeLocked tells the longest-waiting RoundTrip, if any, that a
// connection or a slot may be free.
func (p *hostPool) wakeLocked() {
	if len(p.waiters) == 0 {
		return
	}
	w := p.waiters[0]
	copy(p.waiters, p.waiters[1:])
	p.waiters[len(p.waiters)-1] = nil
	p.waiters = p.waiters[:len(p.waiters)-1]
	w <- struct{}{}
}

func (p *hostPool) dial(ctx context.Context) (*conn, error) {
	t := p.t
	nc, err := t.Dial(ctx, "tcp", p.addr)
	if err != nil || nc == nil {
		p.mu.Lock()
		p.freeLocked()
		p.mu.Unlock()
		if err == nil {
			err = errors.New("h1client: Dial returned no connection")
		}
		return nil, err
	}
	c := &conn{p: p, nc: nc}
	rs, ws := orDefault(t.ReadBufferSize, DefaultBufferSize), orDefault(t.WriteBufferSize, DefaultBufferSize)
	if rs == DefaultBufferSize && ws == DefaultBufferSize {
		c.pooled = true
		c.takeBuffers()
	} else {
		c.br, c.bw = bufio.NewReaderSize(nc, rs), bufio.NewWriterSize(nc, ws)
	}
	c.abort = c.abortExchange
	c.clear = c.clearAbort
	return c, nil
}

// connBufs are an upstream connection's buffers of the default size:
// 16 KiB to read, 16 KiB to write and, once a request body was copied,
// 16 KiB to copy it through.
type connBufs struct {
	br   *bufio.Reader
	bw   *bufio.Writer
	wbuf []byte
}

// bufPool holds the buffers of idle connections, so that the idle pool's
// connections (up to MaxIdleConnsPerHost per address) hold their
// sockets, not 32 KiB of buffers or more each; HAProxy and Envoy hold
// none for an idle connection either.
var bufPool = sync.Pool{New: func() any {
	return &connBufs{br: bufio.NewReaderSize(nil, DefaultBufferSize), bw: bufio.NewWriterSize(nil, DefaultBufferSize)}
}}

// takeBuffers gives a pooled-size connection its buffers, unless it
// holds them.
func (c *conn) takeBuffers() {
	if !c.pooled || c.bufs != nil {
		return
	}
	b := bufPool.Get().(*connBufs)
	b.br.Reset(c.nc)
	b.bw.Reset(c.nc)
	c.bufs, c.br, c.bw, c.wbuf = b, b.br, b.bw, b.wbuf
}

// releaseBuffers gives a connection's pooled buffers back as it goes
// idle; one holding bytes (unsolicited ones from the upstream, which
// alive will find) keeps them.
func (c *conn) releaseBuffers() {
	b := c.bufs
	if b == nil || c.br.Buffered() > 0 || c.bw.Buffered() > 0 {
		return
	}
	b.br.Reset(nil)
	b.bw.Reset(nil)
	b.wbuf = c.wbuf
	c.bufs, c.br, c.bw, c.wbuf = nil, nil, nil, nil
	bufPool.Put(b)
}

// put returns c to the idle pool, or closes it when the pool is full.
func (p *hostPool) put(c *conn) {
	c.releaseBuffers()
	p.mu.Lock()
	if len(p.idle) >= p.t.maxIdle() {
		p.freeLocked()
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	c.reused = true
	c.idleAt = time.Now()
	d := p.t.idleTimeout()
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.idleExpired)
	} else {
		c.timer.Reset(d)
	}
	p.idle = append(p.idle, c)
	p.wakeLocked()
	p.mu.Unlock()
}

// idleExpired closes c if it is still idle and has been for the idle
// timeout. A timer that fires for an earlier idle period finds c in use or
// idle for less long, and re-arms or does nothing.
func (c *conn) idleExpired() {
	p := c.p
	d := p.t.idleTimeout()
	p.mu.Lock()
	for i, x := range p.idle {
		if x != c {
			continue
		}
		if left := d - time.Since(c.idleAt); left > 0 {
			c.timer.Reset(left)
			p.mu.Unlock()
			return
		}
		copy(p.idle[i:], p.idle[i+1:])
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		p.freeLocked()
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	p.mu.Unlock()
}

// writeGrace bounds how long a connection whose response has ended waits
// for its request body to finish going out before it is closed instead of
// reused.
const writeGrace = time.Second

// reuseAfterWrite returns c to the idle pool once the request body
// goroutine that closes wdone has finished without error. The upstream
// can answer as soon as the last byte arrives, before that goroutine has
// noticed its write completed; waiting for it here would hold up the
// caller, so the decision is handed off. A body not sent within
// writeGrace closes the connection, which also ends a blocked write.
func (c *conn) reuseAfterWrite(wdone chan struct{}) {
	timer := time.AfterFunc(writeGrace, func() { c.nc.Close() })
	go func() {
		<-wdone
		if timer.Stop() && c.werr == nil {
			c.p.put(c)
			return
		}
		c.close()
	}()
}

// close closes a connection that is not in the idle pool and frees its
// slot.
func (c *conn) close() {
	c.nc.Close()
	p := c.p
	p.mu.Lock()
	p.freeLocked()
	p.mu.Unlock()
}

// CloseIdleConnections closes the idle connections of every address. It
// does not affect connections in use.
func (t *Transport) CloseIdleConnections() {
	t.pools.Range(func(_, v any) bool {
		p := v.(*hostPool)
		p.mu.Lock()
		idle := p.idle
		p.idle = nil
		p.open -= len(idle)
		for range idle {
			p.wakeLocked()
		}
		p.retireIfEmptyLocked()
		p.mu.Unlock()
		for _, c := range idle {
			c.timer.Stop()
			c.nc.Close()
		}
		return true
	})
}

// isConnGone reports whether err is how a write to or read from a
// connection the upstream has closed fails.
func isConnGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// alive reports whether an idle connection can carry a request: the
// upstream has neither closed it nor sent anything unsolicited.
func (c *conn) alive() bool {
	if c.br != nil && c.br.Buffered() > 0 {
		return false
	}
	st := sockpeek.Look(c.nc)
	return st == sockpeek.Quiet || st == sockpeek.Unknown
}

// The Transport is an upstream codec behind the stream interface.
var _ stream.Upstream = (*Transport)(nil)
