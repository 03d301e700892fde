package hcm

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

// Exchange holds the per-request state the handler would otherwise
// allocate; pooled. Nothing in it may be referenced by the upstream
// request once the handler returns.
type Exchange struct {
	Req   RequestView
	start time.Time
	Stats *Stats
	// ds is the downstream stream, conn its connection as the
	// connection manager knows it (nil when it came from elsewhere).
	ds   stream.Downstream
	conn *Conn

	// The outcome, filled as the request goes.
	Status         int
	Flags          accesslog.ResponseFlags
	Sent, received uint64
	Attempts       uint32
	FirstByte      time.Time
	route          *table.Route
	view           *cluster.View
	Endpoint       *cluster.Endpoint
	edge           *meshmetrics.Edge
	Stream         *Stream
	log            accesslog.Entry
	// trailer is what the response's trailers were (WriteTrailers);
	// reset says the stream was reset (Reset).
	trailer http.Header
	reset   bool
	// filters ran on the request (nil: none); filt is their state.
	filters *chain.Chain
	filt    chain.Stream
	// Trace is the request's trace (ids, start, server span when
	// sampled); tracer is its chain's Tracer, nil when the chain does not
	// trace, and traceFormats the headers written upstream.
	Trace        tracing.Request
	tracer       *tracing.Tracer
	traceFormats propagation.Formats
	traceCC      *ChainConfig
	traceReq     *http.Request
	// traceDecided says a sampling decision came with the request.
	traceDecided bool
	// traceSpanID is the last attempt's client span id (egress), for the
	// access log.
	traceSpanID [8]byte
}

var exchangePool = sync.Pool{New: func() any { return new(Exchange) }}

func (ex *Exchange) release() {
	ex.filt.End()
	*ex = Exchange{}
	exchangePool.Put(ex)
}

// Conn is the downstream connection of the request; nil when it did not
// come through a listener.
func (ex *Exchange) Conn() *Conn { return ex.conn }

// Reply answers the request locally, as Envoy's sendLocalReply does, and
// records the outcome: text/plain, no sniffing. When HTTP filters ran on
// the request the reply goes through their response phase, as Envoy
// encodes a local reply through the filters that decoded the request: a
// browser's 503 carries the CORS headers, a gRPC call's (gRPC-Web's too)
// is a trailers-only gRPC response whose grpc-status maps the HTTP status.
func (ex *Exchange) Reply(status int, body string, flags accesslog.ResponseFlags) {
	if ex.filters != nil {
		status, body = ex.filters.LocalReply(&ex.filt, ex.ds.Request(), status, body, ex.ds.Header())
	}
	ex.reply(status, body, flags)
}

// reply sends a local reply as it is.
func (ex *Exchange) reply(status int, body string, flags accesslog.ResponseFlags) {
	ex.Status = status
	ex.Flags |= flags
	ex.Sent = uint64(len(body))
	hdr := ex.ds.Header()
	if body != "" {
		hdr["Content-Type"] = textPlain
		hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	} else {
		hdr["Content-Length"] = zeroLength
	}
	ex.ds.WriteHeader(status)
	if body != "" {
		_, _ = io.WriteString(ex.ds, body)
	}
}

var (
	textPlain  = []string{"text/plain"}
	zeroLength = []string{"0"}
)

// Reset ends the stream abnormally (stream.Downstream.Reset): the
// response, if started, is left incomplete.
func (ex *Exchange) Reset(code stream.ResetCode) {
	ex.reset = true
	ex.ds.Reset(code)
}

// WriteTrailers sends the response's trailers, after its body.
func (ex *Exchange) WriteTrailers(t http.Header) {
	if len(t) == 0 {
		return
	}
	ex.trailer = t
	ex.ds.WriteTrailers(t)
}

// BadRequest answers a request whose body could not be read (a malformed
// chunk, fewer bytes than its Content-Length, an HTTP/2 stream that ended
// short of its content-length): 400, response flag DPE, counted as a
// downstream protocol error, as Envoy does. An HTTP/1.1 connection is
// closed after it: where the next request starts is unknown.
func (ex *Exchange) BadRequest(cause error) {
	ex.Stats.CxProtocolError.Inc()
	if ex.ds.Request().ProtoMajor == 1 {
		ex.ds.Header()["Connection"] = connClose
	}
	body := BodyBadRequestBody
	if cause != nil {
		body += ": " + cause.Error()
	}
	ex.Reply(http.StatusBadRequest, body, accesslog.DownstreamProtocolError)
}

// BodyBadRequestBody starts the local reply to a request whose body
// failed; the reason follows.
const BodyBadRequestBody = "bad request body"

// BodyRetryBufferExceeded is Envoy's local reply (507) when a retry needs
// more of the request body than the retry buffer kept.
const BodyRetryBufferExceeded = "exceeded request buffer limit while retrying upstream"

var connClose = []string{"close"}

// FilterResponse runs the response phase of the HTTP filters that ran on
// the request (none: nothing) on the upstream response's head, before the
// router writes it.
func (ex *Exchange) FilterResponse(resp *http.Response) { ex.filters.Response(&ex.filt, resp) }
