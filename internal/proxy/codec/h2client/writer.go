package h2client

import (
	"bytes"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
)

// batchMax is how many bytes of frames one write carries at most.
const batchMax = 128 << 10

// writeLoop is the connection's writer: woken when something is queued,
// it encodes every queued frame (control frames, request heads, then
// stream data round-robin within the windows) into one buffer and
// writes it with one system call. While another goroutine writes
// (writeInline), it leaves the queue to that one, which wakes it again
// if anything is left.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	defer func() {
		c.mu.Lock()
		c.acks.Stop()
		c.mu.Unlock()
	}()
	for range c.wake {
		for {
			c.mu.Lock()
			if c.busy {
				c.mu.Unlock()
				break
			}
			c.busy = true
			more := c.fillLocked()
			done := c.closing && !more
			c.mu.Unlock()
			if err := c.writeBatch(); err != nil {
				c.mu.Lock()
				c.closeLocked(err)
				c.mu.Unlock()
				_ = c.nc.Close()
				return
			}
			if done {
				h2frame.CloseWrite(c.nc)
				_ = c.nc.SetReadDeadline(time.Now().Add(lingerPeriod))
				return
			}
			c.mu.Lock()
			c.busy = false
			c.mu.Unlock()
			if !more {
				break
			}
		}
	}
}

// writeInline writes what is queued on the calling goroutine (a
// request's, as it starts its stream), once, unless another goroutine is
// writing; the writer goroutine is woken for whatever is left. A request
// whose head and body are all queued goes out without waking the
// writer, in one system call.
func (c *conn) writeInline() {
	c.mu.Lock()
	if c.busy || c.closing {
		c.mu.Unlock()
		return // the one writing wakes the writer when it is done
	}
	c.busy = true
	more := c.fillLocked()
	c.mu.Unlock()
	err := c.writeBatch()
	c.mu.Lock()
	c.busy = false
	switch {
	case err != nil:
		c.closeLocked(err)
	case more || len(c.ctrl) > 0 || len(c.heads) > 0 || len(c.ready) > 0 || c.closing:
		c.signal()
	}
	c.mu.Unlock()
	if err != nil {
		_ = c.nc.Close()
	}
}

// writeBatch writes wbuf, if anything is in it, and empties it. Only the
// goroutine that set busy calls it.
func (c *conn) writeBatch() error {
	if c.wbuf.Len() == 0 {
		return nil
	}
	if now := time.Now(); now.Sub(c.lastW) > time.Second {
		_ = c.nc.SetWriteDeadline(now.Add(c.t.writeTimeout()))
		c.lastW = now
	}
	_, err := c.nc.Write(c.wbuf.Bytes())
	c.wbuf.Reset()
	if c.wbuf.Cap() > 64<<10 {
		c.wbuf = bytes.Buffer{}
	}
	return err
}

// fillLocked encodes queued frames into wbuf and says whether more could
// be sent now (the batch is full).
func (c *conn) fillLocked() bool {
	for _, f := range c.ctrl {
		c.writeCtrl(f)
	}
	c.ctrl = c.ctrl[:0]
	c.acks.Write(c.wfr)
	for _, s := range c.heads {
		if s.err != nil {
			continue
		}
		c.hw.Write(c.wfr, s.id, s.fields, s.endAfterHead, c.peerMaxFrame)
		s.fields = nil
		s.headSent = true
		if s.endAfterHead {
			s.sentEndLocked()
		} else {
			s.readyLocked()
		}
	}
	clear(c.heads)
	c.heads = c.heads[:0]
	base := c.ready
	n := len(c.ready)
	for i := 0; i < n && c.wbuf.Len() < batchMax; i++ {
		s := c.ready[0]
		c.ready[0] = nil
		c.ready = c.ready[1:]
		s.queued = false
		if s.err != nil || s.sendClosed {
			continue
		}
		c.writeStream(s)
		switch {
		case s.err != nil || s.sendClosed:
		case s.sendable(c.sendWindow):
			s.queued = true
			c.ready = append(c.ready, s)
		case s.outOff < len(s.out) && s.sendWindow > 0:
			c.blocked = append(c.blocked, s)
		}
	}
	if len(c.ready) == 0 {
		// base's array serves the next batch: no allocation per
		// request. Its entries were cleared as they were taken, and an
		// entry appended meanwhile was taken too; a large one goes.
		clear(base[:cap(base)])
		c.ready = base[:0]
		if cap(base) > 64 {
			c.ready = nil
		}
	}
	if c.wbuf.Len() < batchMax {
		return false
	}
	for _, s := range c.ready {
		if s.sendable(c.sendWindow) {
			return true
		}
	}
	return false
}

func (c *conn) writeCtrl(f ctrlFrame) {
	switch f.kind {
	case ctrlSettingsAck:
		_ = c.wfr.WriteSettingsAck()
	case ctrlPingAck:
		_ = c.wfr.WritePing(true, f.ping)
	case ctrlWindowUpdate:
		_ = c.wfr.WriteWindowUpdate(f.stream, f.n)
	case ctrlRST:
		_ = c.wfr.WriteRSTStream(f.stream, f.code)
	case ctrlGoAway:
		_ = c.wfr.WriteGoAway(0, f.code, nil)
	case ctrlTableSize:
		c.hw.Enc.SetMaxDynamicTableSizeLimit(f.n)
	}
}

// sendable says whether the stream has frames it may send now.
func (s *stream) sendable(connWindow int64) bool {
	return s.outOff < len(s.out) && s.sendWindow > 0 && connWindow > 0 ||
		s.endPending && s.outOff >= len(s.out)
}

// writeStream writes what a stream may send: data within the windows,
// then trailers or END_STREAM.
func (c *conn) writeStream(s *stream) {
	drained := false
	for s.outOff < len(s.out) && s.sendWindow > 0 && c.sendWindow > 0 && c.wbuf.Len() < batchMax {
		n := min(len(s.out)-s.outOff, int(c.peerMaxFrame), int(min(s.sendWindow, c.sendWindow)))
		end := s.outOff+n == len(s.out) && s.endPending && len(s.trailers) == 0
		_ = c.wfr.WriteData(s.id, end, s.out[s.outOff:s.outOff+n])
		s.outOff += n
		s.sendWindow -= int64(n)
		c.sendWindow -= int64(n)
		drained = true
		if end {
			s.sentEndLocked()
			return
		}
	}
	if drained {
		if s.outOff == len(s.out) {
			s.out, s.outOff = s.out[:0], 0
		}
		s.outCond.Broadcast()
	}
	if s.endPending && s.outOff >= len(s.out) {
		if len(s.trailers) > 0 {
			c.hw.Write(c.wfr, s.id, s.trailers, true, c.peerMaxFrame)
		} else {
			_ = c.wfr.WriteData(s.id, true, nil)
		}
		s.sentEndLocked()
	}
}
