package h2server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlens/meshlens/internal/proxy/codec/h1lex"
	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
	streamapi "github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// stream is one HTTP/2 stream. Its fields are guarded by the
// connection's mu, except those the handler alone uses (rw's).
type stream struct {
	c  *conn
	id uint32

	ctx    context.Context
	cancel context.CancelFunc
	// cl is told when ctx is cancelled while the handler runs
	// (streamapi.CancelNotifier).
	cl streamapi.CancelListener
	// rw is the handler's response writer, allocated with the stream.
	rw responseWriter

	// recvClosed: the client sent END_STREAM (or the stream is reset);
	// sendClosed: END_STREAM was queued (or the stream is reset).
	recvClosed, sendClosed bool
	// err is why the stream ended early (a reset), nil while it lives.
	err error

	// The request body: data received and not yet read, the content
	// length declared (-1: none) and received, the trailers.
	in              h2frame.BodyBuf
	inCond          sync.Cond
	declLen, gotLen int64
	trailer         http.Header
	recvWindow      int32
	recvUnacked     int32
	bodyGone        bool // the handler returned: data is dropped
	hasBody         bool
	handlerDone     bool
	req             *http.Request
	// malformed: the request ended short of its content-length; its
	// body fails with errShortBody, and the stream is reset with
	// PROTOCOL_ERROR once the handler answered (RFC 9113 8.1.1 lets a
	// server answer a malformed request before it resets the stream).
	malformed bool
	// The read deadline of the body (Downstream.SetReadDeadline): its
	// timer, which sets rdExpired unless the deadline moved (rdGen).
	rdTimer   *time.Timer
	rdGen     uint64
	rdExpired bool

	// The response, queued for the writer: header blocks (1xx, then
	// the final one) as fields to encode, the body data not yet sent,
	// the trailers, and whether END_STREAM follows them.
	heads      []headBlock
	out        h2frame.BodyBuf
	trailers   []hpack.HeaderField
	endPending bool
	sendWindow int64
	queued     bool // in the connection's ready list
	outCond    sync.Cond
}

type headBlock struct {
	fields []hpack.HeaderField
	end    bool // END_STREAM on this block (a response without body)
}

// maxPending is how much response data a handler may queue before its
// writes wait for the writer.
const maxPending = 64 << 10

func (c *conn) newStream(id uint32, bodyFollows bool) *stream {
	s := &stream{
		c: c, id: id, declLen: -1,
		recvClosed: !bodyFollows, hasBody: bodyFollows,
		recvWindow: c.streamWindow,
		sendWindow: int64(c.peerInitWindow),
	}
	s.inCond.L = &c.mu
	s.outCond.L = &c.mu
	if c.streams == nil {
		c.streams = make(map[uint32]*stream)
	}
	c.streams[id] = s
	c.st.StreamsActive.Inc()
	c.armIdleLocked()
	return s
}

// errShortBody fails the body of a request that ended short of its
// content-length.
var errShortBody = errors.New("h2server: request body shorter than its content-length")

// shortBodyLocked: the client ended the request (END_STREAM) short of
// its content-length.
func (s *stream) shortBodyLocked() {
	s.c.st.RxMessagingError.Inc()
	s.malformed = true
	s.inCond.Broadcast()
}

// removeLocked forgets a stream closed in both directions.
func (s *stream) removeLocked() {
	c := s.c
	if c.streams[s.id] != s {
		return
	}
	delete(c.streams, s.id)
	if c.parked && len(c.streams) == 0 {
		c.streams = nil
	}
	c.st.StreamsActive.Dec()
	if c.goAway && len(c.streams) == 0 && c.running == 0 {
		c.cleanup = true
		c.closeLocked()
	}
	c.armIdleLocked()
}

// endRecvLocked: the client's END_STREAM arrived.
func (s *stream) endRecvLocked() {
	s.recvClosed = true
	s.inCond.Broadcast()
	if s.sendClosed {
		s.removeLocked()
	}
}

// resetLocked resets the stream with code (sent to the client) and fails
// its body and writes with err.
func (s *stream) resetLocked(code http2.ErrCode, err error) {
	if s.err == nil {
		s.c.queueRST(s.id, code)
	}
	s.closeLocked(err)
}

// closeLocked ends the stream in both directions: the handler's reads
// and writes fail with err and its context is cancelled.
func (s *stream) closeLocked(err error) {
	if s.err == nil {
		s.err = err
	}
	s.recvClosed, s.sendClosed = true, true
	s.heads, s.trailers, s.endPending = nil, nil, false
	if s.in.Len() > 0 {
		n := int32(s.in.Len())
		s.in.Reset()
		s.c.consumedLocked(nil, n)
	}
	s.out.Reset()
	s.inCond.Broadcast()
	s.outCond.Broadcast()
	if s.cancel != nil {
		s.cancel()
	}
	if l := s.cl; l != nil {
		// Told on a goroutine of its own, as context.AfterFunc would
		// tell it, so that nothing it does runs under mu. A stream
		// that ends as it should is removed without closeLocked: this
		// is for resets and connections that end.
		s.cl = nil
		go l.DownstreamCancelled()
	}
	s.removeLocked()
}

// readyLocked puts the stream on the writer's list when it has
// something it may send.
func (s *stream) readyLocked() {
	if s.queued || s.err != nil {
		return
	}
	if len(s.heads) == 0 && !s.endPending && (s.out.Len() == 0 || s.sendWindow <= 0) {
		return
	}
	s.queued = true
	s.c.ready = append(s.c.ready, s)
	s.c.signal()
}

func (s *stream) setTrailers(fields []hpack.HeaderField) error {
	if s.trailer == nil {
		s.trailer = make(http.Header, len(fields))
	}
	for _, f := range fields {
		k := h2frame.CanonicalName(f.Name)
		if !httpguts.ValidTrailerHeader(k) {
			return fmt.Errorf("trailer field %q is not allowed", f.Name)
		}
		s.trailer[k] = append(s.trailer[k], f.Value)
	}
	return nil
}

// localReply answers the stream with status and no body, without a
// handler (a request the codec refuses on its own).
func (s *stream) localReply(status int) {
	s.heads = append(s.heads, headBlock{fields: []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(status)}}, end: true})
	s.sendClosed = true
	s.bodyGone = true
	s.readyLocked()
	if s.recvClosed {
		s.removeLocked()
	}
}

// pendingStart is a stream whose handler is about to start.
type pendingStart struct {
	s   *stream
	req *http.Request
}

// maxPendingStarts bounds the streams whose handlers wait for the end of
// the frames at hand.
const maxPendingStarts = 16

// startPending starts the handlers of the streams whose heads were read.
// The reader starts them once it has processed the frames that had
// arrived with their heads (the bytes it holds make no whole frame), so
// that a request whose body came with its head (a unary gRPC call) is
// whole when its handler looks: the upstream codec then sends it with
// its head in one write (stream.ReadyReader).
func (c *conn) startPending() {
	c.mu.Lock()
	for i, p := range c.starts {
		c.startHandler(p.s, p.req)
		if p.s.err != nil {
			// Reset meanwhile: the handler starts cancelled, as it
			// would have been had it started before the reset.
			p.s.cancel()
		}
		c.starts[i] = pendingStart{}
	}
	c.starts = c.starts[:0]
	c.mu.Unlock()
}

// startHandler runs the handler of a new stream on a worker (workers.go).
func (c *conn) startHandler(s *stream, req *http.Request) {
	s.ctx, s.cancel = context.WithCancel(c.ctx)
	req = req.WithContext(s.ctx)
	s.req = req
	if s.hasBody {
		req.Body = &body{s: s}
	} else {
		req.Body = http.NoBody
	}
	c.running++
	c.armIdleLocked()
	c.handlers.Add(1)
	rw := &s.rw
	*rw = responseWriter{s: s, req: req, hdr: make(http.Header)}
	c.s.workers.Run(handlerJob{c: c, s: s, rw: rw, req: req})
}

func (c *conn) runHandler(s *stream, rw *responseWriter, req *http.Request) {
	defer c.handlers.Done()
	aborted := true
	defer func() {
		if aborted {
			e := recover()
			if e != nil && e != http.ErrAbortHandler {
				buf := make([]byte, 16<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.log().Error("http2 handler panic", "remote", c.remote, "stream", s.id, "panic", fmt.Sprint(e), "stack", string(buf))
			}
		}
		c.mu.Lock()
		c.holdSignal = true
		switch {
		case aborted:
			s.resetLocked(http2.ErrCodeInternal, errStreamReset)
		case rw.reset != 0:
			s.resetLocked(rw.reset, errStreamReset)
		default:
			rw.finishLocked()
		}
		if s.rdTimer != nil {
			s.rdTimer.Stop()
		}
		s.handlerDone = true
		s.bodyGone = true
		if n := int32(s.in.Len()); n > 0 && s.err == nil {
			s.in.Reset()
			c.consumedLocked(s, n)
		}
		c.running--
		if c.goAway && len(c.streams) == 0 && c.running == 0 {
			c.cleanup = true
			c.closeLocked()
		}
		c.armIdleLocked()
		c.holdSignal = false
		inline := false
		if c.held {
			c.held = false
			if c.writing || c.closing {
				c.signal()
			} else {
				c.writing, inline = true, true
			}
		}
		s.cl = nil
		c.mu.Unlock()
		s.cancel()
		if inline {
			// The end of the response goes out from here: no writer
			// goroutine to start for it.
			c.writeInline()
		}
	}()
	if c.s.Streams != nil {
		c.s.Streams.ServeStream(rw)
	} else {
		c.s.Handler.ServeHTTP(rw, req)
	}
	aborted = false
}

// body is a request body: what the reader buffered for the stream.
type body struct {
	s *stream
}

func (b *body) Read(p []byte) (int, error) { return b.read(p, true) }

// ReadReady implements stream.ReadyReader: what the reader has buffered
// for the stream, without waiting for more.
func (b *body) ReadReady(p []byte) (int, error) { return b.read(p, false) }

func (b *body) read(p []byte, wait bool) (int, error) {
	s := b.s
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for s.in.Len() == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.rdExpired {
			return 0, os.ErrDeadlineExceeded
		}
		if s.malformed {
			return 0, errShortBody
		}
		if s.recvClosed {
			if s.trailer != nil {
				if s.req.Trailer == nil {
					s.req.Trailer = make(http.Header, len(s.trailer))
				}
				for k, v := range s.trailer {
					s.req.Trailer[k] = v
				}
				s.trailer = nil
			}
			return 0, io.EOF
		}
		if !wait || len(p) == 0 {
			return 0, nil
		}
		s.inCond.Wait()
	}
	n := s.in.Read(p)
	c.consumedLocked(s, int32(n))
	return n, nil
}

func (b *body) Close() error {
	s := b.s
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := int32(s.in.Len()); n > 0 && s.err == nil {
		s.in.Reset()
		c.consumedLocked(s, n)
	}
	s.bodyGone = true
	return nil
}

// newRequest builds the request of a new stream from its header block,
// or says why the block is malformed (RFC 9113 8.2 and 8.3). It is long
// on purpose: one pass over the fields, each rule of the RFC a short
// commented check in the order the RFC gives them.
func (c *conn) newRequest(f *http2.MetaHeadersFrame) (*http.Request, int64, error) {
	var method, scheme, path, authority string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":path":
			path = hf.Value
		case ":authority":
			authority = hf.Value
		default:
			return nil, 0, fmt.Errorf("pseudo-header field %s is not allowed in a request", hf.Name)
		}
	}
	if method == "" {
		return nil, 0, errors.New(":method is missing")
	}
	connect := method == http.MethodConnect
	if connect {
		if scheme != "" || path != "" || authority == "" {
			return nil, 0, errors.New("CONNECT needs :authority and no :scheme or :path")
		}
	} else if scheme == "" || path == "" {
		return nil, 0, errors.New(":scheme or :path is missing")
	}
	regular := f.RegularFields()
	hdr := make(http.Header, len(regular))
	vals, nvals := make([]string, len(regular)), 0
	declLen := int64(-1)
	var cookies []string
	for _, hf := range regular {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return nil, 0, fmt.Errorf("connection-specific header field %s", hf.Name)
		case "te":
			if hf.Value != "trailers" {
				return nil, 0, errors.New("te other than trailers")
			}
		case "content-length":
			n, err := strconv.ParseUint(hf.Value, 10, 63)
			if err != nil || declLen >= 0 && int64(n) != declLen {
				return nil, 0, fmt.Errorf("content-length %q", hf.Value)
			}
			declLen = int64(n)
		case "cookie":
			// Split cookie fields are joined (RFC 9113 8.2.3).
			cookies = append(cookies, hf.Value)
			continue
		}
		nvals = h2frame.AddValue(hdr, vals, nvals, h2frame.CanonicalName(hf.Name), hf.Value)
	}
	if len(cookies) > 0 {
		hdr["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if authority == "" {
		authority = hdr.Get("Host")
	}
	// The request and its URL in one allocation.
	ru := new(requestAndURL)
	req := &ru.req
	*req = http.Request{
		Method:     method,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     hdr,
		Host:       authority,
		RemoteAddr: c.remote,
		RequestURI: path,
		TLS:        c.tls,
	}
	if connect {
		ru.url = url.URL{Host: authority}
		req.URL = &ru.url
		req.RequestURI = authority
	} else if h1lex.PlainPath(path) {
		ru.url = url.URL{Path: path}
		req.URL = &ru.url
	} else {
		u, err := parsePath(path, method)
		if err != nil {
			return nil, 0, err
		}
		req.URL = u
	}
	if f.StreamEnded() {
		req.ContentLength = 0
	} else {
		req.ContentLength = declLen
	}
	if v := hdr["Trailer"]; len(v) > 0 {
		req.Trailer = make(http.Header)
		for _, line := range v {
			for _, k := range strings.Split(line, ",") {
				if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" {
					req.Trailer[k] = nil
				}
			}
		}
	}
	return req, declLen, nil
}

// requestAndURL holds a request and its URL, allocated together.
type requestAndURL struct {
	req http.Request
	url url.URL
}

// parsePath parses a request's :path: an origin form, or "*" for
// OPTIONS.
func parsePath(path, method string) (*url.URL, error) {
	if path == "*" && method == http.MethodOptions {
		return &url.URL{Path: "*"}, nil
	}
	if path[0] != '/' {
		return nil, fmt.Errorf(":path %q is not an origin form", path)
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, fmt.Errorf(":path: %w", err)
	}
	return u, nil
}
