package h2server

import (
	"bytes"
	"io"
	"time"

	"golang.org/x/net/http2"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
)

// batchMax is how many bytes of frames one write carries at most; past
// it the writer writes and comes back for the rest.
const batchMax = 128 << 10

// writeLoop is the connection's writer: started or woken when something
// is queued (signal), it gathers every queued frame (control frames
// first, then the streams round-robin within the flow-control windows)
// into one buffer and writes it with one system call. It ends when the
// connection has no stream open and nothing queued, so that an idle
// connection keeps no writer goroutine (nor its stack, grown by the HPACK
// encoder); the next frame queued starts another.
func (c *conn) writeLoop() {
	for {
		for {
			c.mu.Lock()
			if c.wb == nil {
				c.wb = batchPool.Get().(*batch)
			}
			more := c.fillLocked()
			done := c.closing && !more
			cleanup := c.cleanup
			quiet := !more && c.quietLocked()
			c.mu.Unlock()
			wb := c.wb
			if err := c.writeBatch(wb); err != nil {
				c.mu.Lock()
				c.closing, c.closed = true, true
				c.mu.Unlock()
				_ = c.rwc.Close()
				close(c.wdone)
				return
			}
			if done {
				c.mu.Lock()
				c.closed = true
				c.mu.Unlock()
				if cleanup {
					// GOAWAY is out: half-close, so the client reads it
					// before the connection ends, and give the reader a
					// moment to drain what the client still sends.
					h2frame.CloseWrite(c.rwc)
				}
				_ = c.rwc.SetReadDeadline(time.Now().Add(lingerPeriod))
				close(c.wdone)
				return
			}
			if quiet {
				// No stream open, nothing queued: the connection is
				// idle until the client sends, and holds no buffer.
				c.wb = nil
				batchPool.Put(wb)
				c.mu.Lock()
				if c.quietLocked() {
					if c.parked {
						c.shedLocked()
					}
					c.writing = false
					select {
					case <-c.wake: // a signal for what was written
					default:
					}
					c.mu.Unlock()
					return
				}
				c.mu.Unlock()
			}
			if !more {
				break
			}
		}
		<-c.wake
	}
}

// writeInline writes, on the goroutine of a handler that just ended,
// what is queued (its response's last frames, often all of them), as the
// writer goroutine would, once; the caller set writing. A writer
// goroutine is started for whatever is left, or when the write failed
// (it ends the connection's writing); otherwise writing is cleared and
// the batch buffer given back.
func (c *conn) writeInline() {
	c.mu.Lock()
	if c.wb == nil {
		c.wb = batchPool.Get().(*batch)
	}
	more := c.fillLocked()
	c.mu.Unlock()
	wb := c.wb
	err := c.writeBatch(wb)
	c.mu.Lock()
	if err != nil {
		c.closing, c.closed = true, true
		c.mu.Unlock()
		_ = c.rwc.Close()
		go c.writeLoop()
		return
	}
	if more || len(c.ctrl) > 0 || len(c.ready) > 0 || c.closing {
		c.mu.Unlock()
		go c.writeLoop()
		return
	}
	c.wb = nil
	batchPool.Put(wb)
	c.writing = false
	select {
	case <-c.wake: // a signal for what was written
	default:
	}
	if c.parked {
		c.shedLocked()
	}
	c.mu.Unlock()
}

// writeBatch writes the batch, if anything is in it, and empties it.
// Only the writer (the goroutine that set writing) calls it.
func (c *conn) writeBatch(wb *batch) error {
	if wb.buf.Len() == 0 {
		return nil
	}
	if now := time.Now(); now.Sub(c.lastW) > time.Second {
		_ = c.rwc.SetWriteDeadline(now.Add(orDuration(c.s.WriteTimeout, DefaultWriteTimeout)))
		c.lastW = now
	}
	_, err := c.rwc.Write(wb.buf.Bytes())
	wb.buf.Reset()
	if wb.buf.Cap() > maxKeptBatch {
		// A large batch's buffer is not kept.
		wb.buf = bytes.Buffer{}
	}
	return err
}

// quietLocked reports whether the connection has no stream open, no
// handler running and nothing to write.
func (c *conn) quietLocked() bool {
	return len(c.streams) == 0 && c.running == 0 && len(c.ctrl) == 0 && len(c.ready) == 0 && !c.closing
}

// drain reads and drops what the client still sends after GOAWAY, for a
// bounded time and size, so that closing the connection does not reset
// it (and lose the GOAWAY) over unread data.
func (c *conn) drain() {
	_ = c.rwc.SetReadDeadline(time.Now().Add(lingerPeriod))
	_, _ = io.Copy(io.Discard, io.LimitReader(&c.br, lingerBytes))
}

// fillLocked encodes queued frames into the batch buffer, and says whether more is
// left that could be sent now (the batch is full).
func (c *conn) fillLocked() bool {
	if c.closed {
		c.ctrl = c.ctrl[:0]
		c.acks.Stop()
		return false
	}
	for _, f := range c.ctrl {
		c.writeCtrl(f)
	}
	c.ctrl = c.ctrl[:0]
	c.acks.Write(c.wb.fr)
	base := c.ready
	n := len(c.ready)
	for i := 0; i < n && c.wb.buf.Len() < batchMax; i++ {
		s := c.ready[0]
		c.ready = c.ready[1:]
		s.queued = false
		if s.err != nil {
			continue
		}
		c.writeStream(s)
		switch {
		case s.err != nil:
		case s.sendable(c.sendWindow):
			s.queued = true
			c.ready = append(c.ready, s)
		case s.out.Len() > 0 && s.sendWindow > 0:
			// Only the connection window holds it: it goes back on
			// the list when the client opens that window.
			c.blocked = append(c.blocked, s)
		}
	}
	if len(c.ready) == 0 {
		c.ready = reuseReady(base)
	}
	if c.wb.buf.Len() < batchMax {
		return false
	}
	for _, s := range c.ready {
		if s.sendable(c.sendWindow) {
			return true
		}
	}
	return false
}

// sendable says whether the stream has frames it may send now.
func (s *stream) sendable(connWindow int64) bool {
	return len(s.heads) > 0 || s.out.Len() > 0 && s.sendWindow > 0 && connWindow > 0 ||
		s.endPending && s.out.Len() == 0
}

func (c *conn) writeCtrl(f ctrlFrame) {
	switch f.kind {
	case ctrlSettings:
		_ = c.wb.fr.WriteSettings(
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.s.maxStreams()},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(c.streamWindow)},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.s.maxHeaderList()},
		)
	case ctrlSettingsAck:
		_ = c.wb.fr.WriteSettingsAck()
	case ctrlPingAck:
		_ = c.wb.fr.WritePing(true, f.ping)
	case ctrlWindowUpdate:
		_ = c.wb.fr.WriteWindowUpdate(f.stream, f.n)
	case ctrlRST:
		_ = c.wb.fr.WriteRSTStream(f.stream, f.code)
	case ctrlGoAway:
		c.st.GoawaySent.Inc()
		_ = c.wb.fr.WriteGoAway(f.stream, f.code, nil)
	}
}

// writeStream writes what a stream may send: its header blocks, data
// within the windows, then trailers or END_STREAM.
func (c *conn) writeStream(s *stream) {
	for _, h := range s.heads {
		c.wb.hw.Write(c.wb.fr, s.id, h.fields, h.end, c.peerMaxFrame)
		if h.end {
			s.heads = s.heads[:0]
			s.sentEndLocked()
			return
		}
	}
	s.heads = s.heads[:0]
	drained := false
	for s.out.Len() > 0 && s.sendWindow > 0 && c.sendWindow > 0 && c.wb.buf.Len() < batchMax {
		n := min(s.out.Len(), int(c.peerMaxFrame), int(min(s.sendWindow, c.sendWindow)))
		end := n == s.out.Len() && s.endPending && len(s.trailers) == 0
		// WriteData copies the bytes into the batch before they leave
		// s.out (whose array goes back to its pool once drained).
		_ = c.wb.fr.WriteData(s.id, end, s.out.Bytes()[:n])
		s.out.Consume(n)
		s.sendWindow -= int64(n)
		c.sendWindow -= int64(n)
		drained = true
		if end {
			s.sentEndLocked()
			return
		}
	}
	if drained {
		s.outCond.Broadcast()
	}
	if s.endPending && s.out.Len() == 0 {
		if len(s.trailers) > 0 {
			c.wb.hw.Write(c.wb.fr, s.id, s.trailers, true, c.peerMaxFrame)
		} else {
			_ = c.wb.fr.WriteData(s.id, true, nil)
		}
		s.sentEndLocked()
	}
}

// sentEndLocked: END_STREAM is written. A stream whose request is not
// over yet is reset with NO_ERROR: the response is complete, and the
// client should stop sending (RFC 9113 8.1).
func (s *stream) sentEndLocked() {
	s.endPending = false
	s.trailers = nil
	s.sendClosed = true
	s.out.Reset()
	s.outCond.Broadcast()
	if s.recvClosed {
		s.removeLocked()
		return
	}
	code := http2.ErrCodeNo
	if s.malformed {
		code = http2.ErrCodeProtocol
		s.c.st.TxReset.Inc()
	}
	_ = s.c.wb.fr.WriteRSTStream(s.id, code)
	s.closeLocked(errStreamReset)
}

// maxKeptReady is the most entries of the ready list's array a
// connection keeps once the list is empty.
const maxKeptReady = 16

// reuseReady is the ready list to go on with once it is empty: base's
// array (the list's before the batch), emptied so that it holds no
// stream (with its request and response) of a connection gone idle, so
// that the next request's stream is queued without allocating; nil
// when the array is large.
func reuseReady(base []*stream) []*stream {
	clear(base[:cap(base)])
	if cap(base) > maxKeptReady {
		return nil
	}
	return base[:0]
}
