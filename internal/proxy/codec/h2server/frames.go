package h2server

import (
	"errors"

	"golang.org/x/net/http2"
)

// The frames a connection reads, each handled by the reader goroutine:
// SETTINGS, WINDOW_UPDATE, RST_STREAM, DATA, HEADERS and trailers.

// onSettings applies the client's SETTINGS and acknowledges them.
func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	// A repeated identifier is allowed: each value replaces the last.
	for i := range f.NumSettings() {
		s := f.Setting(i)
		if err := s.Valid(); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return c.protocolError(http2.ErrCode(ce), "invalid SETTINGS value")
			}
			return c.protocolError(http2.ErrCodeProtocol, "invalid SETTINGS value")
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			// It bounds the encoder's dynamic table, which has size
			// zero (h2frame.NewLiteralHeaderWriter): nothing to apply.
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(c.peerInitWindow)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					return c.protocolError(http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window")
				}
				if delta > 0 {
					st.readyLocked()
				}
			}
			c.peerInitWindow = int32(s.Val)
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = s.Val
		}
	}
	c.queueCtrl(ctrlFrame{kind: ctrlSettingsAck})
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > maxWindow {
			return c.protocolError(http2.ErrCodeFlowControl, "connection window over 2^31-1")
		}
		for _, s := range c.blocked {
			s.readyLocked()
		}
		clear(c.blocked) // an idle connection keeps no stream
		c.blocked = c.blocked[:0]
		// The streams made ready signalled the writer; with nothing
		// waiting for this window there is nothing to wake it for.
		return nil
	}
	if c.idleStream(f.StreamID) {
		return c.protocolError(http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream")
	}
	s := c.streams[f.StreamID]
	if s == nil {
		return nil // closed: ignored
	}
	s.sendWindow += int64(f.Increment)
	if s.sendWindow > maxWindow {
		c.streamErrorLocked(s.id, http2.ErrCodeFlowControl)
		return nil
	}
	s.readyLocked()
	return nil
}

func (c *conn) onReset(f *http2.RSTStreamFrame) error {
	if c.idleStream(f.StreamID) {
		return c.protocolError(http2.ErrCodeProtocol, "RST_STREAM on an idle stream")
	}
	c.st.RxReset.Inc()
	if s := c.streams[f.StreamID]; s != nil {
		s.closeLocked(errClientReset)
	}
	return nil
}

// idleStream says whether id names a stream the client has not opened.
func (c *conn) idleStream(id uint32) bool {
	return id > c.maxID
}

func (c *conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int32(f.Length)
	if c.idleStream(id) {
		return c.protocolError(http2.ErrCodeProtocol, "DATA on an idle stream")
	}
	if n > c.recvWindow {
		return c.protocolError(http2.ErrCodeFlowControl, "DATA over the connection window")
	}
	c.recvWindow -= n
	if n == 0 && !f.StreamEnded() {
		if c.emptyData++; c.emptyData > maxEmptyData {
			c.st.InboundEmptyFramesFlood.Inc()
			return c.protocolError(http2.ErrCodeEnhanceYourCalm, "too many empty DATA frames")
		}
	} else {
		c.emptyData = 0
	}
	s := c.streams[id]
	if s == nil || s.recvClosed || s.malformed {
		// Closed, or half-closed (remote): the data is dropped and its
		// connection window given back.
		c.consumedLocked(nil, n)
		c.streamErrorLocked(id, http2.ErrCodeStreamClosed)
		return nil
	}
	if n > s.recvWindow {
		c.consumedLocked(nil, n)
		c.streamErrorLocked(id, http2.ErrCodeFlowControl)
		return nil
	}
	s.recvWindow -= n
	data := f.Data()
	if pad := n - int32(len(data)); pad > 0 {
		// Padding is consumed at once.
		c.consumedLocked(s, pad)
	}
	s.gotLen += int64(len(data))
	if s.declLen >= 0 && s.gotLen > s.declLen {
		c.consumedLocked(nil, int32(len(data)))
		c.streamErrorLocked(id, http2.ErrCodeProtocol)
		return nil
	}
	if len(data) > 0 {
		if s.bodyGone {
			c.consumedLocked(s, int32(len(data)))
		} else {
			s.in.Append(data)
			s.inCond.Signal()
		}
	}
	if f.StreamEnded() {
		if s.declLen >= 0 && s.gotLen != s.declLen {
			s.shortBodyLocked()
			return nil
		}
		s.endRecvLocked()
	}
	return nil
}

// consumedLocked gives back n bytes of receive window, the connection's
// and (s not nil) the stream's, once enough has gathered to be worth a
// WINDOW_UPDATE.
func (c *conn) consumedLocked(s *stream, n int32) {
	if n <= 0 {
		return
	}
	c.recvUnacked += n
	full := int32(orU32(c.s.ConnWindow, DefaultConnWindow))
	if c.recvUnacked >= full/4 || c.recvWindow < full/2 {
		c.queueCtrl(ctrlFrame{kind: ctrlWindowUpdate, n: uint32(c.recvUnacked)})
		c.recvWindow += c.recvUnacked
		c.recvUnacked = 0
	}
	if s == nil || s.recvClosed {
		return
	}
	s.recvUnacked += n
	if s.recvUnacked >= c.streamWindow/4 || s.recvWindow < c.streamWindow/2 {
		c.queueCtrl(ctrlFrame{kind: ctrlWindowUpdate, stream: s.id, n: uint32(s.recvUnacked)})
		s.recvWindow += s.recvUnacked
		s.recvUnacked = 0
	}
}

func (c *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return c.protocolError(http2.ErrCodeProtocol, "HEADERS on an even stream")
	}
	if s := c.streams[id]; s != nil {
		if s.recvClosed || s.malformed {
			c.streamErrorLocked(id, http2.ErrCodeStreamClosed)
			return nil
		}
		return c.onTrailers(s, f)
	}
	if id <= c.maxID {
		// A closed stream, or one skipped: streams must be opened in
		// increasing order (RFC 9113 5.1.1), a connection error.
		return c.protocolError(http2.ErrCodeProtocol, "HEADERS on a closed stream")
	}
	c.maxID = id
	if f.HasPriority() && f.Priority.StreamDep == id {
		c.streamErrorLocked(id, http2.ErrCodeProtocol)
		return nil
	}
	if c.goAway {
		c.queueRST(id, http2.ErrCodeRefusedStream)
		return nil
	}
	if uint32(max(len(c.streams), c.running)) >= c.s.maxStreams() {
		c.st.StreamRefused.Inc()
		c.queueRST(id, http2.ErrCodeRefusedStream)
		return nil
	}
	if f.Truncated {
		// The header list is over MAX_HEADER_LIST_SIZE: this stream is
		// answered 431, the connection goes on.
		c.st.HeaderOverflow.Inc()
		s := c.newStream(id, !f.StreamEnded())
		s.localReply(431)
		return nil
	}
	req, declLen, err := c.newRequest(f)
	if err != nil {
		c.streamErrorLocked(id, http2.ErrCodeProtocol)
		return nil
	}
	short := f.StreamEnded() && declLen > 0
	s := c.newStream(id, !f.StreamEnded() || short)
	s.declLen = declLen
	if c.s.noKeepAlive.Load() {
		// Keep-alives are off (the listener drains): this stream is
		// the connection's last.
		c.goAway = true
		c.queueCtrl(ctrlFrame{kind: ctrlGoAway, stream: id, code: http2.ErrCodeNo})
	}
	if short {
		s.shortBodyLocked()
	}
	c.starts = append(c.starts, pendingStart{s, req})
	return nil
}

func (c *conn) onTrailers(s *stream, f *http2.MetaHeadersFrame) error {
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
		c.streamErrorLocked(s.id, http2.ErrCodeProtocol)
		return nil
	}
	if s.declLen >= 0 && s.gotLen != s.declLen {
		s.shortBodyLocked()
		return nil
	}
	if err := s.setTrailers(f.RegularFields()); err != nil {
		c.streamErrorLocked(s.id, http2.ErrCodeProtocol)
		return nil
	}
	c.st.Trailers.Inc()
	s.endRecvLocked()
	return nil
}
