package h2server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
	"github.com/meshlens/meshlens/internal/proxy/idlewait"
)

const (
	// initialWindow is RFC 9113's initial window, which holds until
	// SETTINGS change it.
	initialWindow = 65535
	maxWindow     = 1<<31 - 1
	// frameSize is the MAX_FRAME_SIZE both ends start with; the server
	// never advertises a larger one.
	frameSize    = 16384
	readBufSize  = 16 << 10
	headerTable  = 4096
	lingerPeriod = time.Second
	lingerBytes  = 64 << 10
	// maxCtrlQueued bounds the control frames (PING and SETTINGS
	// acknowledgements, resets, window updates) queued and not yet
	// written: a client that sends them without reading the answers
	// loses its connection (Envoy's max_outbound_control_frames).
	maxCtrlQueued = 1000
	// maxEmptyData is how many DATA frames without payload nor
	// END_STREAM may come in a row (Envoy's
	// max_consecutive_inbound_frames_with_empty_payload).
	maxEmptyData = 1
)

var clientPreface = []byte(http2.ClientPreface)

// errClientReset, errConnClosed: why a stream's body or response failed.
var (
	errClientReset = errors.New("h2server: stream reset by the client")
	errStreamReset = errors.New("h2server: stream reset")
	errConnClosed  = errors.New("h2server: connection closed")
)

// conn is one HTTP/2 connection. The reader goroutine (serve) owns the
// framer it reads with; the writer goroutine (writeLoop) owns the framer
// it writes with and the HPACK encoder; everything else is guarded by mu.
type conn struct {
	s   *Server
	rwc net.Conn
	br  connReader
	fr  *http2.Framer
	hr  h2frame.HeaderReader // header blocks from fr
	// ctx is ConnContext's, the parent of every stream's context. It
	// is not cancelled with the connection: the connection's end
	// cancels each stream it closes (closeLocked), so a stream's
	// context is not registered with the connection's, which would
	// keep that registration's map for as long as the connection is
	// idle.
	ctx    context.Context
	tls    *tls.ConnectionState
	remote string
	st     *Stats
	// handlers counts the running handlers; ServeConn waits for them.
	handlers sync.WaitGroup
	// detached: served by ServeConnDetached, whose done is called once
	// the connection has ended.
	detached bool
	// frBig: the read framer read a payload over bigFrame bytes.
	frBig bool
	done  func()

	mu sync.Mutex
	// streams are the open streams (not closed in both directions);
	// running the handlers still running (a stream reset by the client
	// is closed but its handler may not have returned yet).
	streams map[uint32]*stream
	running int
	// maxID is the highest stream identifier the client used: streams
	// at or under it that are not in streams are closed.
	maxID uint32
	// goAway: no new stream is accepted (GOAWAY sent or received).
	goAway bool
	// closing: the connection is ending: the writer writes what is
	// queued and closes it; closed: the writer is done.
	closing, closed bool

	// The peer's settings and the windows it granted.
	peerMaxFrame   uint32
	peerInitWindow int32
	sendWindow     int64 // the connection's send window

	// emptyData counts DATA frames in a row without payload.
	emptyData int

	// The connection's receive window: how much more the client may
	// send, and how much of it was consumed and not yet given back.
	recvWindow, recvUnacked int32
	streamWindow            int32 // the stream receive window (our SETTINGS)

	// The write queue: control frames in order, then streams with data
	// or headers to send, round-robin.
	ctrl  []ctrlFrame
	ready []*stream
	// acks are PING acknowledgements that wait for the next write, or
	// h2frame.AckDelay.
	acks h2frame.PingAcks
	// starts are the streams whose head was read and whose handler
	// waits for the end of the frames at hand (startPending).
	starts []pendingStart
	// writing: a writer runs: the writer goroutine (writeLoop), or a
	// handler's goroutine writing its response as it ends (writeInline).
	writing bool
	// holdSignal: a handler is ending (runHandler); signal only notes in
	// held that something was queued, and the handler writes it itself
	// when no writer runs.
	holdSignal, held bool
	// blocked are streams with data that wait for the connection's send
	// window.
	blocked []*stream
	// parked: the reader is parked (idlewait), no goroutine reads. The
	// stream map and the queues let their storage go as they empty
	// (shedLocked).
	parked bool
	wake   chan struct{}

	// Owned by the writer. wb is held while frames are written, with
	// its header writer (responses are encoded without a dynamic table,
	// so an idle connection holds no encoder: HAProxy's keeps none
	// either).
	wb      *batch
	wdone   chan struct{}
	lastW   time.Time
	idle    *time.Timer
	cleanup bool // a clean close (after GOAWAY) lingers on reads
}

// ctrlFrame is a frame the writer sends before any stream's.
type ctrlFrame struct {
	kind   ctrlKind
	stream uint32
	code   http2.ErrCode
	n      uint32 // window increment, or header table size
	ping   [8]byte
}

type ctrlKind uint8

const (
	ctrlSettings ctrlKind = iota
	ctrlSettingsAck
	ctrlPingAck
	ctrlWindowUpdate
	ctrlRST
	ctrlGoAway
)

func newConn(s *Server, rwc net.Conn, ctx context.Context) *conn {
	c := &conn{
		s: s, rwc: rwc, ctx: ctx, st: s.stats(),
		remote:         rwc.RemoteAddr().String(),
		peerMaxFrame:   frameSize,
		peerInitWindow: initialWindow,
		sendWindow:     initialWindow,
		recvWindow:     int32(orU32(s.ConnWindow, DefaultConnWindow)),
		streamWindow:   int32(orU32(s.StreamWindow, DefaultStreamWindow)),
		wake:           make(chan struct{}, 1),
		wdone:          make(chan struct{}),
	}
	if tc, ok := rwc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		cs := tc.ConnectionState()
		c.tls = &cs
	}
	c.br.rwc = rwc
	c.hr.Init(hpack.NewDecoder(headerTable, nil), s.maxHeaderList())
	c.newReadFramer()
	c.acks.Init(&c.mu, c.wakeForAcks)
	return c
}

// newReadFramer makes the framer the reader reads with (c.hr decodes
// its header blocks, with the connection's HPACK state).
func (c *conn) newReadFramer() {
	c.fr = http2.NewFramer(nil, &c.br)
	c.fr.SetMaxReadFrameSize(frameSize)
	// A DATA frame is done with before the next is read (its data is
	// copied out), so one frame value serves them all.
	c.fr.SetReuseFrames()
}

// bigFrame is the payload size past which a connection going idle drops
// its read framer: the framer keeps a buffer as large as the largest
// payload it read (up to 16 KiB).
const bigFrame = 512

// serve runs the connection: the preface, then frames until the
// connection ends (it reports true), or, on a detached connection, until
// the reader has read all the client sent: a goroutine of its own then
// waits for more (readDetached), and serve reports false.
func (c *conn) serve() (ended bool) {
	// Our SETTINGS go out first, whatever the client sends.
	c.mu.Lock()
	c.queueCtrl(ctrlFrame{kind: ctrlSettings})
	if extra := c.recvWindow - initialWindow; extra > 0 {
		c.queueCtrl(ctrlFrame{kind: ctrlWindowUpdate, n: uint32(extra)})
	}
	c.mu.Unlock()
	err := c.readPreface()
	if err == nil {
		c.armIdle()
		err = c.readLoop()
		if err == errDetached {
			return false
		}
	}
	c.end(err)
	return true
}

// errDetached: the reader goes on on another goroutine.
var errDetached = errors.New("h2server: reading goes on on a fresh goroutine")

// readDetached waits for the client's next bytes on a goroutine that
// holds nothing else, then reads on. The goroutine that read the last
// frames has a stack grown by HPACK decoding and frame processing (and,
// for the first, by the listener's accept path), which the runtime does
// not give back while it waits; a fresh one waits on the runtime's
// smallest stack (2 KiB), for a goroutine started each time the reader
// has read everything the client sent.
func (c *conn) readDetached() {
	err := c.br.wait()
	if err == nil {
		if c.fr == nil {
			c.mu.Lock()
			c.parked = false
			c.mu.Unlock()
			c.newReadFramer()
		}
		if err = c.readLoop(); err == errDetached {
			return
		}
	}
	c.end(err)
}

// fewStreams reports whether at most one stream is open and one handler
// runs. The reader waits on a fresh goroutine only then: a connection
// that carries several streams at once is not about to go idle, and
// starting a goroutine (and growing its stack again) each time the
// reader has read what arrived costs CPU at every burst of frames.
func (c *conn) fewStreams() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams) <= 1 && c.running <= 1
}

// end finishes a connection whose reading ended with err, waits for its
// handlers and lets go of it.
func (c *conn) end(err error) {
	c.finish(err)
	c.handlers.Wait()
	s := c.s
	s.untrack(c)
	if s.ConnState != nil {
		s.ConnState(c.rwc, http.StateClosed)
	}
	if c.done != nil {
		c.done()
	}
}

// readPreface reads the client preface and its first SETTINGS frame,
// within the preface timeout. A wrong preface gets GOAWAY and a clean
// close, never a reset connection.
func (c *conn) readPreface() error {
	_ = c.rwc.SetReadDeadline(time.Now().Add(orDuration(c.s.PrefaceTimeout, DefaultPrefaceTimeout)))
	defer func() { _ = c.rwc.SetReadDeadline(time.Time{}) }()
	buf := make([]byte, len(clientPreface))
	if _, err := io.ReadFull(&c.br, buf); err != nil {
		return fmt.Errorf("read preface: %w", err)
	}
	if !bytes.Equal(buf, clientPreface) {
		c.connError(http2.ErrCodeProtocol, "invalid connection preface")
		return errors.New("invalid connection preface")
	}
	f, err := c.hr.ReadFrame(c.fr)
	if err != nil {
		return c.readError(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		c.connError(http2.ErrCodeProtocol, "first frame is not SETTINGS")
		return errors.New("first frame is not SETTINGS")
	}
	return c.process(f)
}

// readLoop reads and processes frames until the connection ends.
func (c *conn) readLoop() (err error) {
	defer func() {
		if err != errDetached && len(c.starts) > 0 {
			// Streams read before the connection ended: their handlers
			// start (and see it end), as if started before. (A reader
			// that detached has started them all.)
			c.startPending()
		}
	}()
	for {
		if len(c.starts) > 0 && (len(c.starts) >= maxPendingStarts || !c.br.frameBuffered()) {
			c.startPending()
		}
		if c.detached && c.br.drained() && c.fewStreams() {
			if c.frBig {
				// Between frames, with no header block pending: a new
				// framer, with the same HPACK decoder, reads on as the
				// old one would.
				c.frBig = false
				c.newReadFramer()
				c.hr.Release() // its last HEADERS frame is the old framer's
			}
			if c.s.attached.Take() {
				// Wait on this goroutine, as a connection that is not
				// detached does: no goroutine started, and no stack
				// grown again, per request.
				// (BENCHMARKS.md finding 35.)
				err := c.br.wait()
				c.s.attached.Give()
				if err != nil {
					return err
				}
				continue
			}
			// Waiting with nothing of its own but its buffers' state:
			// the read buffer and the header reader's field slice go
			// back before it waits. Parked, it holds no goroutine
			// either (idlewait), nor its read framer, made again when
			// the client sends, nor its empty queues; else it waits on
			// a fresh goroutine. No read deadline: the idle timer sends
			// GOAWAY, and the read deadline that follows wakes it.
			c.hr.Release()
			c.br.release()
			if _, ok := c.rwc.(idlewait.Parker); ok {
				c.fr = nil
				c.mu.Lock()
				c.parked = true
				c.shedLocked()
				c.mu.Unlock()
			}
			idlewait.ParkOrGo(c.rwc, time.Time{}, c.readDetached)
			return errDetached
		}
		f, err := c.hr.ReadFrame(c.fr)
		if err == nil && f.Header().Length > bigFrame {
			c.frBig = true
		}
		if err != nil {
			if err = c.readError(err); err != nil {
				return err
			}
			continue
		}
		if err := c.process(f); err != nil {
			return err
		}
	}
}

// readError handles what the framer refused: a stream error resets the
// stream and reading goes on (nil); anything else ends the connection.
func (c *conn) readError(err error) error {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		c.mu.Lock()
		if se.StreamID > c.maxID && se.StreamID%2 == 1 {
			// A new stream's HEADERS that failed validation: the
			// stream is used, and closed.
			c.maxID = se.StreamID
		}
		c.streamErrorLocked(se.StreamID, se.Code)
		c.mu.Unlock()
		return nil
	case errors.As(err, &ce):
		why := "framing error"
		if d := c.hr.ErrorDetail(c.fr); d != nil {
			why = d.Error()
		}
		c.connError(http2.ErrCode(ce), why)
		return err
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.connError(http2.ErrCodeFrameSize, "frame too large")
		return err
	}
	return err
}

// process handles one frame; an error ends the connection.
func (c *conn) process(f http2.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return errConnClosed
	}
	var err error
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		err = c.onHeaders(f)
	case *http2.DataFrame:
		err = c.onData(f)
	case *http2.SettingsFrame:
		err = c.onSettings(f)
	case *http2.WindowUpdateFrame:
		err = c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		err = c.onReset(f)
	case *http2.PingFrame:
		// The acknowledgement waits for the next write (h2frame.PingAcks);
		// past the control-frame limit (acknowledgements waiting count
		// with the control frames queued), the flood answer.
		if !f.IsAck() && !c.acks.Add(f.Data, len(c.ctrl), maxCtrlQueued) {
			c.controlFloodLocked()
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			c.streamErrorLocked(f.StreamID, http2.ErrCodeProtocol)
		}
	case *http2.GoAwayFrame:
		// The client opens no more streams; the open ones finish.
		c.goAway = true
		if len(c.streams) == 0 {
			c.closeLocked()
		}
	case *http2.PushPromiseFrame:
		err = c.protocolError(http2.ErrCodeProtocol, "PUSH_PROMISE from a client")
	default:
		// Unknown frame types are ignored (RFC 9113 5.5).
	}
	return err
}

// protocolError is a connection error found while mu is held.
func (c *conn) protocolError(code http2.ErrCode, why string) error {
	c.goAwayLocked(code, why)
	return fmt.Errorf("h2 connection error %v: %s", code, why)
}

// connError sends GOAWAY with code and closes the connection.
func (c *conn) connError(code http2.ErrCode, why string) {
	c.mu.Lock()
	c.goAwayLocked(code, why)
	c.mu.Unlock()
}

func (c *conn) goAwayLocked(code http2.ErrCode, why string) {
	if c.closing {
		return
	}
	if code != http2.ErrCodeNo {
		c.st.RxMessagingError.Inc()
	}
	c.goAway = true
	c.queueCtrl(ctrlFrame{kind: ctrlGoAway, stream: c.maxID, code: code})
	c.cleanup = true
	c.closeLocked()
}

// goAwayGraceful stops new streams: GOAWAY with NO_ERROR, and the
// connection closes when its open streams are done.
func (c *conn) goAwayGraceful() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goAway || c.closing {
		return
	}
	c.goAway = true
	c.queueCtrl(ctrlFrame{kind: ctrlGoAway, stream: c.maxID, code: http2.ErrCodeNo})
	if len(c.streams) == 0 && c.running == 0 {
		c.cleanup = true
		c.closeLocked()
	}
}

// closeLocked ends the connection: the writer sends what is queued and
// closes it.
func (c *conn) closeLocked() {
	if c.closing {
		return
	}
	c.closing = true
	c.signal()
}

// streamErrorLocked resets stream id with code (a stream error).
func (c *conn) streamErrorLocked(id uint32, code http2.ErrCode) {
	c.st.RxMessagingError.Inc()
	if s := c.streams[id]; s != nil {
		s.resetLocked(code, errStreamReset)
		return
	}
	c.queueRST(id, code)
}

func (c *conn) queueRST(id uint32, code http2.ErrCode) {
	c.st.TxReset.Inc()
	c.queueCtrl(ctrlFrame{kind: ctrlRST, stream: id, code: code})
}

func (c *conn) queueCtrl(f ctrlFrame) {
	if len(c.ctrl)+c.acks.Len() >= maxCtrlQueued && f.kind != ctrlGoAway {
		c.controlFloodLocked()
		return
	}
	c.ctrl = append(c.ctrl, f)
	c.signal()
}

// controlFloodLocked ends a connection whose client lets control frames
// pile up unread (http2.outbound_control_flood), once.
func (c *conn) controlFloodLocked() {
	if !c.closing {
		c.st.OutboundControlFlood.Inc()
		c.goAwayLocked(http2.ErrCodeEnhanceYourCalm, "too many control frames queued")
	}
}

// wakeForAcks wakes the writer for PING acknowledgements that waited
// h2frame.AckDelay (h2frame.PingAcks, under mu).
func (c *conn) wakeForAcks() {
	if !c.closing {
		c.signal()
	}
}

// signal wakes the writer, or starts it.
func (c *conn) signal() {
	if c.holdSignal {
		c.held = true
		return
	}
	if !c.writing {
		c.writing = true
		go c.writeLoop()
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// armIdle starts or stops the idle timer: it runs while no stream is
// open and no handler runs.
func (c *conn) armIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armIdleLocked()
}

func (c *conn) armIdleLocked() {
	if len(c.streams) > 0 || c.running > 0 || c.closing {
		if c.idle != nil {
			c.idle.Stop()
		}
		return
	}
	d := orDuration(c.s.IdleTimeout, DefaultIdleTimeout)
	if c.idle == nil {
		c.idle = time.AfterFunc(d, c.idleTimeout)
		return
	}
	c.idle.Reset(d)
}

func (c *conn) idleTimeout() {
	c.mu.Lock()
	if len(c.streams) > 0 || c.running > 0 || c.closing {
		c.mu.Unlock()
		return
	}
	if c.s.OnIdleTimeout != nil {
		c.s.OnIdleTimeout(c.rwc)
	}
	c.goAwayLocked(http2.ErrCodeNo, "idle timeout")
	c.mu.Unlock()
}

// finish ends the connection once reading stopped: every stream fails,
// the writer flushes and closes the connection.
func (c *conn) finish(err error) {
	c.mu.Lock()
	if c.idle != nil {
		c.idle.Stop()
	}
	c.acks.Stop()
	for _, s := range c.streams {
		s.closeLocked(errConnClosed)
	}
	c.closeLocked()
	cleanup := c.cleanup
	c.mu.Unlock()
	// The writer sends what is queued (GOAWAY); one stuck on a client
	// that does not read is stopped by closing the connection.
	t := time.NewTimer(lingerPeriod)
	select {
	case <-c.wdone:
	case <-t.C:
		_ = c.rwc.Close()
		<-c.wdone
	}
	t.Stop()
	if cleanup && err != nil {
		c.drain()
	}
	_ = c.rwc.Close()
}

// shedLocked lets a parked connection's empty stream map and queues go:
// each keeps the storage it grew to while it is empty. They are made
// again as they are needed (a nil map or slice reads as empty). It runs
// as the reader parks, and as the stream map (removeLocked) and the
// write queues (the writer going quiet) empty while it is parked.
func (c *conn) shedLocked() {
	if len(c.streams) == 0 {
		c.streams = nil
	}
	if len(c.ctrl) == 0 {
		c.ctrl = nil
	}
	if len(c.ready) == 0 {
		c.ready = nil
	}
	if len(c.blocked) == 0 {
		c.blocked = nil
	}
	if len(c.starts) == 0 {
		c.starts = nil
	}
}
