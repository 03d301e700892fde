package router

import (
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/hcm"
)

// errUpstreamBody marks a failure reading the upstream response body, as
// opposed to writing it downstream.
var errUpstreamBody = errors.New("upstream body")

// writeResponse copies an upstream response downstream: headers minus
// hop-by-hop ones, the body streamed through a pooled buffer, then the
// trailers. A response of unknown length (gRPC, server-sent events,
// chunked streams) is flushed whenever the next read of the upstream body
// would wait: at once per read, or, when the upstream codec can tell what
// has arrived (stream.ReadyReader), only when nothing more has, so that a
// response that arrived whole (a unary gRPC call: head, message,
// trailers) leaves in one write when the stream ends.
func writeResponse(w stream.Downstream, resp *http.Response, st *hcm.Stream, ex *hcm.Exchange) error {
	defer resp.Body.Close()
	hdr := w.Header()
	for k, vv := range resp.Header {
		if hcm.IsHopByHop(k) {
			continue
		}
		hdr[k] = vv
	}
	if conn, ok := resp.Header["Connection"]; ok {
		hcm.RemoveConnectionTokens(hdr, conn)
	}
	if _, ok := resp.Header["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // no content sniffing
	}
	w.WriteHeader(resp.StatusCode)
	streaming := resp.ContentLength < 0
	ready, _ := resp.Body.(stream.ReadyReader)
	if !streaming {
		ready = nil
	}
	// unflushed: written downstream, and to be flushed before a read
	// that waits (the client may be waiting for it: gRPC streams).
	unflushed := streaming

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		var n int
		var rerr error
		if ready != nil {
			n, rerr = ready.ReadReady(buf)
		}
		if n == 0 && rerr == nil {
			if unflushed {
				w.Flush()
				unflushed = false
			}
			n, rerr = resp.Body.Read(buf)
		}
		if n > 0 {
			st.Touch()
			wn, werr := w.Write(buf[:n])
			ex.Sent += uint64(wn)
			if werr != nil {
				return werr
			}
			if streaming && ready == nil {
				w.Flush()
			} else {
				unflushed = streaming
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return errors.Join(errUpstreamBody, rerr)
		}
	}
	ex.WriteTrailers(resp.Trailer)
	return nil
}

// bufPool holds the 32 KiB buffers bodies are copied through.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
