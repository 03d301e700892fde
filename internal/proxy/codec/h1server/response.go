package h1server

import (
	"bufio"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"golang.org/x/net/http/httpguts"
)

// response is the http.ResponseWriter of one request. One per connection
// is reused: nothing may keep it, or its header map, after the handler
// returns.
type response struct {
	c   *conn
	req *http.Request
	hdr http.Header

	status      int  // set by WriteHeader
	headWritten bool // the status line and header section are in bw
	handlerDone bool
	noBody      bool  // HEAD, 1xx, 204, 304: nothing after the head
	chunked     bool  // body framed in chunks
	length      int64 // Content-Length, or -1
	written     int64 // body bytes accepted
	closeAfter  bool  // the connection ends after this response
	werr        error // the first write error: every later write fails
	// resetCode is set by Reset (the stream interface): the connection
	// ends after the handler returns, the response as it is.
	resetCode stream.ResetCode

	// bodyDone: the request body has been read to its end (or there is
	// none), so the connection is positioned at the next request.
	bodyDone atomic.Bool
	// cont is the state of an Expect: 100-continue exchange; contMu
	// orders the interim response against the final one, which may be
	// written by another goroutine than the one reading the body.
	cont   atomic.Int32
	contMu sync.Mutex
}

// Expect: 100-continue states.
const (
	contNone    = iota // not asked for, already sent, or given up
	contPending        // asked for; sent when the handler reads the body
)

func (w *response) reset(req *http.Request) {
	clear(w.hdr)
	w.req = req
	w.status = 0
	w.headWritten, w.handlerDone, w.noBody, w.chunked = false, false, false, false
	w.length, w.written = -1, 0
	w.closeAfter = req.Close
	w.werr = nil
	w.resetCode = 0
	w.bodyDone.Store(false)
	w.cont.Store(contNone)
}

// Header implements http.ResponseWriter.
func (w *response) Header() http.Header { return w.hdr }

var _ stream.CancelNotifier = (*response)(nil)

// NotifyCancel implements stream.CancelNotifier: l is told when the
// connection's context is cancelled (a client that hung up, Close).
func (w *response) NotifyCancel(l stream.CancelListener) bool {
	c := w.c
	c.clMu.Lock()
	defer c.clMu.Unlock()
	if c.cancelled {
		return false
	}
	c.cl = l
	return true
}

// StopNotify implements stream.CancelNotifier.
func (w *response) StopNotify() {
	c := w.c
	c.clMu.Lock()
	c.cl = nil
	c.clMu.Unlock()
}

// WriteHeader implements http.ResponseWriter. An informational status
// (1xx other than 101) is sent at once and does not count as the response.
func (w *response) WriteHeader(code int) {
	if w.headWritten || w.status != 0 || w.c.hijacked || w.resetCode != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic("h1server: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.status = code
}

// writeInterim sends a 1xx response with the current header fields.
func (w *response) writeInterim(code int) {
	w.giveUpContinue()
	bw := w.c.bw
	writeStatusLine(bw, code)
	for k, vv := range w.hdr {
		writeField(bw, k, vv)
	}
	bw.WriteString("\r\n")
	w.noteErr(bw.Flush())
}

// giveUpContinue ends a pending Expect: 100-continue before the final
// response starts: the client will learn from that response instead.
func (w *response) giveUpContinue() {
	if w.cont.Load() != contPending {
		return
	}
	w.contMu.Lock()
	if w.cont.Load() == contPending {
		w.cont.Store(contNone)
		// The client may still send the body or not: the connection
		// cannot be reused.
		w.closeAfter = true
	}
	w.contMu.Unlock()
}

// sendContinue answers Expect: 100-continue, once, when the handler
// starts reading the body and no response has been started.
func (w *response) sendContinue() {
	w.contMu.Lock()
	defer w.contMu.Unlock()
	if w.cont.Load() != contPending {
		return
	}
	w.cont.Store(contNone)
	// bw is empty: the final response, which would have given up the
	// continue under contMu first, has not started.
	_, _ = w.c.rwc.Write(continueLine)
}

var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// writeHead puts the status line and header section into bw and decides
// the body's framing.
func (w *response) writeHead() {
	w.headWritten = true
	w.giveUpContinue()
	if w.status == 0 {
		w.status = http.StatusOK
	}
	code, req, hdr := w.status, w.req, w.hdr
	w.noBody = req.Method == http.MethodHead || code == http.StatusNoContent ||
		code == http.StatusNotModified || code < 200
	if v := hdr["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.length = n
		} else {
			delete(hdr, "Content-Length")
		}
	}
	if v := hdr["Connection"]; len(v) > 0 && httpHasToken(v, "close") {
		w.closeAfter = true
	}
	switch {
	case w.noBody:
		// HEAD keeps the Content-Length the handler gave; nothing follows.
	case w.length >= 0:
	case w.handlerDone:
		// Nothing was written: an empty body of known length.
		w.length = 0
		hdr["Content-Length"] = zero
	case req.ProtoAtLeast(1, 1):
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}
	if s := w.c.s; s.shutdown.Load() || s.noKeepAlive.Load() {
		w.closeAfter = true
	}

	bw := w.c.bw
	writeStatusLine(bw, code)
	for k, vv := range hdr {
		switch k {
		case "Connection", "Transfer-Encoding", "Keep-Alive":
			continue // the server's to say
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		writeField(bw, k, vv)
	}
	if _, ok := hdr["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.Write(time.Now().UTC().AppendFormat(bw.AvailableBuffer(), http.TimeFormat))
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter:
		bw.WriteString("Connection: close\r\n")
	case !req.ProtoAtLeast(1, 1):
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
}

var zero = []string{"0"}

// writeStatusLine writes "HTTP/1.1 <code> <reason>\r\n".
func writeStatusLine(bw interface {
	WriteString(string) (int, error)
	Write([]byte) (int, error)
	AvailableBuffer() []byte
}, code int) {
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	bw.WriteString(" ")
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	}
	bw.WriteString("\r\n")
}

// writeField writes one header field per value. A name that is not a
// token is skipped; CR and LF in a value become spaces, as net/http does,
// so a value cannot start a new field.
func writeField(bw interface {
	WriteString(string) (int, error)
	WriteByte(byte) error
}, k string, vv []string) {
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	for _, v := range vv {
		bw.WriteString(k)
		bw.WriteString(": ")
		if strings.ContainsAny(v, "\r\n") {
			v = newlineToSpace.Replace(v)
		}
		bw.WriteString(strings.TrimSpace(v))
		bw.WriteString("\r\n")
	}
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// httpHasToken reports whether the first of a header's values holds tok
// between token boundaries (space, tab, comma), case-insensitively: the
// rule net/http's server applies to Expect and Connection.
func httpHasToken(vv []string, tok string) bool {
	if len(vv) == 0 {
		return false
	}
	v := vv[0]
	for sp := 0; sp+len(tok) <= len(v); sp++ {
		if sp > 0 && !isTokenBoundary(v[sp-1]) {
			continue
		}
		if end := sp + len(tok); end != len(v) && !isTokenBoundary(v[end]) {
			continue
		}
		if strings.EqualFold(v[sp:sp+len(tok)], tok) {
			return true
		}
	}
	return false
}

func isTokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

// Write implements http.ResponseWriter.
func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if w.resetCode != 0 {
		return 0, errReset
	}
	if !w.headWritten {
		w.writeHead()
	}
	if w.werr != nil {
		return 0, w.werr
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	var lenErr error
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		p = p[:w.length-w.written]
		lenErr = http.ErrContentLength
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if err != nil {
		w.noteErr(err)
		return n, err
	}
	return n, lenErr
}

// noteErr keeps the first write error; the connection will close.
func (w *response) noteErr(err error) {
	if err != nil && w.werr == nil {
		w.werr = err
		w.closeAfter = true
	}
}

// Flush implements http.Flusher.
func (w *response) Flush() {
	if !w.headWritten {
		w.writeHead()
	}
	if w.werr == nil {
		w.noteErr(w.c.bw.Flush())
	}
}

// FlushError implements the interface http.ResponseController uses.
func (w *response) FlushError() error {
	w.Flush()
	return w.werr
}

// EnableFullDuplex implements the interface http.ResponseController uses.
// Reading the request body while writing the response is always allowed
// here.
func (w *response) EnableFullDuplex() error { return nil }

// SetReadDeadline implements the interface http.ResponseController uses:
// it bounds reads of the request body.
func (w *response) SetReadDeadline(t time.Time) error { return w.c.rwc.SetReadDeadline(t) }

// SetWriteDeadline implements the interface http.ResponseController uses.
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// Hijack implements http.Hijacker: the handler takes the connection over,
// for a protocol upgrade (WebSocket). What the server buffered of the
// client's bytes is in the returned reader. The server stops watching
// the connection and will not read, write or close it again; a response
// head already written is flushed first. It fails once the response has
// been finished or the connection hijacked.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.handlerDone {
		return nil, nil, errors.New("h1server: Hijack after the handler returned")
	}
	if w.headWritten {
		if err := c.bw.Flush(); err != nil {
			return nil, nil, err
		}
	}
	c.hijacked = true
	c.reqStart.Store(0)
	c.lr.N = math.MaxInt64 // the reader is no longer bounded to a head
	c.s.untrack(c)
	_ = c.rwc.SetDeadline(time.Time{})
	return c.rwc, bufio.NewReadWriter(c.br, c.bw), nil
}

// finish ends the response after the handler returned: the head if it
// was never written, the last chunk with the trailers, and the verdict on
// a body shorter than its Content-Length.
func (w *response) finish() {
	w.handlerDone = true
	if !w.headWritten {
		w.writeHead()
	}
	if w.werr != nil {
		return
	}
	bw := w.c.bw
	switch {
	case w.chunked:
		bw.WriteString("0\r\n")
		for k, vv := range w.hdr {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				writeField(bw, name, vv)
			}
		}
		bw.WriteString("\r\n")
	case !w.noBody && w.length >= 0 && w.written < w.length:
		// The client waits for bytes that will not come: end it.
		w.closeAfter = true
	}
}

// reqBody is the request body the handler reads: it sends the 100
// Continue a client asked for on the first read and records whether the
// body was read to its end. It is allocated per request: a goroutine the
// handler started may read it after the handler returned.
type reqBody struct {
	w     *response
	rc    io.ReadCloser
	eof   bool
	state atomic.Int32 // bodyIdle, bodyReading or bodyClosed
}

// reqBody states: the connection's goroutine may drain an unread body
// only while no other goroutine is reading it.
const (
	bodyIdle = iota
	bodyReading
	bodyClosed
)

// errBodyClosed is what a read of a body gets once the connection's
// goroutine took the body over after the handler returned.
var errBodyClosed = errors.New("h1server: read of a request body after its handler returned")

// Read implements io.Reader.
func (b *reqBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if !b.state.CompareAndSwap(bodyIdle, bodyReading) {
		if b.state.Load() == bodyClosed {
			return 0, errBodyClosed
		}
		return 0, errors.New("h1server: concurrent reads of a request body")
	}
	defer b.state.Store(bodyIdle)
	w := b.w
	if w.cont.Load() == contPending {
		w.sendContinue()
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
		w.bodyDone.Store(true)
	}
	return n, err
}

// Close implements io.Closer. It does not drain the body: the
// connection's goroutine does once the handler returned, or closes.
func (b *reqBody) Close() error { return nil }

// The response is also the request's stream.Downstream, for a Server
// whose Streams handler serves it.
var _ stream.Downstream = (*response)(nil)

// Request implements stream.Downstream.
func (w *response) Request() *http.Request { return w.req }

// Conn implements stream.Downstream: the connection ServeConn was given.
func (w *response) Conn() net.Conn { return w.c.rwc }

// WriteTrailers implements stream.Downstream: the trailers go after the
// last chunk of a chunked body (finish), and nowhere otherwise.
func (w *response) WriteTrailers(t http.Header) {
	if w.resetCode != 0 {
		return
	}
	for k, vv := range t {
		w.hdr[http.TrailerPrefix+k] = vv
	}
}

// Reset implements stream.Downstream: once the handler returns, what was
// written is flushed as it is and the connection closes.
func (w *response) Reset(code stream.ResetCode) {
	if code == 0 {
		code = stream.ResetInternalError
	}
	w.resetCode = code
	if w.werr == nil {
		w.werr = errReset
	}
}

// errReset is a write's error after Reset.
var errReset = errors.New("h1server: write after the stream was reset")
