package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/h1guard"
	"github.com/meshlens/meshlens/internal/proxy/h1server"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tlsctx"
)

// httpServer serves one HTTP filter chain of one listener: plaintext
// HTTP/1.x connections on their own goroutine (h1server), TLS and h2c ones
// through a net/http server fed with the connections the listener matched
// to the chain. It
// outlives snapshots while the chain keeps its name and connection
// settings (serverKey); its route table and clusters are swapped per
// snapshot through cfg.
type httpServer struct {
	p      *Proxy
	key    string
	srv    *http.Server
	h1     *h1server.Server // nil when the chain is TLS or HTTP/2 only
	auto   bool             // plaintext HTTP/1.1 or h2c, told by the preface
	ln     *chanListener
	tls    *tls.Config // nil for plaintext
	scheme string      // "http" or "https"
	cfg    atomic.Pointer[chainConfig]
	done   chan struct{} // closed when Serve returns
	// unusable says why the chain cannot serve (e.g. SDS TLS); its
	// connections are closed.
	unusable string
	// guard: the chain speaks HTTP/1, so its connections go through the
	// framing guard (h1guard) with the chain's header limit.
	guard  bool
	maxHdr int
	// tunnels are the connections upgraded (WebSocket) from requests.
	tunnels sessionSet
}

// chainConfig is what a request reads, once, through httpServer.cfg: the
// filter chain and the snapshot state it belongs to, with the chain's
// stats and access logs.
type chainConfig struct {
	chain *table.FilterChain
	rs    *runtimeState
	dir   table.Direction
	stats *hcmStats
	logs  []chainLog
	// listenerTLS: some chain of the listener terminates TLS, so a
	// client of the mesh is expected to authenticate (mesh metrics).
	listenerTLS bool
}

// chainLog is one access log of a chain: a compiled format and the
// (shared, non-blocking) writer of its file.
type chainLog struct {
	f *accesslog.Format
	w *accesslog.Writer
}

// serverKey identifies the connection-level settings of an HTTP chain: a
// chain whose key changes gets a new server, and the old one drains.
func serverKey(c *table.FilterChain, idle time.Duration, maxHdr int) string {
	var b strings.Builder
	b.WriteString(c.Name)
	b.WriteByte('|')
	b.WriteByte(byte('0' + c.HTTP.Codec))
	b.WriteByte('|')
	b.WriteString(idle.String())
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(maxHdr))
	if t := c.TLS; t != nil {
		b.WriteString("|tls:")
		b.WriteString(strings.Join([]string{t.CertFile, t.KeyFile, t.CAFile, t.SDSCertName, t.SDSCAName,
			strings.Join(t.MatchSANs, ","), strings.Join(t.ALPN, ",")}, ";"))
		if t.RequireClientCert {
			b.WriteString(";require")
		}
	}
	return b.String()
}

// newHTTPServer starts serving a chain. The caller owns the result and
// stops it with drain or close.
func (p *Proxy) newHTTPServer(key string, c *table.FilterChain, idle time.Duration, maxHdr int) *httpServer {
	h := &httpServer{p: p, key: key, scheme: "http", done: make(chan struct{}), guard: c.HTTP.Codec != table.CodecHTTP2, maxHdr: maxHdr}
	protos := new(http.Protocols)
	var next []string
	switch c.HTTP.Codec {
	case table.CodecHTTP1:
		protos.SetHTTP1(true)
		next = []string{"http/1.1"}
	case table.CodecHTTP2:
		protos.SetUnencryptedHTTP2(true)
		protos.SetHTTP2(true)
		next = []string{"h2"}
	default:
		protos.SetHTTP1(true)
		protos.SetUnencryptedHTTP2(true)
		protos.SetHTTP2(true)
		next = []string{"h2", "http/1.1"}
	}
	if c.TLS != nil {
		h.scheme = "https"
		conf, err := tlsctx.DownstreamConfig(c.TLS, next)
		if err != nil {
			h.unusable = err.Error()
		}
		h.tls = conf
	}
	srvMaxHdr := maxHdr
	if c.HTTP.Codec != table.CodecHTTP1 {
		// net/http's HTTP/2 server makes MaxHeaderBytes its header
		// list limit (HPACK's measure: 32 bytes more per field) and
		// ends the whole connection with GOAWAY when a list over it
		// goes on in CONTINUATION frames. So that a list of too many
		// or too large headers costs its stream only (431, route),
		// the connection's bound is set well above the request's.
		srvMaxHdr = max(maxHdr, h2HeaderListBound)
	}
	h.ln = newChanListener()
	h.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: p.cfg.HeaderReadTimeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    srvMaxHdr,
		Protocols:         protos,
		ErrorLog:          p.errLog,
		ConnContext:       connContext,
		ConnState:         h.connState,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 1024,
			// The HTTP/2 analogue of the header size limit: bound the
			// HPACK table too.
			MaxDecoderHeaderTableSize: 64 << 10,
		},
	}
	if c.TLS == nil && c.HTTP.Codec != table.CodecHTTP2 {
		h.h1 = &h1server.Server{
			Handler:           h,
			ReadHeaderTimeout: p.cfg.HeaderReadTimeout,
			IdleTimeout:       idle,
			MaxHeaderBytes:    maxHdr,
			ConnContext:       connContext,
			ConnState:         h.connState,
			OnRefuse:          h.onRefuse,
			Log:               p.log,
		}
		h.auto = c.HTTP.Codec == table.CodecAuto
	}
	go func() {
		defer close(h.done)
		_ = h.srv.Serve(h.ln)
	}()
	return h
}

// h2HeaderListBound is the HTTP/2 header list size (HPACK's measure)
// past which a client that keeps sending CONTINUATION frames loses its
// connection: net/http's default header limit.
const h2HeaderListBound = http.DefaultMaxHeaderBytes

// setKeepAlives turns keep-alive on or off for the chain's connections.
func (h *httpServer) setKeepAlives(on bool) {
	h.srv.SetKeepAlivesEnabled(on)
	if h.h1 != nil {
		h.h1.SetKeepAlivesEnabled(on)
	}
}

// drain stops the server gracefully: idle connections close now, busy
// ones after their response (HTTP/1.1 answers with Connection: close,
// HTTP/2 sends GOAWAY); whatever is left at ctx's end is closed.
func (h *httpServer) drain(ctx context.Context) {
	if h.h1 != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = h.h1.Shutdown(ctx)
		}()
		defer func() { <-done }()
	}
	if err := h.srv.Shutdown(ctx); err != nil {
		_ = h.srv.Close()
	}
	<-h.done
	h.tunnels.drain(ctx)
}

// serve hands a matched downstream connection to the server, after the
// TLS handshake when the chain terminates TLS.
func (h *httpServer) serve(c *srvConn) {
	if h.unusable != "" {
		_ = c.Close()
		return
	}
	var conn net.Conn = c
	if h.tls != nil {
		tc := terminateTLS(c, h.tls, h.p.cfg.HeaderReadTimeout)
		if tc == nil {
			return
		}
		cs := tc.ConnectionState()
		c.info.tls = &cs
		conn = tc
	}
	if h.guard {
		// A request framed both by Content-Length and Transfer-Encoding
		// (a smuggling attempt) must get a 400, not be re-framed.
		conn = h1guard.NewConn(conn, h1guard.Options{MaxHeaderBytes: h.maxHdr, OnReject: h.onReject})
	}
	if h.h1 != nil && (!h.auto || !c.h2Preface(time.Now().Add(h.p.cfg.HeaderReadTimeout))) {
		// Served on this goroutine (the listener's, per connection).
		_ = h.h1.ServeConn(conn)
		return
	}
	h.ln.push(conn)
}

// onReject counts a request the framing guard refused, unless h1server
// serves the connection and so counts the refusal (onRefuse).
func (h *httpServer) onReject(c net.Conn, err error) {
	if cc := h.cfg.Load(); cc != nil && h.h1 == nil {
		cc.stats.cxProtocolError.Inc()
	}
	h.p.log.Debug("request refused: ambiguous framing", "remote", c.RemoteAddr(), "err", err)
}

// onRefuse counts and logs a request h1server answered itself (status)
// because it could not be read or served: a downstream protocol error,
// as Envoy counts its codec errors (downstream_cx_protocol_error, the
// status class, an access log line with flag DPE).
func (h *httpServer) onRefuse(c net.Conn, status int, _ error) {
	cc := h.cfg.Load()
	if cc == nil {
		return
	}
	hs := cc.stats
	hs.cxProtocolError.Inc()
	hs.rqTotal.Inc()
	hs.rqHTTP1Total.Inc()
	hs.codes.Class(status).Inc()
	hs.rqCompleted.Inc()
	if len(cc.logs) == 0 {
		return
	}
	e := &accesslog.Entry{Start: time.Now(), Protocol: "HTTP/1.1", ResponseCode: status, Flags: accesslog.DownstreamProtocolError}
	if sc := srvConnOf(c); sc != nil {
		ci := &sc.info
		e.DownstreamRemote, e.DownstreamLocal = ci.remote, ci.dst
		e.RequestedServerName = ci.serverName
		e.ConnectionID = ci.id
	}
	for _, l := range cc.logs {
		l.w.LogEntry(l.f, e)
	}
}

// srvConnOf finds the listener's connection under the wrappers net/http
// is given (TLS, the framing guard).
func srvConnOf(c net.Conn) *srvConn {
	for c != nil {
		switch v := c.(type) {
		case *srvConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

type connInfoKey struct{}

// connContext gives a request access to what the listener learnt about
// its connection (original destination for ORIGINAL_DST clusters).
func connContext(ctx context.Context, c net.Conn) context.Context {
	if sc := srvConnOf(c); sc != nil {
		sc.info.closer = sc
		return context.WithValue(ctx, connInfoKey{}, &sc.info)
	}
	return ctx
}

// Envoy's local replies.
const (
	bodyNoHealthyUpstream = "no healthy upstream"
	bodyTimeout           = "upstream request timeout"
	bodyConnectFailure    = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	bodyReset             = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
	bodyOverflow          = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
	bodyStreamTimeout     = "stream timeout"
	bodyTooManyHeaders    = "Request Header Fields Too Large"
)

// errRouteTimeout is the cause of a request context cancelled by the
// route timeout.
var errRouteTimeout = errors.New("route timeout")

// ServeHTTP routes and forwards one request, then counts it and writes
// its access log lines.
func (h *httpServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cc := h.cfg.Load()
	hs := cc.stats
	ex := exchangePool.Get().(*exchange)
	ex.start = start
	ex.hcm = hs
	hs.rqTotal.Inc()
	hs.rqActive.Inc()
	if r.ProtoMajor == 2 {
		hs.rqHTTP2Total.Inc()
	} else {
		hs.rqHTTP1Total.Inc()
	}
	ci, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	if ci != nil {
		ci.noteProto(r.ProtoMajor)
	}
	ex.req.init(r, h.scheme)
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
	if cc.dir == table.Inbound {
		// Health checks (Envoy's and ours send User-Agent Envoy/HC) are
		// not service traffic: Envoy's stats count them, the mesh
		// metrics and so the service graph do not.
		if h.p.dataStats != nil && (src != "" || !cluster.IsHealthCheck(r)) {
			cs := r.TLS // nil under the framing guard's wrapper
			if cs == nil && ci != nil {
				cs = ci.tls
			}
			ex.edge = h.p.mesh.Caller(cs, cc.listenerTLS, src)
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
func (h *httpServer) ensureAnswered(w http.ResponseWriter, r *http.Request, ex *exchange) {
	switch {
	case ex.status != 0:
		return
	case ex.flags.Has(accesslog.DownstreamConnectionTermination):
		// Nobody to answer: end the stream without the server's
		// default response.
		panic(http.ErrAbortHandler)
	}
	ex.hcm.rqUnanswered.Inc()
	route := ""
	if ex.route != nil {
		route = ex.route.Name
	}
	h.p.log.Error("request handled without a response; answered 500", "method", r.Method, "path", ex.req.path, "route", route)
	ex.reply(w, http.StatusInternalServerError, bodyUnanswered, accesslog.NoResponseWritten)
}

// route finds the request's route and cluster and forwards it, or
// answers it locally.
func (h *httpServer) route(w http.ResponseWriter, r *http.Request, ex *exchange, cc *chainConfig) {
	hs := cc.stats
	if n, size := headerCount(r); size > h.maxHdr || n > int(cc.chain.HTTP.MaxHeadersCount) && cc.chain.HTTP.MaxHeadersCount > 0 {
		h.tooManyHeaders(w, r, ex, cc)
		return
	}
	if r.Method == http.MethodConnect {
		// Only a sidecar's egress tunnels (HTTPS_PROXY clients): on a
		// gateway or an inbound listener a tunnel would carry anything
		// past the routes, their timeouts and the per-request stats.
		// HTTP/2 CONNECT (extended or not) is not tunnelled anywhere.
		if cc.dir != table.Outbound || r.ProtoMajor != 1 {
			ex.reply(w, http.StatusMethodNotAllowed, "", 0)
			return
		}
		h.connect(w, r, ex, cc)
		return
	}
	upgrade := upgradeType(r)
	if upgrade != "" && !cc.chain.HTTP.UpgradeAllowed(upgrade) {
		// Envoy refuses an upgrade its connection manager was not
		// configured for, and counts it (WebSocket or not) as
		// downstream_rq_ws_on_non_ws_route.
		hs.rqWsOnNonWsRoute.Inc()
		ex.reply(w, http.StatusForbidden, "", 0)
		return
	}
	route, view := routeTo(w, ex, cc)
	if view == nil {
		return
	}
	if cc.dir != table.Inbound {
		if e := view.Edges[meshmetrics.EdgeKey{Service: route.Meta.VirtualService, Route: route.Name}]; e != nil {
			ex.edge = e
			r.Header[meshmetrics.SourceHeader] = e.Header()
		} else {
			delete(r.Header, meshmetrics.SourceHeader)
		}
	}
	if upgrade != "" {
		h.upgrade(w, r, ex, cc.chain.HTTP, route, view)
		return
	}
	h.forward(w, r, ex, cc.chain.HTTP, route, view)
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
func (h *httpServer) tooManyHeaders(w http.ResponseWriter, r *http.Request, ex *exchange, cc *chainConfig) {
	if r.ProtoMajor == 1 {
		w.Header()["Connection"] = connectionClose
		cc.stats.cxProtocolError.Inc()
	} else {
		h.p.codec.h2HeaderOverflow.Inc()
	}
	ex.reply(w, http.StatusRequestHeaderFieldsTooLarge, bodyTooManyHeaders, accesslog.DownstreamProtocolError)
}

var connectionClose = []string{"close"}

// routeTo finds the request's route and draws its cluster. When there is
// nothing to forward to it answers locally (404 without a route, the
// route's direct response, 503 for a cluster CDS did not send) and
// returns a nil view.
func routeTo(w http.ResponseWriter, ex *exchange, cc *chainConfig) (*table.Route, *cluster.View) {
	hs := cc.stats
	_, route := cc.chain.HTTP.Routes.Route(&ex.req)
	if route == nil {
		hs.noRoute.Inc()
		ex.reply(w, http.StatusNotFound, "", accesslog.NoRouteFound)
		return nil, nil
	}
	ex.route = route
	if route.DirectStatus != 0 {
		hs.directResponse.Inc()
		ex.reply(w, route.DirectStatus, route.DirectBody, 0)
		return nil, nil
	}
	view := cc.rs.view(route.PickCluster(rand.Uint32()))
	if view == nil {
		hs.noCluster.Inc()
		ex.reply(w, http.StatusServiceUnavailable, bodyNoHealthyUpstream, accesslog.NoClusterFound)
		return nil, nil
	}
	ex.view = view
	return route, view
}

// finish counts a finished request in the connection manager's stats and
// the mesh metrics, writes its access log lines and returns its exchange
// to the pool.
func (h *httpServer) finish(w http.ResponseWriter, r *http.Request, ex *exchange, cc *chainConfig, ci *connInfo) {
	d := time.Since(ex.start)
	if ex.st != nil {
		ex.received = ex.st.received.Load()
	}
	hs := cc.stats
	hs.rqActive.Dec()
	if ex.status != 0 {
		hs.codes.Class(ex.status).Inc()
		hs.rqCompleted.Inc()
	}
	hs.rqTime.RecordDuration(d)
	if r.ProtoMajor == 2 && ci != nil {
		h.noteStreamEnd(ci, hs, r, ex.status, d)
	}
	if ex.edge != nil {
		ex.edge.Record(meshmetrics.RequestProto(r), ex.status, d, ex.received, ex.sent)
	}
	if len(cc.logs) > 0 {
		e := &ex.log
		e.Start = ex.start
		e.Method, e.Path, e.Authority, e.Scheme = r.Method, ex.req.path, r.Host, ex.req.scheme
		e.Protocol = accesslog.ProtocolName(r.ProtoMajor, r.ProtoMinor)
		e.Request = accesslog.HTTPHeader(r.Header)
		if ex.status != 0 {
			e.Response = accesslog.HTTPHeader(w.Header())
		}
		e.ResponseCode, e.Flags = ex.status, ex.flags
		e.BytesReceived, e.BytesSent = ex.received, ex.sent
		e.Duration = d
		if !ex.firstByte.IsZero() {
			e.ResponseDuration = max(ex.firstByte.Sub(ex.start), 1)
		}
		if ex.ep != nil {
			e.UpstreamHost = ex.ep.Addr
		}
		if ex.view != nil {
			e.UpstreamCluster = ex.view.Cluster.Name
		}
		if ex.route != nil {
			e.RouteName = ex.route.Name
		}
		e.AttemptCount = ex.attempts
		if ci != nil {
			e.DownstreamRemote, e.DownstreamLocal = ci.remote, ci.dst
			e.RequestedServerName = ci.serverName
			e.ConnectionID = ci.id
		}
		if r.TLS != nil {
			e.DownstreamTLSVersion = accesslog.TLSVersionName(r.TLS.Version)
		}
		for _, l := range cc.logs {
			l.w.LogEntry(l.f, e)
		}
	}
	ex.release()
}

// connState keeps the connection stats of the chain's connection manager.
func (h *httpServer) connState(c net.Conn, s http.ConnState) {
	sc := srvConnOf(c)
	if sc == nil {
		return
	}
	switch s {
	case http.StateNew:
		hs := h.cfg.Load().stats
		sc.info.hcm = hs
		hs.cxTotal.Inc()
		hs.cxActive.Inc()
	case http.StateClosed, http.StateHijacked:
		hs := sc.info.hcm
		if hs == nil {
			return
		}
		hs.cxActive.Dec()
		hs.cxDestroy.Inc()
		hs.cxLength.RecordDuration(time.Since(sc.opened))
		switch sc.info.proto.Load() {
		case 1:
			hs.cxHTTP1Active.Dec()
		case 2:
			hs.cxHTTP2Active.Dec()
		}
	}
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

// forward sends the request to the cluster and streams the response back.
func (h *httpServer) forward(w http.ResponseWriter, r *http.Request, ex *exchange, hcm *table.HTTPManager, route *table.Route, view *cluster.View) {
	idle := hcm.StreamIdleTimeout
	if route.IdleTimeout > 0 {
		idle = route.IdleTimeout
	}
	if idle <= 0 {
		idle = h.p.cfg.StreamIdleTimeout
	}
	st, ctx := startStream(r.Context(), w, r.Body, route.Timeout, idle)
	ex.st = st
	defer st.finish()
	body := st.body()
	if r.ProtoMajor == 1 && body != nil {
		// Let the upstream answer while the client still sends (streaming
		// uploads, early errors).
		if fd, ok := w.(interface{ EnableFullDuplex() error }); ok {
			_ = fd.EnableFullDuplex()
		}
	}

	prepareRequestHeaders(r, h.scheme)
	out := r.WithContext(ctx)
	out.RequestURI = ""
	out.Close = false
	out.TransferEncoding = nil
	out.Body = body
	out.Host = r.Host
	u := new(url.URL)
	*u = *r.URL
	u.Scheme, u.User, u.Fragment = "http", nil, ""
	if view.Up.Key.TLS != "" {
		u.Scheme = "https"
	}
	if route.HasPathRewrite() {
		if _, set := r.Header["X-Envoy-Original-Path"]; !set {
			r.Header["X-Envoy-Original-Path"] = []string{ex.req.path}
		}
		setTarget(u, route.RewritePath(ex.req.path))
	}
	if route.HostRewrite != "" {
		out.Host = route.HostRewrite
	}
	out.URL = u

	// With a retry policy the body is kept (up to maxRetryBody) as it
	// streams to the first attempt, so that a retry can replay it.
	var retries int
	var rb *replayBody
	if pol := route.Retry; pol != nil && pol.NumRetries > 0 {
		retries = int(pol.NumRetries)
		if body != nil {
			rb = newReplayBody(body, r.ContentLength, maxRetryBody)
		}
	}
	var tr tryResult
	var bv *bodyView
	for n := 0; ; n++ {
		o := out
		if n > 0 {
			// A fresh request per attempt: the transport may still hold
			// the previous one.
			o = out.WithContext(ctx)
			u2 := *u
			o.URL, o.Host = &u2, out.Host
		}
		if rb != nil {
			bv = rb.attach(o)
		}
		tr = h.try(ctx, o, r.ProtoMajor, view, route, st)
		if n > 0 {
			view.Up.RetryDone()
		}
		ex.attempts++
		if n >= retries || !retriable(route.Retry, &tr, ctx) || (rb != nil && !rb.canReplay()) || !view.AdmitRetry() {
			break
		}
		if bv != nil {
			_ = bv.Close() // its transport may still be reading: detach it
		}
		tr.discard(view)
		view.Up.Stats.RqRetry.Inc()
		if !backoff(ctx, route.Retry, n) {
			view.Up.RetryDone()
			tr = tryResult{err: context.Cause(ctx), cancel: func() {}}
			break
		}
	}
	defer tr.cancel()
	resp, ep, err := tr.resp, tr.ep, tr.err
	ex.ep = ep
	cs := view.Up.Stats
	if err != nil {
		switch {
		case errors.Is(err, errNoEndpoint):
			cs.CxNoneHealthy.Inc()
			ex.reply(w, http.StatusServiceUnavailable, bodyNoHealthyUpstream, accesslog.NoHealthyUpstream)
		case errors.Is(err, cluster.ErrOverflow):
			w.Header()["X-Envoy-Overflow"] = []string{"true"}
			ex.reply(w, http.StatusServiceUnavailable, bodyOverflow, accesslog.UpstreamOverflow)
		case context.Cause(ctx) == errRouteTimeout || tr.perTryTimeout:
			if tr.perTryTimeout {
				cs.RqPerTryTimeout.Inc()
			} else {
				cs.RqTimeout.Inc()
			}
			if ep != nil {
				ep.Stats.RqTimeout.Add(1)
			}
			ex.reply(w, http.StatusGatewayTimeout, bodyTimeout, accesslog.UpstreamRequestTimeout)
		case context.Cause(ctx) == errStreamIdle:
			ex.hcm.rqIdleTimeout.Inc()
			ex.reply(w, http.StatusRequestTimeout, bodyStreamTimeout, accesslog.StreamIdleTimeout)
		case r.Context().Err() != nil:
			// The client went away; nobody to answer.
			ex.flags |= accesslog.DownstreamConnectionTermination
		case tr.downstream:
			// The client's body was malformed or cut short: its fault,
			// as Envoy and HAProxy answer it.
			ex.badRequest(w, r, st.bodyError())
		case tr.outgrew:
			cs.RqRetryAbandoned.Inc()
			ex.reply(w, http.StatusInsufficientStorage, bodyRetryBufferExceeded, 0)
		default:
			var ce *cluster.ConnectError
			if errors.As(err, &ce) {
				ex.reply(w, http.StatusServiceUnavailable, bodyConnectFailure, accesslog.UpstreamConnectionFailure)
			} else {
				cs.RqRxReset.Inc()
				ex.reply(w, http.StatusServiceUnavailable, bodyReset, accesslog.UpstreamConnectionTermination)
			}
		}
		return
	}
	ex.firstByte = time.Now()
	defer func() {
		view.Up.AttemptDone(ep.Stats)
		cs.RqTime.RecordDuration(time.Since(tr.start))
	}()
	countStatus(cs, ep.Stats, resp.StatusCode)
	if ex.attempts > 1 && resp.StatusCode < 500 {
		cs.RqRetrySuccess.Inc()
	}
	ex.status = resp.StatusCode
	err = writeResponse(w, resp, st, ex)
	if tr.trailersJudge && r.Context().Err() == nil && !st.bodyFailed() {
		if v := grpcOutcome(resp, err); v != verdictNone {
			view.Outcome(ep, v == verdictFail)
		}
	}
	if err != nil {
		if st.bodyFailed() {
			// The upstream answered early, then the client's body
			// failed: the stream ends, and it is the client's fault.
			ex.hcm.cxProtocolError.Inc()
			ex.flags |= accesslog.DownstreamProtocolError
			panic(http.ErrAbortHandler)
		}
		if errors.Is(err, errUpstreamBody) {
			ex.hcm.rqTxReset.Inc()
			ex.flags |= accesslog.UpstreamRemoteReset
			// The upstream failed mid-body: abort the downstream stream
			// (HTTP/1.1 closes without the last chunk, HTTP/2 resets) so
			// the client does not take a truncated body for a whole one.
			panic(http.ErrAbortHandler)
		}
	}
}

// setTarget points u at a request target (escaped path and query).
func setTarget(u *url.URL, target string) {
	raw, query, _ := strings.Cut(target, "?")
	u.RawQuery = query
	if p, err := url.PathUnescape(raw); err == nil {
		u.Path, u.RawPath = p, raw
	} else {
		u.Path, u.RawPath = raw, ""
	}
}

// errNoEndpoint: the cluster has no endpoint to try.
var errNoEndpoint = errors.New("no healthy upstream")

// attempt performs one upstream try: pick an endpoint, send out, return
// the response with its headers read. The retry loop (forward, retry.go)
// calls it again, with a fresh endpoint pick, while the outcome is
// retriable under route.Retry and the body can be replayed; the later
// retry and outlier-detection work (retry budgets, host predicates,
// ejections) hooks in here.
func (h *httpServer) attempt(out *http.Request, downMajor int, view *cluster.View, route *table.Route) (*http.Response, *cluster.Endpoint, error) {
	var ep *cluster.Endpoint
	if view.OrigDst {
		ci, _ := out.Context().Value(connInfoKey{}).(*connInfo)
		var ok bool
		if ep, ok = origDstEndpoint(view, ci, out.Host); !ok {
			return nil, nil, errNoEndpoint
		}
	} else if ep = view.Pick(); ep == nil {
		return nil, nil, errNoEndpoint
	}
	out.URL.Host = ep.Addr
	if route.AutoHostRewrite && ep.Hostname != "" {
		out.Host = ep.Hostname
	}
	tr := view.Up.Transport(downMajor)
	if tr == nil {
		return nil, ep, errNoEndpoint
	}
	view.Up.MarkUsed()
	if !view.AdmitRequest(tr == view.Up.H2) {
		return nil, nil, cluster.ErrOverflow
	}
	cs := view.Up.Stats
	ep.Stats.RqTotal.Add(1)
	cs.RqTotal.Inc()
	ep.Stats.RqActive.Add(1)
	cs.RqActive.Inc()
	resp, err := tr.RoundTrip(out)
	if err != nil {
		view.Up.AttemptDone(ep.Stats) // try counts the endpoint's error
		return nil, ep, err
	}
	return resp, ep, nil
}

// countStatus counts an upstream response: cluster.<c>.upstream_rq_<code>,
// _<class>xx and _completed, and the endpoint's success or error.
func countStatus(cs *cluster.Stats, es *cluster.EndpointStats, code int) {
	cs.Codes.Inc(code)
	cs.RqCompleted.Inc()
	if code >= 500 {
		es.RqError.Add(1)
		return
	}
	es.RqSuccess.Add(1)
}

// errUpstreamBody marks a failure reading the upstream response body, as
// opposed to writing it downstream.
var errUpstreamBody = errors.New("upstream body")

// writeResponse copies an upstream response downstream: headers minus
// hop-by-hop ones, the body streamed through a pooled buffer (flushed per
// read when the response is of unknown length: gRPC, server-sent events,
// chunked streams), then the trailers.
func writeResponse(w http.ResponseWriter, resp *http.Response, st *stream, ex *exchange) error {
	defer resp.Body.Close()
	hdr := w.Header()
	for k, vv := range resp.Header {
		if isHopByHop(k) {
			continue
		}
		hdr[k] = vv
	}
	if conn, ok := resp.Header["Connection"]; ok {
		removeConnectionTokens(hdr, conn)
	}
	if _, ok := resp.Header["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // no content sniffing
	}
	w.WriteHeader(resp.StatusCode)
	streaming := resp.ContentLength < 0
	flusher, _ := w.(http.Flusher)
	if streaming && flusher != nil {
		flusher.Flush() // headers now: the client may be waiting for them (gRPC streams)
	}

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			st.touch()
			wn, werr := w.Write(buf[:n])
			ex.sent += uint64(wn)
			if werr != nil {
				return werr
			}
			if streaming && flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return errors.Join(errUpstreamBody, rerr)
		}
	}
	for k, vv := range resp.Trailer {
		hdr[http.TrailerPrefix+k] = vv
	}
	return nil
}

// bufPool holds the 32 KiB buffers bodies are copied through.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// hopByHop are the headers that describe one connection and must not be
// forwarded (RFC 9110 7.6.1), in canonical form. "TE: trailers" is put
// back on requests: it is end-to-end for gRPC.
var hopByHop = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer", "Te"}

func isHopByHop(k string) bool {
	for _, h := range hopByHop {
		if k == h {
			return true
		}
	}
	return false
}

// removeConnectionTokens deletes the headers a Connection header lists.
func removeConnectionTokens(h http.Header, conn []string) {
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
}

// prepareRequestHeaders edits the downstream request's headers in place
// into the upstream request's (the handler owns them): hop-by-hop headers
// go, x-forwarded-for gains the client address, x-forwarded-proto and
// x-request-id are set when absent, as Envoy does at the edge. Nothing
// else is added: a request without User-Agent goes on without one.
func prepareRequestHeaders(r *http.Request, scheme string) {
	hdr := r.Header
	if conn, ok := hdr["Connection"]; ok {
		removeConnectionTokens(hdr, conn)
	}
	te := hdr["Te"]
	for _, k := range hopByHop {
		delete(hdr, k)
	}
	for _, v := range te {
		if strings.Contains(strings.ToLower(v), "trailers") {
			hdr["Te"] = teTrailers
			break
		}
	}
	if ip := remoteIP(r.RemoteAddr); ip != "" {
		if prior, ok := hdr["X-Forwarded-For"]; ok && len(prior) > 0 {
			hdr["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
		} else {
			hdr["X-Forwarded-For"] = []string{ip}
		}
	}
	if _, ok := hdr["X-Forwarded-Proto"]; !ok {
		if scheme == "https" {
			hdr["X-Forwarded-Proto"] = schemeHTTPS
		} else {
			hdr["X-Forwarded-Proto"] = schemeHTTP
		}
	}
	if _, ok := hdr["X-Request-Id"]; !ok {
		hdr["X-Request-Id"] = []string{newRequestID()}
	}
	if _, ok := hdr["User-Agent"]; !ok {
		// Present and empty: net/http's transports (HTTP/1.1 and HTTP/2)
		// then send none of their own (Go-http-client/...).
		hdr["User-Agent"] = nil
	}
}

var (
	teTrailers  = []string{"trailers"}
	schemeHTTP  = []string{"http"}
	schemeHTTPS = []string{"https"}
)

// remoteIP is the address part of a RemoteAddr, without brackets.
func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return host
}

// newRequestID returns a random (version 4) UUID, as Envoy generates for
// x-request-id. It uses the runtime's fast per-thread generator: request
// ids need to be unique, not unpredictable.
func newRequestID() string {
	const hexd = "0123456789abcdef"
	var u [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hexd[c>>4], hexd[c&0xf]
		j += 2
	}
	return string(s[:])
}

// exchange holds the per-request state the handler would otherwise
// allocate; pooled. Nothing in it may be referenced by the upstream
// request once the handler returns.
type exchange struct {
	req   reqView
	start time.Time
	hcm   *hcmStats

	// The outcome, filled as the request goes.
	status         int
	flags          accesslog.ResponseFlags
	sent, received uint64
	attempts       uint32
	firstByte      time.Time
	route          *table.Route
	view           *cluster.View
	ep             *cluster.Endpoint
	edge           *meshmetrics.Edge
	st             *stream
	log            accesslog.Entry
}

// reply answers the request locally (localReply) and records the outcome.
func (ex *exchange) reply(w http.ResponseWriter, status int, body string, flags accesslog.ResponseFlags) {
	ex.status = status
	ex.flags |= flags
	ex.sent = uint64(len(body))
	localReply(w, status, body)
}

// badRequest answers a request whose body could not be read (a malformed
// chunk, fewer bytes than its Content-Length, an HTTP/2 stream that ended
// short of its content-length): 400, response flag DPE, counted as a
// downstream protocol error, as Envoy does. An HTTP/1.1 connection is
// closed after it: where the next request starts is unknown.
func (ex *exchange) badRequest(w http.ResponseWriter, r *http.Request, cause error) {
	ex.hcm.cxProtocolError.Inc()
	if r.ProtoMajor == 1 {
		w.Header()["Connection"] = connClose
	}
	body := bodyBadRequestBody
	if cause != nil {
		body += ": " + cause.Error()
	}
	ex.reply(w, http.StatusBadRequest, body, accesslog.DownstreamProtocolError)
}

// bodyBadRequestBody starts the local reply to a request whose body
// failed; the reason follows.
const bodyBadRequestBody = "bad request body"

// bodyRetryBufferExceeded is Envoy's local reply (507) when a retry needs
// more of the request body than the retry buffer kept.
const bodyRetryBufferExceeded = "exceeded request buffer limit while retrying upstream"

var connClose = []string{"close"}

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

func (ex *exchange) release() {
	*ex = exchange{}
	exchangePool.Put(ex)
}

// reqView presents a downstream request to the route table
// (table.Request) without copying it.
type reqView struct {
	r      *http.Request
	scheme string
	path   string // :path, query included
}

func (v *reqView) init(r *http.Request, scheme string) {
	v.r = r
	v.scheme = scheme
	if r.URL.Scheme != "" {
		v.scheme = r.URL.Scheme
	}
	v.path = requestPath(r.RequestURI)
}

// requestPath is :path for a request target: origin-form as is, the path
// and query of an absolute-form target ("/" when it has none).
func requestPath(target string) string {
	if target == "" || target[0] == '/' || target == "*" {
		return target
	}
	i := strings.Index(target, "://")
	if i < 0 {
		return target
	}
	rest := target[i+3:]
	j := strings.IndexAny(rest, "/?")
	if j < 0 {
		return "/"
	}
	if rest[j] == '?' {
		return "/" + rest[j:]
	}
	return rest[j:]
}

// Authority implements table.Request.
func (v *reqView) Authority() string { return v.r.Host }

// Method implements table.Request.
func (v *reqView) Method() string { return v.r.Method }

// Path implements table.Request: the request's :path, query included.
func (v *reqView) Path() string { return v.path }

// Scheme implements table.Request.
func (v *reqView) Scheme() string { return v.scheme }

// Header implements table.Request: name is lower case; pseudo-headers
// and "host" are answered from the request line; several values are
// joined with ",", as Envoy matches them.
func (v *reqView) Header(name string) (string, bool) {
	switch name {
	case ":authority", "host":
		return v.r.Host, true
	case ":method":
		return v.r.Method, true
	case ":path":
		return v.path, true
	case ":scheme":
		return v.scheme, true
	}
	vv := v.r.Header[canonicalKey(name)]
	switch len(vv) {
	case 0:
		return "", false
	case 1:
		return vv[0], true
	}
	return strings.Join(vv, ","), true
}

// canonicalKeys caches the canonical form of the lower-case header names
// route tables match on, so matching does not allocate.
var canonicalKeys sync.Map

func canonicalKey(name string) string {
	if k, ok := canonicalKeys.Load(name); ok {
		return k.(string)
	}
	k := textproto.CanonicalMIMEHeaderKey(name)
	canonicalKeys.Store(name, k)
	return k
}

// chanListener is a net.Listener fed by the proxy's own accept loops,
// after they inspected and matched a connection to a chain.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands c to the server, or closes it when the server is gone.
func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }
