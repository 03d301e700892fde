package h2client

import (
	"context"
	"io"
	"net/http"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
	streamapi "github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// stream is one attempt on a connection. Its fields are guarded by the
// connection's mu.
type stream struct {
	c   *conn
	id  uint32
	req *http.Request

	// headc is closed once the response head is in (resp) or the stream
	// failed (err).
	headc  chan struct{}
	headOK bool // headc is closed, or will be when the reader's held wake-ups are flushed
	// held: on the reader's list of wake-ups (conn.wakes), to close
	// headc (wakeHead) and wake body readers (wakeIn).
	held, wakeHead, wakeIn bool
	resp                   *http.Response
	err                    error
	// unprocessed: the server did not process the stream (GOAWAY above
	// it, REFUSED_STREAM before a response), so it may be sent again.
	unprocessed bool
	// stopCtx stops the watch on the request's context; ab, when the
	// context's SetAbort watches it instead, is that context.
	stopCtx func() bool
	ab      aborter

	// The request: its head until written, then its body queued for the
	// writer, within the windows the server granted.
	fields       []hpack.HeaderField
	endAfterHead bool
	headSent     bool
	body         io.ReadCloser
	// bodyStarted: the pump took the request body (its reads cannot be
	// replayed); once set with err, RoundTrip owns the body no more.
	bodyStarted bool
	pumpDone    bool
	out         []byte
	outOff      int
	endPending  bool
	trailers    []hpack.HeaderField
	sendWindow  int64
	sendClosed  bool
	queued      bool
	outCond     sync.Cond

	// The response body: data received and not yet read, the windows,
	// the content length declared (-1: none) and received, the
	// trailers.
	in              h2frame.BodyBuf
	inCond          sync.Cond
	recvWindow      int32
	recvUnacked     int32
	declLen, gotLen int64
	trailer         http.Header
	recvClosed      bool
	bodyGone        bool // the response body was closed
	removed         bool
}

// maxPending is how much request body a stream queues before its pump
// waits for the writer.
const maxPending = 64 << 10

// startStream opens a stream on a reserved slot: its head is queued for
// the writer with pre, the part of the body read already (all of it when
// end is set), and the rest of the body is pumped by a goroutine of its
// own. When no other goroutine is writing, the head (and pre) are
// written on the caller's goroutine, in one system call.
func (c *conn) startStream(req *http.Request, fields []hpack.HeaderField, body io.ReadCloser, pre []byte, end bool) *stream {
	s := &stream{
		c: c, req: req, fields: fields, body: body,
		headc:   make(chan struct{}),
		declLen: -1,
		out:     pre,
	}
	s.inCond.L = &c.mu
	s.outCond.L = &c.mu
	switch {
	case end:
		s.trailers = trailerFields(req.Trailer)
		s.endAfterHead = len(pre) == 0 && len(s.trailers) == 0
		s.endPending = !s.endAfterHead
	default:
		s.endAfterHead = body == nil
	}
	c.mu.Lock()
	if c.closing || c.goAway {
		// The connection ended between the reservation and now.
		s.unprocessed = true
		s.err = ErrConnClosed
		s.headOK = true
		close(s.headc)
		c.releaseLocked()
		c.mu.Unlock()
		return s
	}
	s.id = c.nextID
	c.nextID += 2
	s.recvWindow = c.streamWindow
	s.sendWindow = int64(c.peerInitWindow)
	c.streams[s.id] = s
	c.heads = append(c.heads, s)
	inline := !c.busy
	if !inline {
		c.signal()
	}
	c.mu.Unlock()
	if inline {
		c.writeInline()
	}
	if ctx := req.Context(); ctx != nil {
		s.watch(ctx)
	}
	if body != nil && !end {
		go s.pump()
	}
	return s
}

// prefetch reads what has arrived of a request body that can say so
// without waiting (streamapi.ReadyReader), at most one pump buffer: pre, and
// end when that is all of it.
func prefetch(rr streamapi.ReadyReader) (pre []byte, end bool, err error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	n := 0
	for n < len(buf) && !end {
		k, err := rr.ReadReady(buf[n:])
		n += k
		if err == io.EOF {
			end = true
		} else if err != nil {
			return nil, false, err
		} else if k == 0 {
			break // nothing more has arrived
		}
	}
	if n > 0 {
		pre = append([]byte(nil), buf[:n]...)
	}
	return pre, end, nil
}

// cancel resets the stream because the request's context ended.
func (s *stream) cancel(ctx context.Context) {
	c := s.c
	c.mu.Lock()
	s.resetLocked(http2.ErrCodeCancel, ctx.Err())
	c.mu.Unlock()
}

// aborter is a request context that runs a function when it is done
// without context.AfterFunc's allocations (the proxy's request context
// is one; h1client.Aborter is the same).
type aborter interface {
	SetAbort(f func()) bool
	ClearAbort() bool
}

// watch arranges for the stream to be reset once ctx is done: with the
// context's own SetAbort when it has one and it is free (one stream at a
// time holds it), else with context.AfterFunc. removeLocked stops it.
func (s *stream) watch(ctx context.Context) {
	c := s.c
	if ab, ok := ctx.(aborter); ok && ab.SetAbort(func() { s.cancel(ctx) }) {
		c.mu.Lock()
		if s.removed {
			c.mu.Unlock()
			ab.ClearAbort()
			return
		}
		s.ab = ab
		c.mu.Unlock()
		return
	}
	if ctx.Done() == nil {
		return
	}
	stop := context.AfterFunc(ctx, func() { s.cancel(ctx) })
	c.mu.Lock()
	if s.removed {
		c.mu.Unlock()
		stop()
	} else {
		s.stopCtx = stop
		c.mu.Unlock()
	}
}

// pump reads the request body into the stream's queue, waiting for the
// writer when maxPending is queued.
func (s *stream) pump() {
	c := s.c
	c.mu.Lock()
	if s.bodyStarted || s.err != nil {
		// The stream failed before the body was touched: RoundTrip
		// owns it.
		c.mu.Unlock()
		return
	}
	s.bodyStarted = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		s.pumpDone = true
		c.mu.Unlock()
		_ = s.body.Close()
	}()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := s.body.Read(buf)
		c.mu.Lock()
		if s.sendClosed || s.err != nil {
			c.mu.Unlock()
			return
		}
		if n > 0 {
			s.out = append(s.out, buf[:n]...)
			s.readyLocked()
		}
		switch {
		case err == io.EOF:
			s.trailers = trailerFields(s.req.Trailer)
			s.endPending = true
			s.readyLocked()
			c.mu.Unlock()
			return
		case err != nil:
			// The request body failed: its error is the attempt's, so
			// the router blames the client, not the upstream.
			s.resetLocked(http2.ErrCodeCancel, err)
			c.mu.Unlock()
			return
		}
		for len(s.out)-s.outOff >= maxPending && !s.sendClosed && s.err == nil {
			s.outCond.Wait()
		}
		c.mu.Unlock()
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// readyLocked puts the stream on the writer's list when it has
// something it may send.
func (s *stream) readyLocked() {
	if s.queued || s.err != nil || !s.headSent || s.sendClosed {
		return
	}
	if !s.endPending && (s.outOff >= len(s.out) || s.sendWindow <= 0) {
		return
	}
	s.queued = true
	s.c.ready = append(s.c.ready, s)
	s.c.signal()
}

// sentEndLocked: END_STREAM is written.
func (s *stream) sentEndLocked() {
	s.endPending = false
	s.trailers = nil
	s.sendClosed = true
	s.out, s.outOff = nil, 0
	s.outCond.Broadcast()
	if s.recvClosed {
		s.removeLocked()
	}
}

// endRecvLocked: the server's END_STREAM arrived. A request body still
// being sent is not wanted any more: the stream is reset with CANCEL,
// and what was received stays readable.
func (s *stream) endRecvLocked() {
	s.recvClosed = true
	s.wakeInLocked()
	if !s.sendClosed {
		if s.headSent {
			s.c.queueCtrl(ctrlFrame{kind: ctrlRST, stream: s.id, code: http2.ErrCodeCancel})
		}
		s.sendClosed = true
		s.out, s.outOff, s.endPending = nil, 0, false
		s.outCond.Broadcast()
	}
	s.removeLocked()
}

// resetLocked resets the stream with code (sent to the server if it saw
// the stream) and fails it with err.
func (s *stream) resetLocked(code http2.ErrCode, err error) {
	if s.err != nil {
		return
	}
	if s.removed {
		// Complete in both directions: only the reads not done yet
		// fail.
		s.err = err
		s.wakeInLocked()
		return
	}
	if s.headSent {
		s.c.queueCtrl(ctrlFrame{kind: ctrlRST, stream: s.id, code: code})
	}
	s.closeLocked(err)
}

// closeLocked ends the stream in both directions with err: the
// response's reads and RoundTrip's wait fail with it.
func (s *stream) closeLocked(err error) {
	if s.err == nil {
		s.err = err
	}
	s.recvClosed, s.sendClosed = true, true
	s.in.Reset()
	s.out, s.outOff, s.endPending, s.trailers = nil, 0, false, nil
	s.wakeInLocked()
	s.outCond.Broadcast()
	if !s.headOK {
		s.wakeHeadLocked()
	}
	s.removeLocked()
	if s.bodyStarted && !s.pumpDone && s.body != nil {
		// The pump may be blocked reading the request body: closing it
		// lets it go.
		go func() { _ = s.body.Close() }()
	}
}

// removeLocked forgets a stream closed in both directions.
func (s *stream) removeLocked() {
	if s.removed {
		return
	}
	s.removed = true
	c := s.c
	delete(c.streams, s.id)
	if s.stopCtx != nil {
		s.stopCtx()
	}
	if s.ab != nil {
		s.ab.ClearAbort()
		s.ab = nil
	}
	wasFull := uint32(c.used) >= c.maxStreams
	c.releaseLocked()
	if wasFull {
		go c.t.slotFreed(c.addr)
	}
}

// creditLocked gives n bytes of the stream's receive window back once
// enough has gathered to be worth a WINDOW_UPDATE.
func (s *stream) creditLocked(n int32) {
	if s.recvClosed || n <= 0 {
		return
	}
	s.recvUnacked += n
	w := s.c.streamWindow
	if s.recvUnacked >= w/4 || s.recvWindow < w/2 {
		s.c.queueCtrl(ctrlFrame{kind: ctrlWindowUpdate, stream: s.id, n: uint32(s.recvUnacked)})
		s.recvWindow += s.recvUnacked
		s.recvUnacked = 0
	}
}

// body is a response body: what the reader buffered for the stream.
type body struct{ s *stream }

func (b *body) Read(p []byte) (int, error) { return b.read(p, true) }

// ReadReady implements stream.ReadyReader: what the reader has buffered
// for the response, without waiting for more.
func (b *body) ReadReady(p []byte) (int, error) { return b.read(p, false) }

func (b *body) read(p []byte, wait bool) (int, error) {
	s := b.s
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for s.in.Len() == 0 {
		switch {
		case s.bodyGone:
			return 0, errBodyClosed
		case s.err != nil:
			return 0, s.err
		case s.recvClosed:
			if s.trailer != nil {
				s.resp.Trailer = s.trailer
				s.trailer = nil
			}
			return 0, io.EOF
		case !wait || len(p) == 0:
			return 0, nil
		}
		s.inCond.Wait()
	}
	n := s.in.Read(p)
	s.creditLocked(int32(n))
	return n, nil
}

// Close resets a stream whose response is not all received.
func (b *body) Close() error {
	s := b.s
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.bodyGone {
		return nil
	}
	s.bodyGone = true
	s.in.Reset()
	if !s.recvClosed {
		s.resetLocked(http2.ErrCodeCancel, errBodyClosed)
	}
	s.inCond.Broadcast()
	return nil
}
