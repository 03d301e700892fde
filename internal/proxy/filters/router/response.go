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
// hop-by-hop ones, the body streamed through a pooled buffer (flushed per
// read when the response is of unknown length: gRPC, server-sent events,
// chunked streams), then the trailers.
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
	if streaming {
		w.Flush() // headers now: the client may be waiting for them (gRPC streams)
	}

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			st.Touch()
			wn, werr := w.Write(buf[:n])
			ex.Sent += uint64(wn)
			if werr != nil {
				return werr
			}
			if streaming {
				w.Flush()
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
