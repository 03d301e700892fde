package h2client

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
)

const (
	initialWindow = 65535
	maxWindow     = 1<<31 - 1
	frameSize     = 16384
	readBufSize   = 16 << 10
	headerTable   = 4096
	// maxStreamID is the last client stream identifier; past it the
	// connection takes no new stream.
	maxStreamID = 1<<31 - 1
	// defaultMaxStreams is the streams a connection takes when the
	// server's SETTINGS does not bound them.
	defaultMaxStreams = 1000
	// maxCtrlQueued bounds the control frames queued for the writer: a
	// server that makes us answer (PING, SETTINGS) faster than it reads
	// loses the connection.
	maxCtrlQueued = 1000
	lingerPeriod  = time.Second
)

// conn is one HTTP/2 connection to an upstream. The reader goroutine
// (readLoop) owns fr; the writer (writeLoop) owns wfr, hw and wbuf;
// everything else is guarded by mu.
type conn struct {
	t    *Transport
	addr string
	nc   net.Conn
	br   *bufio.Reader
	fr   *http2.Framer
	hr   h2frame.HeaderReader // header blocks from fr
	tls  *tls.ConnectionState

	mu sync.Mutex
	// streams are the open streams; used counts them with the slots
	// reserved for streams about to open.
	streams map[uint32]*stream
	used    int
	nextID  uint32
	// goAway: the connection takes no new stream (GOAWAY received or
	// sent, identifiers exhausted); closing: it is ending.
	goAway, closing bool
	err             error // why it ended

	// The server's settings and the windows it granted.
	maxStreams     uint32
	peerMaxFrame   uint32
	peerInitWindow int32
	sendWindow     int64

	// The connection's receive window: what the server may still send,
	// and what arrived and was not yet granted back.
	recvWindow, recvUnacked int32
	streamWindow            int32

	// The write queue: control frames, then request heads in identifier
	// order, then streams with data, round-robin; blocked streams wait
	// for the connection window.
	ctrl    []ctrlFrame
	heads   []*stream
	ready   []*stream
	blocked []*stream
	wake    chan struct{}
	idle    *time.Timer

	// holdWakes: the reader is processing frames that arrived together;
	// the streams they wake (wakes) are woken once it has processed them
	// all (flushWakes), so that a response's head, data and trailers
	// wake the goroutine reading it once.
	holdWakes bool
	wakes     []*stream

	// acks are PING acknowledgements that wait for the next write, or
	// h2frame.AckDelay.
	acks h2frame.PingAcks

	// busy: a goroutine (the writer, or a request's in writeInline) is
	// encoding into wbuf and writing it; the rest wait for it.
	busy bool

	// Owned by the goroutine that set busy.
	wbuf  bytes.Buffer
	wfr   *http2.Framer
	hw    *h2frame.HeaderWriter
	wdone chan struct{}
	lastW time.Time
}

type ctrlFrame struct {
	kind   ctrlKind
	stream uint32
	code   http2.ErrCode
	n      uint32
	ping   [8]byte
}

type ctrlKind uint8

const (
	ctrlSettingsAck ctrlKind = iota
	ctrlPingAck
	ctrlWindowUpdate
	ctrlRST
	ctrlGoAway
	ctrlTableSize
)

// newConn starts HTTP/2 on nc: the preface and our SETTINGS, then the
// server's first SETTINGS read here, so the stream limit is known before
// the first stream; then the reader and writer goroutines.
func newConn(t *Transport, addr string, nc net.Conn) (*conn, error) {
	c := &conn{
		t: t, addr: addr, nc: nc,
		streams:        make(map[uint32]*stream),
		nextID:         1,
		maxStreams:     defaultMaxStreams,
		peerMaxFrame:   frameSize,
		peerInitWindow: initialWindow,
		sendWindow:     initialWindow,
		recvWindow:     t.connWindow(),
		streamWindow:   t.streamWindow(),
		wake:           make(chan struct{}, 1),
		wdone:          make(chan struct{}),
	}
	c.acks.Init(&c.mu, c.wakeForAcks)
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		cs := tc.ConnectionState()
		c.tls = &cs
	}
	c.br = bufio.NewReaderSize(nc, readBufSize)
	c.fr = http2.NewFramer(nil, c.br)
	c.hr.Init(hpack.NewDecoder(headerTable, nil), t.maxHeaderBytes())
	c.fr.SetMaxReadFrameSize(frameSize)
	// A DATA frame is done with before the next is read (its data is
	// copied out), so one frame value serves them all.
	c.fr.SetReuseFrames()
	c.wfr = http2.NewFramer(&c.wbuf, nil)
	c.hw = h2frame.NewHeaderWriter()

	deadline := time.Now().Add(DefaultSettingsTimeout)
	_ = nc.SetDeadline(deadline)
	c.wbuf.WriteString(http2.ClientPreface)
	_ = c.wfr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(c.streamWindow)},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: t.maxHeaderBytes()},
	)
	if extra := c.recvWindow - initialWindow; extra > 0 {
		_ = c.wfr.WriteWindowUpdate(0, uint32(extra))
	}
	if _, err := nc.Write(c.wbuf.Bytes()); err != nil {
		return nil, fmt.Errorf("write preface: %w", err)
	}
	c.wbuf.Reset()
	f, err := c.hr.ReadFrame(c.fr)
	if err != nil {
		return nil, fmt.Errorf("read the server's SETTINGS (is it HTTP/2?): %w", err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return nil, errors.New("the server's first frame is not SETTINGS")
	}
	c.mu.Lock()
	err = c.onSettings(sf)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	go c.writeLoop()
	go c.readLoop()
	return c, nil
}

// reserve takes a stream slot, if the connection has one.
func (c *conn) reserve() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goAway || c.closing || uint32(c.used) >= c.maxStreams || c.nextID > maxStreamID {
		return false
	}
	c.used++
	if c.idle != nil {
		c.idle.Stop()
	}
	return true
}

// releaseLocked gives a stream slot back.
func (c *conn) releaseLocked() {
	c.used--
	if c.goAway && c.used == 0 {
		c.closeLocked(nil)
		return
	}
	c.armIdleLocked()
}

func (c *conn) armIdleLocked() {
	if c.used > 0 || c.closing || c.t.IdleConnTimeout <= 0 {
		return
	}
	if c.idle == nil {
		c.idle = time.AfterFunc(c.t.IdleConnTimeout, c.closeIfIdle)
		return
	}
	c.idle.Reset(c.t.IdleConnTimeout)
}

// closeIfIdle closes the connection if no stream uses it.
func (c *conn) closeIfIdle() {
	c.mu.Lock()
	if c.used > 0 || c.closing {
		c.mu.Unlock()
		return
	}
	c.goAway = true
	c.queueCtrl(ctrlFrame{kind: ctrlGoAway, code: http2.ErrCodeNo})
	c.closeLocked(nil)
	c.mu.Unlock()
	c.t.removeConn(c)
}

// closeLocked ends the connection: the writer sends what is queued and
// closes it, which ends the reader.
func (c *conn) closeLocked(err error) {
	if c.closing {
		return
	}
	c.closing, c.goAway = true, true
	if c.err == nil {
		c.err = err
	}
	if c.idle != nil {
		c.idle.Stop()
	}
	c.signal()
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// wakeForAcks wakes the writer for PING acknowledgements that waited
// h2frame.AckDelay (h2frame.PingAcks, under mu).
func (c *conn) wakeForAcks() {
	if !c.closing {
		c.signal()
	}
}

func (c *conn) queueCtrl(f ctrlFrame) {
	if len(c.ctrl)+c.acks.Len() >= maxCtrlQueued && f.kind != ctrlGoAway {
		c.connErrorLocked(http2.ErrCodeEnhanceYourCalm, "too many control frames queued")
		return
	}
	c.ctrl = append(c.ctrl, f)
	c.signal()
}

// connErrorLocked ends the connection for a protocol error of the
// server's: GOAWAY with code, and every stream fails.
func (c *conn) connErrorLocked(code http2.ErrCode, why string) error {
	err := fmt.Errorf("h2client: upstream connection error %v: %s", code, why)
	if c.closing {
		return err
	}
	c.ctrl = append(c.ctrl, ctrlFrame{kind: ctrlGoAway, stream: 0, code: code})
	c.closeLocked(err)
	return err
}

// readLoop reads and processes frames until the connection ends, then
// fails the streams left.
func (c *conn) readLoop() {
	var err error
	for {
		var f http2.Frame
		f, err = c.hr.ReadFrame(c.fr)
		if err != nil {
			if err = c.readError(err); err != nil {
				break
			}
		} else if err = c.process(f); err != nil {
			break
		}
	}
	c.finish(err)
}

// endFrameLocked ends the processing of a frame: the wake-ups it held
// are let go unless another whole frame is buffered (and fewer than
// maxHeldWakes streams wait), so that none waits while the reader does.
func (c *conn) endFrameLocked() {
	if len(c.wakes) >= maxHeldWakes || !c.frameBuffered() {
		c.flushWakesLocked()
	}
}

// maxHeldWakes bounds the streams whose wake-up waits for the end of the
// frames at hand.
const maxHeldWakes = 16

// frameBuffered reports whether a whole frame is buffered, one the
// reader processes without waiting for the server (not a header block
// that CONTINUATION frames go on).
func (c *conn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < 9 {
		return false
	}
	h, _ := c.br.Peek(9)
	return h2frame.Whole(h, n)
}

// wakeHeadLocked wakes RoundTrip: the stream's head is in, or it failed.
func (s *stream) wakeHeadLocked() {
	s.headOK = true
	if s.c.holdWakes {
		s.wakeHead = true
		s.c.heldLocked(s)
		return
	}
	close(s.headc)
}

// wakeInLocked wakes a reader of the response body: data, the end or an
// error is in.
func (s *stream) wakeInLocked() {
	if s.c.holdWakes {
		s.wakeIn = true
		s.c.heldLocked(s)
		return
	}
	s.inCond.Broadcast()
}

func (c *conn) heldLocked(s *stream) {
	if !s.held {
		s.held = true
		c.wakes = append(c.wakes, s)
	}
}

// flushWakesLocked wakes what the frames processed since the last call
// woke, and stops holding wake-ups.
func (c *conn) flushWakesLocked() {
	c.holdWakes = false
	for i, s := range c.wakes {
		if s.wakeHead {
			close(s.headc)
		}
		if s.wakeIn {
			s.inCond.Broadcast()
		}
		s.held, s.wakeHead, s.wakeIn = false, false, false
		c.wakes[i] = nil
	}
	c.wakes = c.wakes[:0]
}

// readError handles what the framer refused: a stream error resets that
// stream (nil: reading goes on); anything else ends the connection.
func (c *conn) readError(err error) error {
	var se http2.StreamError
	var ce http2.ConnectionError
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holdWakes = true
	defer c.endFrameLocked()
	switch {
	case errors.As(err, &se):
		why := "malformed header block"
		if se.Cause != nil {
			why = se.Cause.Error()
		}
		if s := c.streams[se.StreamID]; s != nil {
			s.resetLocked(se.Code, &StreamError{Code: uint32(se.Code), Reason: why})
		} else {
			c.queueCtrl(ctrlFrame{kind: ctrlRST, stream: se.StreamID, code: se.Code})
		}
		return nil
	case errors.As(err, &ce):
		why := "framing error"
		if d := c.hr.ErrorDetail(c.fr); d != nil {
			why = d.Error()
		}
		return c.connErrorLocked(http2.ErrCode(ce), why)
	case errors.Is(err, http2.ErrFrameTooLarge):
		return c.connErrorLocked(http2.ErrCodeFrameSize, "frame too large")
	}
	return err
}

// process handles one frame; an error ends the connection.
func (c *conn) process(f http2.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holdWakes = true
	defer c.endFrameLocked()
	if c.closing && len(c.streams) == 0 {
		return ErrConnClosed
	}
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		if s := c.streams[f.StreamID]; s != nil {
			s.unprocessed = f.ErrCode == http2.ErrCodeRefusedStream && s.resp == nil
			s.closeLocked(&StreamError{Code: uint32(f.ErrCode)})
		} else if c.idleStream(f.StreamID) {
			return c.connErrorLocked(http2.ErrCodeProtocol, "RST_STREAM on an idle stream")
		}
	case *http2.PingFrame:
		// The acknowledgement waits for the next write (h2frame.PingAcks);
		// past the control-frame limit (acknowledgements waiting count
		// with the control frames queued), the flood answer.
		if !f.IsAck() && !c.acks.Add(f.Data, len(c.ctrl), maxCtrlQueued) {
			return c.connErrorLocked(http2.ErrCodeEnhanceYourCalm, "too many control frames queued")
		}
	case *http2.GoAwayFrame:
		c.onGoAway(f)
	case *http2.PushPromiseFrame:
		return c.connErrorLocked(http2.ErrCodeProtocol, "PUSH_PROMISE though push is disabled")
	}
	return nil
}

// idleStream says whether id names a stream not opened yet.
func (c *conn) idleStream(id uint32) bool {
	return id != 0 && (id%2 == 0 || id >= c.nextID)
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	for i := range f.NumSettings() {
		s := f.Setting(i)
		if err := s.Valid(); err != nil {
			return c.connErrorLocked(http2.ErrCodeProtocol, "invalid SETTINGS value: "+err.Error())
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.queueCtrl(ctrlFrame{kind: ctrlTableSize, n: s.Val})
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(c.peerInitWindow)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					return c.connErrorLocked(http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window")
				}
				if delta > 0 {
					st.readyLocked()
				}
			}
			c.peerInitWindow = int32(s.Val)
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = s.Val
		case http2.SettingMaxConcurrentStreams:
			grew := s.Val > c.maxStreams
			c.maxStreams = s.Val
			if grew {
				// Waiting attempts may fit now; the pool's lock is not
				// taken under ours.
				go c.t.slotFreed(c.addr)
			}
		}
	}
	c.queueCtrl(ctrlFrame{kind: ctrlSettingsAck})
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > maxWindow {
			return c.connErrorLocked(http2.ErrCodeFlowControl, "connection window over 2^31-1")
		}
		for _, s := range c.blocked {
			s.readyLocked()
		}
		c.blocked = c.blocked[:0]
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		if c.idleStream(f.StreamID) {
			return c.connErrorLocked(http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream")
		}
		return nil
	}
	s.sendWindow += int64(f.Increment)
	if s.sendWindow > maxWindow {
		s.resetLocked(http2.ErrCodeFlowControl, &StreamError{Code: uint32(http2.ErrCodeFlowControl), Reason: "stream window over 2^31-1"})
		return nil
	}
	s.readyLocked()
	return nil
}

// onGoAway: no new stream on this connection; the streams the server
// did not process (above its last stream identifier) fail as
// unprocessed, which RoundTrip retries elsewhere when it can.
func (c *conn) onGoAway(f *http2.GoAwayFrame) {
	if !c.goAway {
		c.goAway = true
		go c.t.removeConn(c)
	}
	for id, s := range c.streams {
		if id > f.LastStreamID {
			s.unprocessed = true
			s.closeLocked(&StreamError{Code: uint32(http2.ErrCodeRefusedStream), Reason: fmt.Sprintf("GOAWAY (%v) with last stream %d: not processed", f.ErrCode, f.LastStreamID)})
		}
	}
	for _, s := range c.heads {
		if s.err == nil {
			s.unprocessed = true
			s.closeLocked(&StreamError{Code: uint32(http2.ErrCodeRefusedStream), Reason: "GOAWAY before the request was sent"})
		}
	}
	if c.used == 0 {
		c.closeLocked(nil)
	}
}

func (c *conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int32(f.Length)
	if c.idleStream(id) {
		return c.connErrorLocked(http2.ErrCodeProtocol, "DATA on an idle stream")
	}
	if n > c.recvWindow {
		return c.connErrorLocked(http2.ErrCodeFlowControl, "DATA over the connection window")
	}
	// The connection window is granted back as data arrives: the
	// stream windows bound what is buffered.
	c.recvWindow -= n
	c.recvUnacked += n
	if full := c.t.connWindow(); c.recvUnacked >= full/4 {
		c.queueCtrl(ctrlFrame{kind: ctrlWindowUpdate, n: uint32(c.recvUnacked)})
		c.recvWindow += c.recvUnacked
		c.recvUnacked = 0
	}
	s := c.streams[id]
	if s == nil || s.recvClosed {
		if s != nil {
			s.resetLocked(http2.ErrCodeStreamClosed, &StreamError{Code: uint32(http2.ErrCodeStreamClosed), Reason: "DATA after END_STREAM"})
		}
		return nil
	}
	if s.resp == nil {
		s.resetLocked(http2.ErrCodeProtocol, &StreamError{Code: uint32(http2.ErrCodeProtocol), Reason: "DATA before the response head"})
		return nil
	}
	if n > s.recvWindow {
		s.resetLocked(http2.ErrCodeFlowControl, &StreamError{Code: uint32(http2.ErrCodeFlowControl), Reason: "DATA over the stream window"})
		return nil
	}
	s.recvWindow -= n
	data := f.Data()
	if pad := n - int32(len(data)); pad > 0 {
		s.creditLocked(pad)
	}
	s.gotLen += int64(len(data))
	if s.declLen >= 0 && s.gotLen > s.declLen {
		s.resetLocked(http2.ErrCodeProtocol, &StreamError{Code: uint32(http2.ErrCodeProtocol), Reason: "body longer than its content-length"})
		return nil
	}
	if len(data) > 0 {
		if s.bodyGone {
			s.creditLocked(int32(len(data)))
		} else {
			s.in.Append(data)
			s.wakeInLocked()
		}
	}
	if f.StreamEnded() {
		if s.declLen >= 0 && s.gotLen != s.declLen {
			s.resetLocked(http2.ErrCodeProtocol, &StreamError{Code: uint32(http2.ErrCodeProtocol), Reason: "body shorter than its content-length"})
			return nil
		}
		s.endRecvLocked()
	}
	return nil
}

func (c *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	s := c.streams[f.StreamID]
	if s == nil {
		if c.idleStream(f.StreamID) {
			return c.connErrorLocked(http2.ErrCodeProtocol, "HEADERS on an idle stream")
		}
		return nil // a stream we reset: ignored
	}
	if s.recvClosed {
		s.resetLocked(http2.ErrCodeStreamClosed, &StreamError{Code: uint32(http2.ErrCodeStreamClosed), Reason: "HEADERS after END_STREAM"})
		return nil
	}
	if f.Truncated {
		s.resetLocked(http2.ErrCodeProtocol, &StreamError{Code: uint32(http2.ErrCodeProtocol), Reason: fmt.Sprintf("response header list over %d bytes", c.t.maxHeaderBytes())})
		return nil
	}
	if s.resp != nil {
		return s.onTrailersLocked(f)
	}
	h, err := parseResponseHead(f.Fields, f.StreamEnded())
	if err != nil {
		s.resetLocked(http2.ErrCodeProtocol, &StreamError{Code: uint32(http2.ErrCodeProtocol), Reason: err.Error()})
		return nil
	}
	if h.status < 200 {
		return nil // an interim response: the final one follows
	}
	s.setResponseLocked(h, f.StreamEnded())
	return nil
}

// finish ends the connection once reading stopped: the streams left
// fail, the writer flushes and closes it, and the pool forgets it.
func (c *conn) finish(err error) {
	c.mu.Lock()
	c.flushWakesLocked()
	if c.err == nil {
		c.err = err
	}
	cause := ErrConnClosed
	if c.err != nil && !errors.Is(c.err, ErrConnClosed) {
		cause = fmt.Errorf("%w: %w", ErrConnClosed, c.err)
	}
	for _, s := range c.streams {
		s.closeLocked(cause)
	}
	for _, s := range c.heads {
		s.closeLocked(cause)
	}
	c.heads = nil
	c.closeLocked(err)
	c.mu.Unlock()
	t := time.NewTimer(lingerPeriod)
	select {
	case <-c.wdone:
	case <-t.C:
	}
	t.Stop()
	_ = c.nc.Close()
	<-c.wdone
	c.t.removeConn(c)
}

// errCodeName names an HTTP/2 error code.
func errCodeName(code uint32) string { return http2.ErrCode(code).String() }
