// Package h2frame holds what the proxy's HTTP/2 codecs (h2server
// downstream, h2client upstream) both do with frames that
// golang.org/x/net/http2's Framer does not do for them: splitting an
// encoded header block into HEADERS and CONTINUATION frames within the
// peer's frame size, reading header blocks with the Framer's checks but
// without its allocations per block (HeaderReader), half-closing a
// connection under its wrappers, turning header names between HTTP/2's
// lower case and net/http's canonical form without allocating for the
// common ones, holding stream body bytes in pooled arrays (BodyBuf), and
// holding PING acknowledgements for the connection's next write
// (PingAcks).
package h2frame

import (
	"bytes"
	"net"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HeaderWriter encodes header blocks with one connection's HPACK
// encoder (its dynamic table is the connection's, so one writer per
// connection, used by its writer goroutine only).
type HeaderWriter struct {
	Enc *hpack.Encoder
	buf bytes.Buffer
}

// NewHeaderWriter returns a HeaderWriter with a fresh HPACK encoder.
func NewHeaderWriter() *HeaderWriter {
	w := &HeaderWriter{}
	w.Enc = hpack.NewEncoder(&w.buf)
	return w
}

// NewLiteralHeaderWriter returns a HeaderWriter whose encoder keeps no
// dynamic table: its first header block sets the peer's table to size
// zero, and every field is then sent from the static table or as a
// literal not indexed. What that costs (a header block of about 110
// bytes where an indexed one is 25, about 150 ns more to encode) buys a
// connection that holds no encoder table while idle: about 1 KiB less
// for each of the many client connections of a server. The peer's
// SETTINGS_HEADER_TABLE_SIZE needs nothing applied to this encoder, as
// zero is within any limit.
func NewLiteralHeaderWriter() *HeaderWriter {
	w := NewHeaderWriter()
	w.Enc.SetMaxDynamicTableSizeLimit(0)
	return w
}

// Write encodes fields and writes them on stream id as one HEADERS frame
// and as many CONTINUATION frames as maxFrame requires; end sets
// END_STREAM. The framer writes into a buffer, so its errors are not
// the connection's: they are ignored.
func (w *HeaderWriter) Write(fr *http2.Framer, id uint32, fields []hpack.HeaderField, end bool, maxFrame uint32) {
	w.buf.Reset()
	for _, f := range fields {
		_ = w.Enc.WriteField(f)
	}
	block := w.buf.Bytes()
	max := int(maxFrame)
	first := block
	if len(first) > max {
		first = first[:max]
	}
	block = block[len(first):]
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(block) == 0})
	for len(block) > 0 {
		frag := block
		if len(frag) > max {
			frag = frag[:max]
		}
		block = block[len(frag):]
		_ = fr.WriteContinuation(id, len(block) == 0, frag)
	}
}

// CloseWrite half-closes a connection, under its wrappers (TLS, the
// proxy's counting connections), so the peer reads what was sent (a
// GOAWAY) before the connection ends.
func CloseWrite(nc net.Conn) {
	for nc != nil {
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			return
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		nc = u.NetConn()
	}
}

// HeaderLen is the length of an HTTP/2 frame header.
const HeaderLen = 9

// Whole reports whether b, the start of n buffered bytes, begins with a
// whole frame that a reader can process without waiting for more: its
// header and payload are buffered, and it is not a HEADERS or
// PUSH_PROMISE frame without END_HEADERS (whose CONTINUATION frames may
// still be on their way).
func Whole(b []byte, n int) bool {
	if len(b) < HeaderLen || n < HeaderLen {
		return false
	}
	typ, flags := http2.FrameType(b[3]), http2.Flags(b[4])
	if (typ == http2.FrameHeaders || typ == http2.FramePushPromise) && !flags.Has(http2.FlagHeadersEndHeaders) {
		return false
	}
	return n >= HeaderLen+(int(b[0])<<16|int(b[1])<<8|int(b[2]))
}
