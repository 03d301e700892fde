package hcm

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tap"
)

// The HTTP connection manager's side of one stream: ServeStream takes a
// stream from a downstream codec (package codec/stream), counts it,
// routes it (route, routeTo), runs the HTTP filters, hands it to the
// router (Env.Router) and ends it with its stats, mesh metrics and access
// log (finish). Local replies and the exchange (what the access log
// records) are in reply.go.

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

var _ stream.Handler = (*Server)(nil)

// ServeStream routes and forwards one request, then counts it and writes
// its access log lines.
func (h *Server) ServeStream(s stream.Downstream) {
	start := time.Now()
	r := s.Request()
	cc := h.Config.Load()
	hs := cc.Stats
	ex := exchangePool.Get().(*Exchange)
	ex.start = start
	ex.Stats = hs
	ex.ds = s
	hs.rqTotal.Inc()
	hs.rqActive.Inc()
	if r.ProtoMajor == 2 {
		hs.rqHTTP2Total.Inc()
	} else {
		hs.rqHTTP1Total.Inc()
	}
	ci := srvConnOf(s.Conn())
	ex.conn = ci
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
	// Deferred so that a stream whose handling panicked (a bug) is
	// counted and logged too.
	defer h.finish(s, r, ex, cc, ci)
	h.route(s, r, ex, cc)
	h.ensureAnswered(s, r, ex)
}

// bodyUnanswered is the local reply of ensureAnswered.
const bodyUnanswered = "the proxy did not answer this request"

// ensureAnswered runs when the request's handling returned: every path
// must have answered (ex.status set by a local reply, an upstream
// response or a tunnel), reset the stream or found the client gone. A
// path that did none is a bug which the codec would hide behind its
// default empty 200, as if the request had been forwarded: it is
// answered 500 with response flag NRW, counted as
// downstream_rq_unanswered and logged as an error.
func (h *Server) ensureAnswered(s stream.Downstream, r *http.Request, ex *Exchange) {
	switch {
	case ex.Status != 0 || ex.reset:
		return
	case ex.Flags.Has(accesslog.DownstreamConnectionTermination):
		// Nobody to answer: end the stream without the codec's default
		// response.
		ex.Reset(stream.ResetCancel)
		return
	}
	ex.Stats.rqUnanswered.Inc()
	route := ""
	if ex.route != nil {
		route = ex.route.Name
	}
	h.env.Log.Error("request handled without a response; answered 500", "method", r.Method, "path", ex.Req.path, "route", route)
	ex.Reply(http.StatusInternalServerError, bodyUnanswered, accesslog.NoResponseWritten)
}

// route finds the request's route and cluster, runs the HTTP filters and
// forwards it, or answers it locally.
func (h *Server) route(s stream.Downstream, r *http.Request, ex *Exchange, cc *ChainConfig) {
	hs := cc.Stats
	if n, size := headerCount(r); size > h.maxHdr || n > int(cc.Chain.HTTP.MaxHeadersCount) && cc.Chain.HTTP.MaxHeadersCount > 0 {
		h.tooManyHeaders(s, r, ex, cc)
		return
	}
	if r.Method == http.MethodConnect {
		// Only a sidecar's egress tunnels (HTTPS_PROXY clients): on a
		// gateway or an inbound listener a tunnel would carry anything
		// past the routes, their timeouts and the per-request stats.
		// HTTP/2 CONNECT (extended or not) is not tunnelled anywhere.
		if cc.Dir != table.Outbound || r.ProtoMajor != 1 {
			ex.Reply(http.StatusMethodNotAllowed, "", 0)
			return
		}
		h.connect(s, r, ex, cc)
		return
	}
	upgrade := upgradeType(r)
	if upgrade != "" && !cc.Chain.HTTP.UpgradeAllowed(upgrade) {
		// Envoy refuses an upgrade its connection manager was not
		// configured for, and counts it (WebSocket or not) as
		// downstream_rq_ws_on_non_ws_route.
		hs.rqWsOnNonWsRoute.Inc()
		ex.Reply(http.StatusForbidden, "", 0)
		return
	}
	route, view, ans := routeTo(ex, cc)
	if cc.Tracer != nil {
		ex.beginTrace(r, cc, ex.conn)
	}
	if view != nil && cc.Dir != table.Inbound {
		if e := view.Edges[meshmetrics.EdgeKey{Service: route.Meta.VirtualService, Route: route.Name}]; e != nil {
			ex.edge = e
			r.Header[meshmetrics.SourceHeader] = e.Header()
		} else {
			delete(r.Header, meshmetrics.SourceHeader)
		}
	}
	// The filters run whatever the route's answer, as Envoy's run
	// before its router: a direct response or a missing cluster's 503
	// carries CORS headers, and a fault or rate limit applies to it.
	if cc.Filters != nil && !runFilters(r, ex, cc.Filters, route) {
		return
	}
	if ans.status != 0 {
		ex.Reply(ans.status, ans.body, ans.flags)
		return
	}
	if upgrade != "" {
		h.upgrade(s, r, ex, cc.Chain.HTTP, route, view)
		return
	}
	h.env.Router.Forward(s, ex, cc.Chain.HTTP, route, view)
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
func (h *Server) tooManyHeaders(s stream.Downstream, r *http.Request, ex *Exchange, cc *ChainConfig) {
	if r.ProtoMajor == 1 {
		s.Header()["Connection"] = connectionClose
		cc.Stats.CxProtocolError.Inc()
	} else {
		h.env.H2HeaderOverflow.Inc()
	}
	ex.Reply(http.StatusRequestHeaderFieldsTooLarge, bodyTooManyHeaders, accesslog.DownstreamProtocolError)
}

var connectionClose = []string{"close"}

// answer is a local reply decided before the filters ran, sent after
// them.
type answer struct {
	status int
	body   string
	flags  accesslog.ResponseFlags
}

// routeTo finds the request's route and draws its cluster. When there is
// nothing to forward to it returns a nil view and the local reply to
// send (404 without a route, the route's direct response, 503 for a
// cluster CDS did not send), counted.
func routeTo(ex *Exchange, cc *ChainConfig) (*table.Route, *cluster.View, answer) {
	hs := cc.Stats
	_, route := cc.Chain.HTTP.Routes.Route(&ex.Req)
	if route == nil {
		hs.noRoute.Inc()
		return nil, nil, answer{http.StatusNotFound, "", accesslog.NoRouteFound}
	}
	ex.route = route
	if route.DirectStatus != 0 {
		hs.directResponse.Inc()
		return route, nil, answer{route.DirectStatus, route.DirectBody, 0}
	}
	view := cc.Clusters.View(route.PickCluster(rand.Uint32()))
	if view == nil {
		hs.noCluster.Inc()
		return route, nil, answer{http.StatusServiceUnavailable, BodyNoHealthyUpstream, accesslog.NoClusterFound}
	}
	ex.view = view
	return route, view, answer{}
}

// finish counts a finished request in the connection manager's stats and
// the mesh metrics, writes its access log lines and returns its exchange
// to the pool.
func (h *Server) finish(s stream.Downstream, r *http.Request, ex *Exchange, cc *ChainConfig, ci *Conn) {
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
		ex.endTrace(s, r, cc, ci, d)
	}
	if len(cc.Logs) > 0 {
		e := &ex.log
		e.Start = ex.start
		e.Method, e.Path, e.Authority, e.Scheme = r.Method, ex.Req.path, r.Host, ex.Req.scheme
		e.Protocol = accesslog.ProtocolName(r.ProtoMajor, r.ProtoMinor)
		e.Request = accesslog.HTTPHeader(r.Header)
		if ex.Status != 0 {
			e.Response = accesslog.HTTPHeader(s.Header())
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
		cs := r.TLS // nil under the framing guard's wrapper
		if cs == nil && ci != nil {
			cs = ci.tls
		}
		if cs != nil {
			e.DownstreamTLSVersion = accesslog.TLSVersionName(cs.Version)
			if len(cs.PeerCertificates) > 0 && len(cs.PeerCertificates[0].URIs) > 0 {
				e.DownstreamPeerURISAN = cs.PeerCertificates[0].URIs[0].String()
			}
		}
		for _, l := range cc.Logs {
			l.Writer.LogEntry(l.Format, e)
		}
	}
	if ts := tap.Load(); ts != nil {
		tapRequest(ts, r, ex, cc, ci, d)
	}
	ex.release()
}
