package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/hcm"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/tracing"
)

// Router is the last HTTP filter of a chain: it forwards a routed
// request to its cluster and answers it (Envoy's envoy.filters.http.router).
type Router struct {
	// StreamIdleTimeout applies when neither the route nor the
	// connection manager sets one.
	StreamIdleTimeout time.Duration
}

// Forward sends the request to the cluster, retrying under the route's
// retry policy (retryLoop), and streams the response back (respond) or
// answers the failure locally (replyFailure).
func (h *Router) Forward(s stream.Downstream, ex *hcm.Exchange, m *table.HTTPManager, route *table.Route, view *cluster.View) {
	r := s.Request()
	idle := m.StreamIdleTimeout
	if route.IdleTimeout > 0 {
		idle = route.IdleTimeout
	}
	if idle <= 0 {
		idle = h.StreamIdleTimeout
	}
	st, ctx := hcm.StartStream(r.Context(), s, r.Body, route.Timeout, idle)
	ex.Stream = st
	defer st.Finish()
	body := st.Body()
	if r.ProtoMajor == 1 && body != nil {
		// Let the upstream answer while the client still sends (streaming
		// uploads, early errors).
		_ = s.EnableFullDuplex()
	}
	out := h.upstreamRequest(ctx, r, ex, route, view, body)
	tr := h.retryLoop(ctx, r, out, ex, route, view, st, body)
	defer tr.cancel()
	ex.Endpoint = tr.ep
	if ex.Tracing() {
		defer func() { endAttempt(ex, tr.span, &tr, ctx, ex.Status) }()
	}
	if tr.err != nil {
		h.replyFailure(ctx, s, r, ex, &tr, view)
		return
	}
	h.respond(s, r, ex, &tr, view)
}

// upstreamRequest is the request to send upstream: r with its
// hop-by-hop headers removed, the route's path and host rewrites, and
// body (the stream's) as its body.
func (h *Router) upstreamRequest(ctx context.Context, r *http.Request, ex *hcm.Exchange, route *table.Route, view *cluster.View, body io.ReadCloser) *http.Request {
	hcm.PrepareRequestHeaders(r, ex.Req.Scheme())
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
			r.Header["X-Envoy-Original-Path"] = []string{ex.Req.Path()}
		}
		setTarget(u, route.RewritePath(ex.Req.Path()))
	}
	if route.HostRewrite != "" {
		out.Host = route.HostRewrite
	}
	out.URL = u
	return out
}

// retryLoop makes the attempts (try) the route's retry policy allows and
// returns the last one. With a retry policy the body is kept (up to
// MaxRetryBody) as it streams to the first attempt, so that a retry can
// replay it.
func (h *Router) retryLoop(ctx context.Context, r, out *http.Request, ex *hcm.Exchange, route *table.Route, view *cluster.View, st *hcm.Stream, body io.ReadCloser) tryResult {
	var retries int
	var rb *replayBody
	if pol := route.Retry; pol != nil && pol.NumRetries > 0 {
		retries = int(pol.NumRetries)
		if body != nil {
			rb = newReplayBody(body, r.ContentLength, MaxRetryBody)
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
			u2 := *out.URL
			o.URL, o.Host = &u2, out.Host
		}
		if rb != nil {
			bv = rb.attach(o)
		}
		cs := startAttempt(ex, o, n, view)
		tr = h.try(ctx, o, ex, r.ProtoMajor, view, route)
		tr.span = cs
		if n > 0 {
			view.Up.RetryDone()
		}
		ex.Attempts++
		if n >= retries || !retriable(route.Retry, &tr, ctx) || (rb != nil && !rb.canReplay()) || !view.AdmitRetry() {
			return tr
		}
		if bv != nil {
			_ = bv.Close() // its transport may still be reading: detach it
		}
		if ex.Tracing() {
			retryEvent(ex, cs, n)
			endAttempt(ex, cs, &tr, ctx, 0)
		}
		tr.discard(view)
		view.Up.Stats.RqRetry.Inc()
		if !backoff(ctx, route.Retry, n) {
			view.Up.RetryDone()
			return tryResult{err: hcm.Cause(ctx), cancel: func() {}}
		}
	}
}

// replyFailure answers a request whose last attempt failed, with Envoy's
// local reply and response flag for the cause.
func (h *Router) replyFailure(ctx context.Context, s stream.Downstream, r *http.Request, ex *hcm.Exchange, tr *tryResult, view *cluster.View) {
	cs, ep, err := view.Up.Stats, tr.ep, tr.err
	switch {
	case errors.Is(err, errNoEndpoint):
		cs.CxNoneHealthy.Inc()
		ex.Reply(http.StatusServiceUnavailable, hcm.BodyNoHealthyUpstream, accesslog.NoHealthyUpstream)
	case errors.Is(err, cluster.ErrOverflow):
		s.Header()["X-Envoy-Overflow"] = overflowTrue
		ex.Reply(http.StatusServiceUnavailable, hcm.BodyOverflow, accesslog.UpstreamOverflow)
	case hcm.Cause(ctx) == hcm.ErrRouteTimeout || tr.perTryTimeout:
		if tr.perTryTimeout {
			cs.RqPerTryTimeout.Inc()
		} else {
			cs.RqTimeout.Inc()
		}
		if ep != nil {
			ep.Stats.RqTimeout.Add(1)
		}
		ex.Reply(http.StatusGatewayTimeout, hcm.BodyTimeout, accesslog.UpstreamRequestTimeout)
	case hcm.Cause(ctx) == hcm.ErrStreamIdle:
		ex.Stats.RqIdleTimeout.Inc()
		ex.Reply(http.StatusRequestTimeout, hcm.BodyStreamTimeout, accesslog.StreamIdleTimeout)
	case r.Context().Err() != nil:
		// The client went away; nobody to answer.
		ex.Flags |= accesslog.DownstreamConnectionTermination
	case tr.downstream:
		// The client's body was malformed or cut short: its fault,
		// as Envoy and HAProxy answer it.
		ex.BadRequest(ex.Stream.BodyError())
	case tr.outgrew:
		cs.RqRetryAbandoned.Inc()
		ex.Reply(http.StatusInsufficientStorage, hcm.BodyRetryBufferExceeded, 0)
	default:
		var ce *cluster.ConnectError
		if errors.As(err, &ce) {
			ex.Reply(http.StatusServiceUnavailable, hcm.BodyConnectFailure, accesslog.UpstreamConnectionFailure)
		} else {
			cs.RqRxReset.Inc()
			ex.Reply(http.StatusServiceUnavailable, hcm.BodyReset, accesslog.UpstreamConnectionTermination)
		}
	}
}

// respond streams the upstream response of the last attempt back, and
// ends the attempt.
func (h *Router) respond(s stream.Downstream, r *http.Request, ex *hcm.Exchange, tr *tryResult, view *cluster.View) {
	resp, ep, st, cs := tr.resp, tr.ep, ex.Stream, view.Up.Stats
	ex.FirstByte = time.Now()
	defer func() {
		view.Up.AttemptDone(ep.Stats)
		cs.RqTime.RecordDuration(time.Since(tr.start))
	}()
	cs.CountResponse(ep.Stats, resp.StatusCode)
	if ex.Attempts > 1 && resp.StatusCode < 500 {
		cs.RqRetrySuccess.Inc()
	}
	ex.FilterResponse(resp)
	ex.Status = resp.StatusCode
	err := writeResponse(s, resp, st, ex)
	if tr.trailersJudge && r.Context().Err() == nil && !st.BodyFailed() {
		if v := grpcOutcome(resp, err); v != verdictNone {
			view.Outcome(ep, v == verdictFail)
		}
	}
	if err != nil {
		if st.BodyFailed() {
			// The upstream answered early, then the client's body
			// failed: the stream ends, and it is the client's fault.
			ex.Stats.CxProtocolError.Inc()
			ex.Flags |= accesslog.DownstreamProtocolError
			ex.Reset(stream.ResetProtocolError)
			return
		}
		if errors.Is(err, errUpstreamBody) {
			ex.Stats.RqTxReset.Inc()
			ex.Flags |= accesslog.UpstreamRemoteReset
			// The upstream failed mid-body: abort the downstream stream
			// (HTTP/1.1 closes without the last chunk, HTTP/2 resets) so
			// the client does not take a truncated body for a whole one.
			ex.Reset(stream.ResetInternalError)
			return
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

var overflowTrue = []string{"true"}

// errNoEndpoint: the cluster has no endpoint to try.
var errNoEndpoint = errors.New("no healthy upstream")

// attempt performs one upstream try: pick an endpoint, send out, return
// the response with its headers read. The retry loop (forward, retry.go)
// calls it again, with a fresh endpoint pick, while the outcome is
// retriable under route.Retry and the body can be replayed; the later
// retry and outlier-detection work (retry budgets, host predicates,
// ejections) hooks in here.
func (h *Router) attempt(out *http.Request, ex *hcm.Exchange, downMajor int, view *cluster.View, route *table.Route) (*http.Response, *cluster.Endpoint, error) {
	var ep *cluster.Endpoint
	if view.OrigDst {
		var ok bool
		if ep, ok = hcm.OrigDstEndpoint(view, ex.Conn().ListenerInfo(), out.Host); !ok {
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

// tryResult is one upstream attempt.
type tryResult struct {
	resp *http.Response
	ep   *cluster.Endpoint
	err  error
	// perTryTimeout: the attempt's own timeout (RetryPolicy.PerTryTimeout)
	// fired, not the route's.
	perTryTimeout bool
	// trailersJudge: outlier detection waits for the gRPC trailers.
	trailersJudge bool
	// downstream: the attempt failed because reading the downstream
	// request body failed: not the upstream's fault, not retried, not
	// fed to outlier detection.
	downstream bool
	// outgrew: a retry could not replay the body, which outgrew the
	// retry buffer meanwhile; not the upstream's fault either.
	outgrew bool
	cancel  context.CancelFunc
	start   time.Time
	// span is the attempt's client span; nil when not traced.
	span *tracing.Span
	// ejected: this attempt's failure ejected its endpoint.
	ejected bool
}

// try performs one attempt under the retry policy's per-try timeout; the
// exchange's stream tells a downstream body failure.
func (h *Router) try(ctx context.Context, out *http.Request, ex *hcm.Exchange, downMajor int, view *cluster.View, route *table.Route) tryResult {
	st := ex.Stream
	tr := tryResult{cancel: func() {}, start: time.Now()}
	actx := ctx
	if p := route.Retry; p != nil && p.PerTryTimeout > 0 {
		actx, tr.cancel = context.WithTimeout(ctx, p.PerTryTimeout)
		out = out.WithContext(actx)
	}
	tr.resp, tr.ep, tr.err = h.attempt(out, ex, downMajor, view, route)
	if tr.err != nil {
		switch {
		case hcm.IsDownstreamBodyError(tr.err, st):
			tr.downstream = true
		case errors.Is(tr.err, errBodyOutgrew):
			tr.outgrew = true
		case actx.Err() != nil && ctx.Err() == nil:
			tr.perTryTimeout = true
		}
		if tr.ep != nil && !tr.downstream && !tr.outgrew {
			tr.ep.Stats.RqError.Add(1)
		}
	}
	if view.Skip != nil {
		switch judge(ctx, &tr) {
		case verdictOK:
			view.Outcome(tr.ep, false)
		case verdictFail:
			was := tr.ep != nil && tr.ep.Stats.Outlier.Ejected()
			view.Outcome(tr.ep, true)
			tr.ejected = tr.ep != nil && !was && tr.ep.Stats.Outlier.Ejected()
		case verdictTrailers:
			tr.trailersJudge = true
		}
	}
	return tr
}

// discard releases an attempt that will not be answered downstream.
func (tr *tryResult) discard(view *cluster.View) {
	if tr.resp != nil {
		view.Up.Stats.CountResponse(tr.ep.Stats, tr.resp.StatusCode)
		_ = tr.resp.Body.Close()
		view.Up.AttemptDone(tr.ep.Stats)
		view.Up.Stats.RqTime.RecordDuration(time.Since(tr.start))
	}
	tr.cancel()
}
