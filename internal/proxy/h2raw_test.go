package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Raw is an HTTP/2 client connection driven frame by frame, for what
// net/http's client never sends (resets right after HEADERS, header
// lists over the limit, CONNECT).
type h2Raw struct {
	t   testing.TB
	c   net.Conn
	fr  *http2.Framer
	buf bytes.Buffer
	enc *hpack.Encoder
}

// dialH2 opens a prior-knowledge HTTP/2 connection to addr (closed when
// the test ends, with a 20 s deadline) and sends the preface and SETTINGS.
func dialH2(t testing.TB, addr string) *h2Raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	h := &h2Raw{t: t, c: c, fr: http2.NewFramer(c, c)}
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.fr.MaxHeaderListSize = 1 << 20
	h.enc = hpack.NewEncoder(&h.buf)
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return h
}

// request sends a request's HEADERS (split into CONTINUATION frames of
// 16 KiB) on stream id: the pseudo-headers for method and authority
// (path "/" and scheme "http" unless the method is CONNECT; a :path in
// extra replaces "/"), then extra.
func (h *h2Raw) request(id uint32, method, authority string, endStream bool, extra ...hpack.HeaderField) error {
	h.buf.Reset()
	fields := []hpack.HeaderField{{Name: ":method", Value: method}, {Name: ":authority", Value: authority}}
	if method != "CONNECT" {
		path := "/"
		if len(extra) > 0 && extra[0].Name == ":path" {
			path, extra = extra[0].Value, extra[1:]
		}
		fields = append(fields, hpack.HeaderField{Name: ":scheme", Value: "http"}, hpack.HeaderField{Name: ":path", Value: path})
	}
	for _, f := range append(fields, extra...) {
		if err := h.enc.WriteField(f); err != nil {
			return err
		}
	}
	block := h.buf.Bytes()
	const max = 16 << 10
	first := block[:min(len(block), max)]
	block = block[len(first):]
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) == 0}); err != nil {
		return err
	}
	for len(block) > 0 {
		frag := block[:min(len(block), max)]
		block = block[len(frag):]
		if err := h.fr.WriteContinuation(id, len(block) == 0, frag); err != nil {
			return err
		}
	}
	return nil
}

// errGoAway is what response returns when the server ends the connection.
var errGoAway = errors.New("GOAWAY")

// response reads frames until stream id's response head and returns its
// :status; a reset of the stream, a GOAWAY or a closed connection is an
// error. Frames of other streams are skipped.
func (h *h2Raw) response(id uint32) (string, error) {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return "", err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := h.fr.WriteSettingsAck(); err != nil {
					return "", err
				}
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = h.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			return "", fmt.Errorf("%w %v", errGoAway, f.ErrCode)
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "", fmt.Errorf("stream %d reset: %v", id, f.ErrCode)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				return f.PseudoValue("status"), nil
			}
		}
	}
}

// ending reads frames until the server ends the connection and returns
// errGoAway with its code, or the read's error. It writes nothing (no
// SETTINGS or PING acknowledgement), so it can run while another
// goroutine's write is blocked on a server that stopped reading.
func (h *h2Raw) ending() error {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return fmt.Errorf("%w %v", errGoAway, f.ErrCode)
		case *http2.MetaHeadersFrame:
			return fmt.Errorf("a response on stream %d: %s", f.StreamID, f.PseudoValue("status"))
		}
	}
}
