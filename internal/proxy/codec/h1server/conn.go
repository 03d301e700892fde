package h1server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/idlewait"
	"github.com/meshlens/meshlens/internal/proxy/sockpeek"
	"golang.org/x/net/http/httpguts"
)

// Connection states, for Shutdown.
const (
	stateIdle   = iota // waiting for the first byte of a request
	stateActive        // reading a request or answering it
)

// conn is one connection being served.
type conn struct {
	s          *Server
	rwc        net.Conn
	ctx        context.Context
	cancel     context.CancelFunc
	remoteAddr string
	first      firstBytes       // what lr reads: the connection, after the bytes that ended an idle wait
	lr         io.LimitedReader // bounds the head being read
	rec        headRecorder     // sees what lr reads
	// br and bw come from bufPool while a request is read or answered,
	// and go back while the connection waits for its next request:
	// an idle connection holds no buffer.
	bufs     *bufs
	br       *bufio.Reader
	bw       *bufio.Writer
	state    atomic.Int32
	reqStart atomic.Int64 // UnixNano when the handler started; 0 outside it
	looking  atomic.Bool  // a hang-up look is under way
	w        response     // reused for every request
	lastPOST bool
	// peekNext: the request a detached connection's wait ended for is
	// not its first (waitDetached to serveAfterWait).
	peekNext bool
	// hijacked: the handler took the connection over (Hijack); the
	// server no longer reads, writes, tracks or closes it.
	hijacked bool
	// cl is the current request's cancel listener (NotifyCancel);
	// cancelled says cancelRequest ran. Guarded by clMu.
	clMu      sync.Mutex
	cl        stream.CancelListener
	cancelled bool
	// done, for a connection served detached (ServeConnDetached), is
	// called once it has ended; nil for one served by ServeConn.
	done func()
}

// cancelRequest cancels the connection's context, and so its request's,
// and tells the request's cancel listener.
func (c *conn) cancelRequest() {
	c.clMu.Lock()
	l := c.cl
	c.cl, c.cancelled = nil, true
	c.clMu.Unlock()
	c.cancel()
	if l != nil {
		l.DownstreamCancelled()
	}
}

// serve is the connection's loop: read a request, run the handler, finish
// the response, until one side wants the connection closed, which it
// reports (done); or, on a detached connection, until the connection
// waits for its next request, which a goroutine of its own then does
// (waitDetached), and serve reports not done. first says no request was
// read yet; waited that the wait for this request is over.
func (c *conn) serve(first, waited bool) (done bool) {
	s := c.s
	// When the connection ends its buffers are not given back: a
	// goroutine the handler started (the upstream body copy) may still
	// be reading through them.
	for ; ; first, waited = false, false {
		if !waited {
			if s.shutdown.Load() {
				return true
			}
			if !first || c.bufs == nil {
				// Wait for the next request; a Shutdown sets a past
				// deadline on idle connections to end this wait.
				c.state.Store(stateIdle)
				timeout := s.idleTimeout()
				if first {
					timeout = s.readHeaderTimeout()
				}
				deadline := time.Now().Add(timeout)
				_ = c.rwc.SetReadDeadline(deadline)
				if s.shutdown.Load() {
					return true
				}
				if c.done != nil && !c.pending() {
					if first || !s.attached.Take() {
						// Wait parked, with no goroutine (idlewait), or
						// on a fresh goroutine, whose stack is the
						// runtime's smallest: this one's grew while it
						// served a request, and a collection shrinks it
						// only when three quarters are unused.
						c.dropIdle()
						peek := !first
						idlewait.ParkOrGo(c.rwc, deadline, func() { c.waitDetached(peek) })
						return false
					}
					// Wait on this worker, as a connection that is not
					// detached does: no goroutine started and no
					// hand-off to a worker when the request comes.
					// (A quarter of an HTTP/1.1 sidecar's CPU at 1000
					// requests per second, BENCHMARKS.md finding 34.)
					ok := c.waitRequest(!first)
					s.attached.Give()
					if !ok {
						return true
					}
				} else if !c.waitRequest(!first) {
					return true
				}
			}
		}
		c.state.Store(stateActive)
		// A deadline costs a runtime timer update each time it is set.
		// The first request's head has the deadline set before its wait;
		// a later request's head that has arrived whole is parsed from
		// the buffer, with no read for a deadline to bound.
		headerDeadline := !first && !c.headBuffered()
		if headerDeadline {
			_ = c.rwc.SetReadDeadline(time.Now().Add(s.readHeaderTimeout()))
		}
		req, err := c.readRequest()
		if err != nil {
			if c.refuse(err) && (errors.Is(err, errTooLarge) || sockpeek.Look(c.rwc) == sockpeek.Data) {
				// The client may still be sending its head, or sent
				// more than was read: closing now, with input unread,
				// would send a reset that can destroy the answer
				// before the client reads it.
				c.closeWriteAndWait()
			}
			return true
		}
		if first || headerDeadline || req.Body != http.NoBody {
			_ = c.rwc.SetReadDeadline(time.Time{})
		}
		// Else the idle deadline stays while a request without a body is
		// handled: nothing reads the connection but a hang-up look,
		// which finds nothing once a request has waited longer than the
		// idle timeout (the route and stream idle timeouts end it first
		// by default); the next wait sets the deadline anew.
		if !c.handle(req) {
			return true
		}
	}
}

// waitDetached is the wait of a detached connection for its next request
// (its first unless peek): it reads the request's first byte on a
// goroutine that holds nothing else, then hands the connection to a
// worker to serve on (serveAfterWait).
func (c *conn) waitDetached(peek bool) {
	if !c.readFirst() {
		c.end()
		return
	}
	c.peekNext = peek
	c.s.workers.Run(c)
}

// serveAfterWait serves a detached connection whose wait for a request
// ended, on a worker, until it waits again or ends.
func serveAfterWait(c *conn) {
	peek := c.peekNext
	if !c.peekHead(peek) || c.serve(!peek, true) {
		c.end()
	}
}

// bufs is what a connection holds only while it reads or answers a
// request.
type bufs struct {
	br   *bufio.Reader
	bw   *bufio.Writer
	head []byte // the head recorder's buffer
	// hdr is the response's header map, kept empty between requests:
	// a map keeps what it grew to after it is cleared.
	hdr http.Header
}

// maxPooledHeader is the most response header fields whose map goes
// back to bufPool with the buffers.
const maxPooledHeader = 32

// bufPool holds the buffers of connections that are waiting for a
// request, so that thousands of idle keep-alive connections cost their
// goroutine and socket, not 8 KiB of buffers each.
var bufPool = sync.Pool{New: func() any {
	return &bufs{br: bufio.NewReaderSize(nil, bufferSize), bw: bufio.NewWriterSize(nil, bufferSize), hdr: make(http.Header)}
}}

// acquireBuffers takes buffers from bufPool, unless c holds some.
func (c *conn) acquireBuffers() {
	if c.bufs != nil {
		return
	}
	b := bufPool.Get().(*bufs)
	c.bufs = b
	c.br, c.bw, c.rec.buf, c.w.hdr = b.br, b.bw, b.head[:0], b.hdr
	c.br.Reset(&c.rec)
	c.bw.Reset(c.rwc)
}

// releaseBuffers gives c's buffers back to bufPool. The reader must hold
// nothing unread and the writer nothing unwritten, and the last request's
// body must be read to its end or closed (no goroutine reads it any more).
func (c *conn) releaseBuffers() {
	b := c.bufs
	if b == nil || c.hijacked {
		return
	}
	b.br.Reset(nil)
	b.bw.Reset(nil)
	b.head = c.rec.buf[:0]
	if cap(b.head) > bufferSize {
		b.head = nil // a large head: do not keep its buffer
	}
	if len(b.hdr) > maxPooledHeader {
		b.hdr = make(http.Header) // nor a large map
	} else {
		clear(b.hdr)
	}
	c.bufs, c.br, c.bw, c.rec.buf, c.w.hdr = nil, nil, nil, nil, nil
	bufPool.Put(b)
}

// waitRequest waits for the first byte of a request, and for a request
// after the first for four bytes, as net/http does before it counts the
// connection active. With nothing buffered it gives the buffers back
// for the wait and reads the first bytes (firstRead) into the connection
// itself, then takes buffers again: no buffer held by an idle
// connection, and a head that fits is read with one system call.
func (c *conn) waitRequest(peek bool) bool {
	if !c.pending() {
		c.dropIdle()
		if !c.readFirst() {
			return false
		}
	}
	c.acquireBuffers()
	return c.peekHead(peek)
}

// pending reports whether bytes the client sent are held unread: in the
// buffer, or still in first (a reader that asked for fewer).
func (c *conn) pending() bool {
	return c.bufs != nil && c.br.Buffered() > 0 || c.first.r < c.first.w
}

// dropIdle lets go of what a connection waiting for its next request
// does not need: its buffers, and its last request and header fields.
func (c *conn) dropIdle() {
	c.w.req = nil
	c.releaseBuffers()
}

// readFirst reads the first bytes of the next request (most heads
// whole) into the connection, then takes buffers for the request.
func (c *conn) readFirst() bool {
	for {
		n, err := c.rwc.Read(c.first.b[:])
		if n > 0 {
			c.first.r, c.first.w = 0, n
			break
		}
		if err != nil {
			return false
		}
	}
	c.acquireBuffers()
	return true
}

// peekHead, for a request after the first, waits for four bytes of its
// head, as net/http does.
func (c *conn) peekHead(peek bool) bool {
	if !peek {
		return true
	}
	_, err := c.br.Peek(4)
	return err == nil
}

// headBuffered reports whether the buffer holds a whole request head
// (after the stray line ends old clients send after a POST body).
func (c *conn) headBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	b = bytes.TrimLeft(b, "\r\n")
	return bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// firstRead is how many bytes an idle connection's wait reads: a
// request head of a mesh call (with its trace context) usually fits,
// so it is read with one system call, and the array costs an idle
// connection little.
const firstRead = 512

// firstBytes reads from conn, first returning the bytes an idle wait
// read. It does not read on once they are returned: a head that fit
// in them is whole, and a read would wait for the client's next
// request.
type firstBytes struct {
	conn net.Conn
	b    [firstRead]byte
	r, w int // b[r:w] is held
}

func (f *firstBytes) Read(p []byte) (int, error) {
	if f.r == f.w || len(p) == 0 {
		return f.conn.Read(p)
	}
	n := copy(p, f.b[f.r:f.w])
	f.r += n
	if f.r == f.w {
		f.r, f.w = 0, 0
	}
	return n, nil
}

// statusError is a request refused with a status.
type statusError struct {
	code int
	text string
}

func (e statusError) Error() string { return e.text }

var (
	errTooLarge  = statusError{http.StatusRequestHeaderFieldsTooLarge, "Request Header Fields Too Large"}
	errNoHost    = statusError{http.StatusBadRequest, "missing required Host header"}
	errManyHosts = statusError{http.StatusBadRequest, "too many Host headers"}
	errVersion   = statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	errExpect    = statusError{http.StatusExpectationFailed, "Expectation Failed"}
)

// badField is a 400 whose text starts with net/http's for the same
// refusal and goes on to name the field and, quoted and shortened, the
// offending value, so the client can tell which of its headers is wrong.
func badField(what, name, value string) statusError {
	text := what + ": " + quoteShort(name)
	if value != "" {
		text += " = " + quoteShort(value)
	}
	return statusError{http.StatusBadRequest, text}
}

// quoteShort quotes s, cut to 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// readRequest reads and checks one request head, as net/http's server
// does.
func (c *conn) readRequest() (*http.Request, error) {
	c.lr.N = c.s.headerLimit()
	if c.lastPOST {
		// Tolerate the stray CRLF old clients send after a POST body.
		peek, _ := c.br.Peek(4)
		n := 0
		for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
			n++
		}
		_, _ = c.br.Discard(n)
	}
	buffered, _ := c.br.Peek(c.br.Buffered())
	if req, n, host, hosts, ok := parseHead(buffered); ok && int64(n) <= c.lr.N {
		// A common head, whole in the buffer: parsed without net/http.
		_, _ = c.br.Discard(n)
		c.lr.N = 1<<63 - 1
		c.lastPOST = req.Method == http.MethodPost
		if req.ProtoAtLeast(1, 1) && hosts == 0 {
			return nil, errNoHost
		}
		if hosts == 1 && !httpguts.ValidHostHeader(host) {
			return nil, badField("malformed Host header", "Host", host)
		}
		return req, nil
	}
	// http.ReadRequest drops the Host fields, so record the head's
	// bytes (those buffered already and those read now) to count them.
	c.rec.buf = append(c.rec.buf[:0], buffered...)
	c.rec.on = true
	req, err := http.ReadRequest(c.br)
	c.rec.on = false
	if err != nil {
		if c.lr.N <= 0 {
			return nil, errTooLarge
		}
		return nil, err
	}
	c.lr.N = 1<<63 - 1
	hostFields, hostValue := hostFields(c.rec.buf)
	c.lastPOST = req.Method == http.MethodPost
	if req.ProtoMajor != 1 {
		return nil, errVersion
	}
	if req.ProtoAtLeast(1, 1) && hostFields == 0 && req.Method != http.MethodConnect {
		return nil, errNoHost
	}
	if hostFields > 1 {
		return nil, errManyHosts
	}
	if hostFields == 1 && !httpguts.ValidHostHeader(string(hostValue)) {
		return nil, badField("malformed Host header", "Host", string(hostValue))
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, badField("invalid header name", k, "")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, badField("invalid header value", k, v)
			}
		}
	}
	return req, nil
}

// headRecorder keeps the bytes read from the connection while on.
type headRecorder struct {
	r   io.Reader
	on  bool
	buf []byte
}

func (h *headRecorder) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if h.on {
		h.buf = append(h.buf, p[:n]...)
	}
	return n, err
}

// hostFields counts the Host fields of the request head at the start of b
// (which http.ReadRequest has parsed, so it is well formed) and returns
// the first one's value, trimmed as textproto trims it: a part of b,
// unless obsolete line folding continued it.
func hostFields(b []byte) (n int, first []byte) {
	// Skip the request line.
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return 0, nil
	}
	b = b[i+1:]
	inFirst := false // the last field was the first Host: continuations join it
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			// An obsolete line folding: textproto joins it with a space.
			if inFirst {
				first = append(append(append([]byte(nil), first...), ' '), bytes.Trim(line, " \t")...)
			}
			continue
		}
		inFirst = false
		if name, value, ok := bytes.Cut(line, []byte(":")); ok && len(name) == 4 && bytes.EqualFold(name, []byte("host")) {
			if n == 0 {
				first = bytes.Trim(value, " \t")
				inFirst = true
			}
			n++
		}
	}
	return n, bytes.TrimLeft(first, " \t")
}

// refuse answers a request that could not be read, unless the connection
// simply ended or timed out, and leaves the connection to be closed. It
// reports whether it answered.
func (c *conn) refuse(err error) (answered bool) {
	// As net/http: no answer when the connection ended, timed out or
	// failed (an incomplete head is answered).
	if err == io.EOF || errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "read" {
		return false
	}
	// The same status lines and bodies as net/http's server.
	var se statusError
	body := "400 Bad Request"
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, errExpect):
		code, body = http.StatusExpectationFailed, ""
	case errors.Is(err, errTooLarge):
		code, body = http.StatusRequestHeaderFieldsTooLarge, "431 Request Header Fields Too Large"
	case errors.As(err, &se):
		code = se.code
		body = fmt.Sprintf("%d %s: %s", code, http.StatusText(code), se.text)
	case strings.HasPrefix(err.Error(), "unsupported transfer encoding"),
		strings.HasPrefix(err.Error(), "too many transfer encodings"):
		// Both are net/http's unsupportedTEError, which its server
		// answers 501.
		code, body = http.StatusNotImplemented, "Unsupported transfer encoding"
	default:
		// net/http says only "400 Bad Request"; the parser's reason
		// names the line or field it refused.
		body += ": " + quoteShort(err.Error())
	}
	_ = c.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	if body == "" {
		fmt.Fprintf(c.rwc, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", code, http.StatusText(code))
	} else {
		fmt.Fprintf(c.rwc, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n%s", code, http.StatusText(code), body)
	}
	if f := c.s.OnRefuse; f != nil {
		f(c.rwc, code, err)
	}
	return true
}

// handle runs the handler for req and finishes its response. It reports
// whether the connection may carry another request.
func (c *conn) handle(req *http.Request) (keep bool) {
	w := &c.w
	w.reset(req)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &reqBody{w: w, rc: req.Body}
	} else {
		w.bodyDone.Store(true)
	}
	if v, ok := req.Header["Expect"]; ok && len(v) > 0 {
		// As net/http: the first field decides; empty is no expectation.
		switch {
		case httpHasToken(v[:1], "100-continue"):
			if req.ProtoAtLeast(1, 1) && req.ContentLength != 0 {
				w.cont.Store(contPending)
			}
		case v[0] != "":
			c.refuse(errExpect)
			return false
		}
	}
	req.RemoteAddr = c.remoteAddr
	req = req.WithContext(c.ctx)
	w.req = req

	body, _ := req.Body.(*reqBody)
	h := c.s.Handler
	var sh stream.Handler
	switch {
	case req.RequestURI == "*" && req.Method == http.MethodOptions:
		h = optionsHandler // as net/http: the server itself answers
	case c.s.Streams != nil:
		sh = c.s.Streams
	}
	c.reqStart.Store(time.Now().UnixNano())
	ok := c.run(w, req, h, sh)
	c.reqStart.Store(0)
	if !ok || c.hijacked || w.resetCode != 0 {
		if w.resetCode != 0 && !c.hijacked {
			// Reset: what was written goes out as is, and the
			// connection ends (a chunked body without its last
			// chunk reads as truncated).
			_ = c.bw.Flush()
		}
		return false
	}
	w.finish()
	if err := c.bw.Flush(); err != nil {
		return false
	}
	if w.cont.Load() == contPending {
		// The client waits for a 100 Continue that will not come, and
		// may or may not send the body: the connection cannot be reused.
		return false
	}
	if !w.bodyDone.Load() {
		// A body the handler left unread: read the rest if it is short
		// and nothing else reads it (a goroutine the handler started
		// may), as net/http does, so the connection can carry the next
		// request; otherwise close.
		if w.closeAfter || body == nil || !c.drain(body) {
			// The client may still be sending it.
			c.closeWriteAndWait()
			return false
		}
	}
	return !w.closeAfter
}

// maxDrain is how much of an unread request body is read and discarded
// to keep the connection (net/http's maxPostHandlerReadBytes).
const maxDrain = 256 << 10

// drain reads the rest of an unread request body, up to maxDrain and
// within the header timeout, and reports whether it reached its end.
func (c *conn) drain(b *reqBody) bool {
	if !b.state.CompareAndSwap(bodyIdle, bodyClosed) {
		return false // a read is in progress on another goroutine
	}
	_ = c.rwc.SetReadDeadline(time.Now().Add(c.s.readHeaderTimeout()))
	defer func() { _ = c.rwc.SetReadDeadline(time.Time{}) }()
	n, err := io.Copy(io.Discard, io.LimitReader(b.rc, maxDrain+1))
	return err == nil && n <= maxDrain
}

// rstAvoidanceDelay is how long a connection stays half-closed after a
// response sent while the client may still be writing, as in net/http:
// closing a socket with unread input sends a reset, which can destroy the
// response before the client reads it.
const rstAvoidanceDelay = 500 * time.Millisecond

// closeWriteAndWait sends a FIN after what was written, then waits a
// moment before the caller closes the connection.
func (c *conn) closeWriteAndWait() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	t := time.NewTimer(rstAvoidanceDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done(): // the server closed the connection
	}
}

// run calls the stream handler sh, or else the handler h, turning a
// panic into a closed connection: after http.ErrAbortHandler what was
// written goes out as is (a chunked body without its last chunk reads as
// truncated), any other panic is logged.
func (c *conn) run(w *response, req *http.Request, h http.Handler, sh stream.Handler) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 16<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.log().Error("panic serving request", "remote", c.remoteAddr, "panic", fmt.Sprint(v), "stack", string(buf))
			}
			_ = c.bw.Flush()
			ok = false
		}
	}()
	if sh != nil {
		sh.ServeStream(w)
	} else {
		h.ServeHTTP(w, req)
	}
	return true
}

// optionsHandler answers "OPTIONS *" as net/http's server does.
var optionsHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header()["Content-Length"] = zero
	if r.ContentLength != 0 {
		// Read a little of the body, as net/http does, so the
		// connection may be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 256<<10+1))
	}
})
