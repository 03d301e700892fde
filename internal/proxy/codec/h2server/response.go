package h2server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
	streamapi "github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

// responseWriter is a stream's http.ResponseWriter. The handler's
// goroutine alone uses its fields; what it hands to the writer goes
// through the stream under the connection's lock.
type responseWriter struct {
	s   *stream
	req *http.Request
	hdr http.Header

	status      int
	wroteHeader bool
	headQueued  bool
	head        []hpack.HeaderField // the final header block, until queued
	noBody      bool                // HEAD, 204, 304: the body is dropped
	declared    []string            // trailer names declared in "Trailer"
	trailer     http.Header         // WriteTrailers'
	reset       http2.ErrCode       // Reset's code, 0: none
}

var _ streamapi.Downstream = (*responseWriter)(nil)

// Request implements streamapi.Downstream.
func (w *responseWriter) Request() *http.Request { return w.req }

// Conn implements streamapi.Downstream: the connection the codec was given.
func (w *responseWriter) Conn() net.Conn { return w.s.c.rwc }

// WriteTrailers implements streamapi.Downstream: t is sent in a HEADERS
// frame with END_STREAM after the body.
func (w *responseWriter) WriteTrailers(t http.Header) {
	if w.reset == 0 {
		w.trailer = t
	}
}

// Reset implements streamapi.Downstream: RST_STREAM with code once the
// handler returns; writes fail from now on.
func (w *responseWriter) Reset(code streamapi.ResetCode) {
	if code == 0 {
		code = streamapi.ResetInternalError
	}
	w.reset = http2.ErrCode(code)
}

var _ streamapi.CancelNotifier = (*responseWriter)(nil)

// NotifyCancel implements streamapi.CancelNotifier: l is told when the
// stream's context is cancelled (the client reset the stream, the
// connection ended) while the handler runs, so that the connection
// manager derives no context of its own from it.
func (w *responseWriter) NotifyCancel(l streamapi.CancelListener) bool {
	s := w.s
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.err != nil || s.ctx.Err() != nil {
		return false
	}
	s.cl = l
	return true
}

// StopNotify implements streamapi.CancelNotifier.
func (w *responseWriter) StopNotify() {
	c := w.s.c
	c.mu.Lock()
	w.s.cl = nil
	c.mu.Unlock()
}

// EnableFullDuplex implements streamapi.Downstream: HTTP/2 always is.
func (w *responseWriter) EnableFullDuplex() error { return nil }

// Hijack implements streamapi.Downstream: an HTTP/2 stream has no
// connection of its own to give.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, streamapi.ErrNotHijackable
}

// errWriteAfterReset is Write's error once the handler reset the stream.
var errWriteAfterReset = errors.New("h2server: write after the stream was reset")

// SetReadDeadline implements streamapi.Downstream: a body read blocked past
// t fails with os.ErrDeadlineExceeded. Safe for concurrent use.
func (w *responseWriter) SetReadDeadline(t time.Time) error {
	s := w.s
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.rdTimer != nil {
		s.rdTimer.Stop()
		s.rdTimer = nil
	}
	s.rdGen++
	s.rdExpired = false
	if t.IsZero() {
		return nil
	}
	d := time.Until(t)
	if d <= 0 {
		s.rdExpired = true
		s.inCond.Broadcast()
		return nil
	}
	gen := s.rdGen
	s.rdTimer = time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if s.rdGen == gen {
			s.rdExpired = true
			s.inCond.Broadcast()
		}
	})
	return nil
}

// Header implements http.ResponseWriter.
func (w *responseWriter) Header() http.Header { return w.hdr }

// WriteHeader implements http.ResponseWriter. 1xx statuses but 101 are
// sent at once as interim responses; the final header block is sent with
// the first flush, or once its data fills a frame, or at the end.
func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader || w.reset != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic("h2server: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		fields := w.fields(code, false)
		c := w.s.c
		c.mu.Lock()
		if w.s.err == nil {
			w.s.heads = append(w.s.heads, headBlock{fields: fields})
			w.s.readyLocked()
		}
		c.mu.Unlock()
		return
	}
	w.wroteHeader = true
	w.status = code
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	for _, v := range w.hdr["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				w.declared = append(w.declared, http.CanonicalHeaderKey(k))
			}
		}
	}
	w.head = w.fields(code, true)
}

// fields turns the header map into the fields of a header block:
// :status first, names lower-cased, connection-specific fields and
// trailers left out.
func (w *responseWriter) fields(code int, final bool) []hpack.HeaderField {
	out := make([]hpack.HeaderField, 0, len(w.hdr)+2)
	out = append(out, hpack.HeaderField{Name: ":status", Value: statusText(code)})
	for k, vv := range w.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) || isConnectionSpecific(k) {
			continue
		}
		name := h2frame.LowerName(k)
		if !httpguts.ValidHeaderFieldName(name) {
			continue
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			out = append(out, hpack.HeaderField{Name: name, Value: v})
		}
	}
	if final {
		if _, ok := w.hdr["Date"]; !ok {
			out = append(out, hpack.HeaderField{Name: "date", Value: httpDate()})
		}
	}
	return out
}

func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 404:
		return "404"
	}
	return strconv.Itoa(code)
}

func isConnectionSpecific(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// queueHeadLocked hands the final header block to the writer.
func (w *responseWriter) queueHeadLocked(end bool) {
	w.headQueued = true
	w.s.heads = append(w.s.heads, headBlock{fields: w.head, end: end})
	w.head = nil
}

// Write implements http.ResponseWriter: p is queued for the writer; the
// call waits while the stream has maxPending bytes queued already (a
// slow client slows its own stream's handler only).
func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.reset != 0 {
		return 0, errWriteAfterReset
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	s := w.s
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for len(p) > 0 {
		if s.err != nil {
			return n, s.err
		}
		if !w.headQueued {
			w.queueHeadLocked(false)
		}
		pending := s.out.Len()
		if pending >= maxPending {
			s.readyLocked()
			s.outCond.Wait()
			continue
		}
		k := min(len(p), maxPending-pending)
		s.out.Append(p[:k])
		p = p[k:]
		n += k
		if s.out.Len() >= frameSize {
			s.readyLocked()
		}
	}
	return n, nil
}

// Flush implements http.Flusher: what is queued goes to the writer now.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush for http.ResponseController.
func (w *responseWriter) FlushError() error {
	if w.reset != 0 {
		return errWriteAfterReset
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	s := w.s
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if !w.headQueued {
		w.queueHeadLocked(false)
	}
	s.readyLocked()
	return nil
}

// finishLocked ends the response once the handler returned: the header
// block if not sent yet (with content-length when the whole body is
// known), the rest of the body, trailers, END_STREAM.
func (w *responseWriter) finishLocked() {
	s := w.s
	if s.err != nil {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	trailers := w.trailerFields()
	if !w.headQueued {
		n := s.out.Len()
		if !w.noBody && len(trailers) == 0 && w.hdr["Content-Length"] == nil {
			w.head = append(w.head, hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(n)})
		}
		w.queueHeadLocked(n == 0 && len(trailers) == 0)
		if n == 0 && len(trailers) == 0 {
			s.readyLocked()
			return
		}
	}
	s.trailers = trailers
	s.endPending = true
	s.readyLocked()
}

// trailerFields are the response's trailers: header map keys with
// http.TrailerPrefix, and the names declared in "Trailer".
func (w *responseWriter) trailerFields() []hpack.HeaderField {
	n := len(w.trailer) + len(w.declared)
	for k := range w.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	// Sized for a value per name, the usual case (gRPC's status and
	// message), so that the slice grows at most rarely.
	out := make([]hpack.HeaderField, 0, n)
	add := func(k string, vv []string) {
		name := h2frame.LowerName(k)
		if !httpguts.ValidHeaderFieldName(name) || isConnectionSpecific(http.CanonicalHeaderKey(k)) {
			return
		}
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				out = append(out, hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
	for k, vv := range w.hdr {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			add(name, vv)
		}
	}
	for _, k := range w.declared {
		add(k, w.hdr[k])
	}
	for k, vv := range w.trailer {
		add(k, vv)
	}
	return out
}

// dateCache holds the Date header of the current second.
var dateCache atomic.Pointer[dateValue]

type dateValue struct {
	sec int64
	s   string
}

func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.s
	}
	d := &dateValue{sec: now.Unix(), s: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}
