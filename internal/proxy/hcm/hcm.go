package hcm

import (
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tap"
	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

// The HTTP connection manager's side of one stream: ServeHTTP takes a
// request from either codec (h1server or net/http), counts it, routes it
// (route, routeTo), hands it to the router (forward, router.go) and ends
// it with its stats, mesh metrics and access log (finish). Local replies
// and the exchange (what the access log records) live here.

// Envoy's local replies.
const (
	BodyNoHealthyUpstream = "no healthy upstream"
	BodyTimeout           = "upstream request timeout"
	BodyConnectFailure    = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	BodyReset             = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
	BodyOverflow          = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
	BodyStreamTimeout     = "stream timeout"
	bodyTooManyHeaders    = "Request Header Fields Too Large"
)

// ErrRouteTimeout is the cause of a request context cancelled by the
// route timeout.
var ErrRouteTimeout = errors.New("route timeout")

// ServeHTTP routes and forwards one request, then counts it and writes
// its access log lines.
func (h *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cc := h.Config.Load()
	hs := cc.Stats
	ex := exchangePool.Get().(*Exchange)
	ex.start = start
	ex.Stats = hs
	hs.rqTotal.Inc()
	hs.rqActive.Inc()
	if r.ProtoMajor == 2 {
		hs.rqHTTP2Total.Inc()
	} else {
		hs.rqHTTP1Total.Inc()
	}
	ci, _ := r.Context().Value(ConnKey{}).(*Conn)
	if ci != nil {
		ci.noteProto(r.ProtoMajor)
	}
	ex.Req.init(r, h.scheme)
	// x-meshlens-source never passes through a proxy: the application
	// never sees it, and a request forwarded into the mesh carries the
	// proxy's own (set when routed), never one its client made up. On a
	// gateway or a sidecar's egress it is not read at all: the client is
	// outside the mesh or the local application.
	var src string
	if v := r.Header[meshmetrics.SourceHeader]; len(v) > 0 {
		src = v[0]
		delete(r.Header, meshmetrics.SourceHeader)
	}
	cs := r.TLS // nil under the framing guard's wrapper
	if cs == nil && ci != nil {
		cs = ci.tls
	}
	setXFCC(r.Header, cs, h.localURI)
	if cc.Dir == table.Inbound {
		// Health checks (Envoy's and ours send User-Agent Envoy/HC) are
		// not service traffic: Envoy's stats count them, the mesh
		// metrics and so the service graph do not.
		if h.env.Mesh != nil && (src != "" || !cluster.IsHealthCheck(r)) {
			ex.edge = h.env.Mesh.Caller(cs, cc.ListenerTLS, src)
		}
	}
	// Deferred so that a request aborted mid-body (panic
	// http.ErrAbortHandler) is counted and logged too.
	defer h.finish(w, r, ex, cc, ci)
	h.route(w, r, ex, cc)
	h.ensureAnswered(w, r, ex)
}

// bodyUnanswered is the local reply of ensureAnswered.
const bodyUnanswered = "the proxy did not answer this request"

// ensureAnswered runs when the request's handling returned: every path
// must have answered (ex.status set by a local reply, an upstream
// response or a tunnel) or found the client gone. A path that did
// neither is a bug which the server would hide behind its default empty
// 200, as if the request had been forwarded: it is answered 500 with
// response flag NRW, counted as downstream_rq_unanswered and logged as
// an error.
func (h *Server) ensureAnswered(w http.ResponseWriter, r *http.Request, ex *Exchange) {
	switch {
	case ex.Status != 0:
		return
	case ex.Flags.Has(accesslog.DownstreamConnectionTermination):
		// Nobody to answer: end the stream without the server's
		// default response.
		panic(http.ErrAbortHandler)
	}
	ex.Stats.rqUnanswered.Inc()
	route := ""
	if ex.route != nil {
		route = ex.route.Name
	}
	h.env.Log.Error("request handled without a response; answered 500", "method", r.Method, "path", ex.Req.path, "route", route)
	ex.Reply(w, http.StatusInternalServerError, bodyUnanswered, accesslog.NoResponseWritten)
}

// route finds the request's route and cluster and forwards it, or
// answers it locally.
func (h *Server) route(w http.ResponseWriter, r *http.Request, ex *Exchange, cc *ChainConfig) {
	hs := cc.Stats
	if n, size := headerCount(r); size > h.maxHdr || n > int(cc.Chain.HTTP.MaxHeadersCount) && cc.Chain.HTTP.MaxHeadersCount > 0 {
		h.tooManyHeaders(w, r, ex, cc)
		return
	}
	if r.Method == http.MethodConnect {
		// Only a sidecar's egress tunnels (HTTPS_PROXY clients): on a
		// gateway or an inbound listener a tunnel would carry anything
		// past the routes, their timeouts and the per-request stats.
		// HTTP/2 CONNECT (extended or not) is not tunnelled anywhere.
		if cc.Dir != table.Outbound || r.ProtoMajor != 1 {
			ex.Reply(w, http.StatusMethodNotAllowed, "", 0)
			return
		}
		h.connect(w, r, ex, cc)
		return
	}
	upgrade := upgradeType(r)
	if upgrade != "" && !cc.Chain.HTTP.UpgradeAllowed(upgrade) {
		// Envoy refuses an upgrade its connection manager was not
		// configured for, and counts it (WebSocket or not) as
		// downstream_rq_ws_on_non_ws_route.
		hs.rqWsOnNonWsRoute.Inc()
		ex.Reply(w, http.StatusForbidden, "", 0)
		return
	}
	route, view := routeTo(w, ex, cc)
	if cc.Tracer != nil {
		ci, _ := r.Context().Value(ConnKey{}).(*Conn)
		ex.beginTrace(r, cc, ci)
	}
	if view == nil {
		return
	}
	if cc.Dir != table.Inbound {
		if e := view.Edges[meshmetrics.EdgeKey{Service: route.Meta.VirtualService, Route: route.Name}]; e != nil {
			ex.edge = e
			r.Header[meshmetrics.SourceHeader] = e.Header()
		} else {
			delete(r.Header, meshmetrics.SourceHeader)
		}
	}
	if cc.Filters != nil && !runFilters(w, r, ex, cc.Filters, route) {
		return
	}
	if upgrade != "" {
		h.upgrade(w, r, ex, cc.Chain.HTTP, route, view)
		return
	}
	h.env.Router.Forward(w, r, ex, cc.Chain.HTTP, route, view)
}

// headerCount is the number of header fields of a request as Envoy's
// max_headers_count counts them (every field line or HTTP/2 field, Host
// or :authority included, the other pseudo-headers not), and their size
// as Envoy's max_request_headers_kb measures it (names and values).
func headerCount(r *http.Request) (n, size int) {
	for k, vv := range r.Header {
		n += len(vv)
		for _, v := range vv {
			size += len(k) + len(v)
		}
	}
	if r.Host != "" {
		n++
		size += len("host") + len(r.Host)
	}
	return n, size
}

// tooManyHeaders answers a request over max_headers_count or
// max_request_headers_kb with 431, as Envoy's codecs refuse it: HTTP/1.1
// closes the connection after the answer and counts a downstream
// protocol error; HTTP/2 refuses that stream only and counts
// http2.header_overflow. (Plaintext HTTP/1.1 heads over the size are
// refused before, by the server: h1server.)
func (h *Server) tooManyHeaders(w http.ResponseWriter, r *http.Request, ex *Exchange, cc *ChainConfig) {
	if r.ProtoMajor == 1 {
		w.Header()["Connection"] = connectionClose
		cc.Stats.CxProtocolError.Inc()
	} else {
		h.env.H2HeaderOverflow.Inc()
	}
	ex.Reply(w, http.StatusRequestHeaderFieldsTooLarge, bodyTooManyHeaders, accesslog.DownstreamProtocolError)
}

var connectionClose = []string{"close"}

// routeTo finds the request's route and draws its cluster. When there is
// nothing to forward to it answers locally (404 without a route, the
// route's direct response, 503 for a cluster CDS did not send) and
// returns a nil view.
func routeTo(w http.ResponseWriter, ex *Exchange, cc *ChainConfig) (*table.Route, *cluster.View) {
	hs := cc.Stats
	_, route := cc.Chain.HTTP.Routes.Route(&ex.Req)
	if route == nil {
		hs.noRoute.Inc()
		ex.Reply(w, http.StatusNotFound, "", accesslog.NoRouteFound)
		return nil, nil
	}
	ex.route = route
	if route.DirectStatus != 0 {
		hs.directResponse.Inc()
		ex.Reply(w, route.DirectStatus, route.DirectBody, 0)
		return nil, nil
	}
	view := cc.Clusters.View(route.PickCluster(rand.Uint32()))
	if view == nil {
		hs.noCluster.Inc()
		ex.Reply(w, http.StatusServiceUnavailable, BodyNoHealthyUpstream, accesslog.NoClusterFound)
		return nil, nil
	}
	ex.view = view
	return route, view
}

// finish counts a finished request in the connection manager's stats and
// the mesh metrics, writes its access log lines and returns its exchange
// to the pool.
func (h *Server) finish(w http.ResponseWriter, r *http.Request, ex *Exchange, cc *ChainConfig, ci *Conn) {
	d := time.Since(ex.start)
	if ex.Stream != nil {
		ex.received = ex.Stream.received.Load()
	}
	hs := cc.Stats
	hs.rqActive.Dec()
	if ex.Status != 0 {
		hs.codes.Class(ex.Status).Inc()
		hs.rqCompleted.Inc()
	}
	if ex.tracer != nil && ex.Trace.Ctx.Sampled {
		hs.rqTime.RecordDurationWithExemplar(d, ex.Trace.Ctx.TraceID)
	} else {
		hs.rqTime.RecordDuration(d)
	}
	if r.ProtoMajor == 2 && ci != nil {
		h.noteStreamEnd(ci, hs, r, ex.Status, d)
	}
	if ex.edge != nil {
		ex.edge.Record(meshmetrics.RequestProto(r), ex.Status, d, ex.received, ex.Sent)
	}
	if ex.tracer != nil {
		ex.endTrace(w, r, cc, ci, d)
	}
	if len(cc.Logs) > 0 {
		e := &ex.log
		e.Start = ex.start
		e.Method, e.Path, e.Authority, e.Scheme = r.Method, ex.Req.path, r.Host, ex.Req.scheme
		e.Protocol = accesslog.ProtocolName(r.ProtoMajor, r.ProtoMinor)
		e.Request = accesslog.HTTPHeader(r.Header)
		if ex.Status != 0 {
			e.Response = accesslog.HTTPHeader(w.Header())
		}
		e.ResponseCode, e.Flags = ex.Status, ex.Flags
		e.BytesReceived, e.BytesSent = ex.received, ex.Sent
		e.Duration = d
		if !ex.FirstByte.IsZero() {
			e.ResponseDuration = max(ex.FirstByte.Sub(ex.start), 1)
		}
		if ex.Endpoint != nil {
			e.UpstreamHost = ex.Endpoint.Addr
		}
		if ex.view != nil {
			e.UpstreamCluster = ex.view.Cluster.Name
		}
		if ex.route != nil {
			e.RouteName = ex.route.Name
		}
		e.AttemptCount = ex.Attempts
		if ex.tracer != nil {
			e.TraceID, e.SpanID = ex.Trace.Ctx.TraceID, ex.Trace.Ctx.SpanID
			if ex.traceCC.Dir == table.Outbound {
				e.SpanID = ex.traceSpanID
			}
		}
		if ci != nil {
			e.DownstreamRemote, e.DownstreamLocal = ci.Info.Remote, ci.Info.Dst
			e.RequestedServerName = ci.Info.ServerName
			e.ConnectionID = ci.Info.ID
		}
		if r.TLS != nil {
			e.DownstreamTLSVersion = accesslog.TLSVersionName(r.TLS.Version)
		}
		for _, l := range cc.Logs {
			l.Writer.LogEntry(l.Format, e)
		}
	}
	if ts := tap.Load(); ts != nil {
		tapRequest(ts, w, r, ex, cc, ci, d)
	}
	ex.release()
}

// localReply answers a request from the proxy itself, as Envoy's
// sendLocalReply does: text/plain, no sniffing.
func localReply(w http.ResponseWriter, status int, body string) {
	hdr := w.Header()
	if body != "" {
		hdr["Content-Type"] = textPlain
		hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	} else {
		hdr["Content-Length"] = zeroLength
	}
	w.WriteHeader(status)
	if body != "" {
		_, _ = io.WriteString(w, body)
	}
}

var (
	textPlain  = []string{"text/plain"}
	zeroLength = []string{"0"}
)

// Exchange holds the per-request state the handler would otherwise
// allocate; pooled. Nothing in it may be referenced by the upstream
// request once the handler returns.
type Exchange struct {
	Req   RequestView
	start time.Time
	Stats *Stats

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

// Reply answers the request locally (localReply) and records the outcome.
func (ex *Exchange) Reply(w http.ResponseWriter, status int, body string, flags accesslog.ResponseFlags) {
	ex.Status = status
	ex.Flags |= flags
	ex.Sent = uint64(len(body))
	localReply(w, status, body)
}

// BadRequest answers a request whose body could not be read (a malformed
// chunk, fewer bytes than its Content-Length, an HTTP/2 stream that ended
// short of its content-length): 400, response flag DPE, counted as a
// downstream protocol error, as Envoy does. An HTTP/1.1 connection is
// closed after it: where the next request starts is unknown.
func (ex *Exchange) BadRequest(w http.ResponseWriter, r *http.Request, cause error) {
	ex.Stats.CxProtocolError.Inc()
	if r.ProtoMajor == 1 {
		w.Header()["Connection"] = connClose
	}
	body := BodyBadRequestBody
	if cause != nil {
		body += ": " + cause.Error()
	}
	ex.Reply(w, http.StatusBadRequest, body, accesslog.DownstreamProtocolError)
}

// BodyBadRequestBody starts the local reply to a request whose body
// failed; the reason follows.
const BodyBadRequestBody = "bad request body"

// BodyRetryBufferExceeded is Envoy's local reply (507) when a retry needs
// more of the request body than the retry buffer kept.
const BodyRetryBufferExceeded = "exceeded request buffer limit while retrying upstream"

var connClose = []string{"close"}

var exchangePool = sync.Pool{New: func() any { return new(Exchange) }}

func (ex *Exchange) release() {
	ex.filt.End()
	*ex = Exchange{}
	exchangePool.Put(ex)
}

// FilterResponse runs the response phase of the HTTP filters that ran on
// the request (none: nothing) on the upstream response's head, before the
// router writes it.
func (ex *Exchange) FilterResponse(resp *http.Response) { ex.filters.Response(&ex.filt, resp) }
