// Package chain runs a connection manager's HTTP filter chain (the
// filters before the router: grpc_web, cors, fault, local_ratelimit) on
// one stream, in the order of the chain's http_filters, as Envoy's
// connection manager does: the request phase (Envoy's decoders) in that
// order once the route is known, the response phase (encoders) in the
// reverse order when the upstream response's head is about to be written.
//
// It depends on no stream implementation: a stream gives it the
// downstream *http.Request (whose headers and body it edits in place),
// the header map of its local reply, and the upstream *http.Response.
// A connection manager without filters has a nil *Chain and pays nothing:
// every method of a nil *Chain returns at once, and per-stream state is a
// Stream value the caller embeds in its own pooled state.
//
// Local replies of a filter (a CORS preflight, a fault abort, a rate
// limited request) go through the response phase of the filters before
// it, as Envoy's local replies go through the encoders of the filters
// that already decoded: a 429 to a browser carries the CORS headers, and
// a local reply to a gRPC-Web call is a gRPC-Web trailers-only response.
// A local reply to a gRPC call is a trailers-only gRPC response (HTTP
// 200, grpc-status and grpc-message), as Envoy's sendLocalReply sends it.
//
// So do the proxy's own local replies after the chain ran (LocalReply):
// no route, a direct response, a missing cluster, no healthy upstream,
// overflow, timeouts, a bad request body.
package chain

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/filters/cors"
	"github.com/meshlens/meshlens/internal/proxy/filters/fault"
	"github.com/meshlens/meshlens/internal/proxy/filters/grpcweb"
	"github.com/meshlens/meshlens/internal/proxy/filters/ratelimit"
	"github.com/meshlens/meshlens/internal/stats"
)

// Envoy's local reply bodies.
const (
	BodyFaultAbort  = "fault filter abort"
	BodyRateLimited = "local_rate_limited"
)

// Chain is one connection manager's filter chain with its per-listener
// state: the fault filter's active-fault count and the fault and CORS
// stats. It is safe for concurrent use.
type Chain struct {
	cfg   *Config
	fault *fault.Filter
	cors  *cors.Filter
}

// Acquire returns the stats scope at a prefix (nil: no stats); the caller
// owns and releases the scopes.
type Acquire func(prefix string) *stats.Scope

// New returns the chain for cfg, with its stats under the connection
// manager's stat_prefix (http.<prefix>.fault., http.<prefix>.cors.). It
// returns nil when cfg runs no filter. The rate limit configurations'
// stats are provisioned by their owner (they may be shared by routes of
// several connection managers).
func New(cfg *Config, statPrefix string, acquire Acquire) *Chain {
	if cfg.Empty() {
		return nil
	}
	c := &Chain{cfg: cfg}
	for _, k := range cfg.order {
		switch k {
		case kindFault:
			c.fault = fault.NewFilter(fault.NewStats(acquire(fault.StatsPrefix(statPrefix))))
		case kindCORS:
			c.cors = cors.NewFilter(cors.NewStats(acquire(cors.StatsPrefix(statPrefix))))
		}
	}
	return c
}

// Stream is the chain's state for one stream, between its request and
// response phases. The zero Stream is "no filter ran"; keep it in pooled
// per-request state and call End when the stream ends.
type Stream struct {
	web        grpcweb.Stream
	cors       cors.Result
	corsPolicy *cors.Policy
	rl         *ratelimit.Config
	rlDecision ratelimit.Decision
	faultHeld  *fault.Filter
}

// End releases what the stream holds (an active-fault slot) and resets it.
func (s *Stream) End() {
	if s.faultHeld != nil {
		s.faultHeld.Release()
	}
	*s = Stream{}
}

// Reply is the outcome of the request phase. Status 0: forward the
// request to the router; otherwise answer locally with Status and Body
// (the reply's headers are already set). Flags are the access log's
// response flags (DI, FI, RL), set whether or not there is a reply.
type Reply struct {
	Status int
	Body   string
	Flags  accesslog.ResponseFlags
}

// Request runs the request phase on r, whose route's configuration is rt
// (nil: none). It may rewrite r's headers and body (gRPC-Web), wait (a
// fault delay: ctx ending during it returns ctx's error) and answer
// locally, setting the reply's headers in resp.
func (c *Chain) Request(ctx context.Context, r *http.Request, rt *Route, s *Stream, resp http.Header) (Reply, error) {
	var out Reply
	if c == nil {
		return out, nil
	}
	if rt == nil {
		rt = &noRoute
	}
	for _, k := range c.cfg.order {
		var err error
		switch k {
		case kindGRPCWeb:
			requestGRPCWeb(r, s)
		case kindCORS:
			c.requestCORS(r, rt, s, resp, &out)
		case kindFault:
			err = c.requestFault(ctx, r, rt, s, resp, &out)
		case kindRateLimit:
			c.requestRateLimit(r, rt, s, resp, &out)
		}
		if err != nil || out.Status != 0 {
			return out, err
		}
	}
	return out, nil
}

// requestGRPCWeb turns a gRPC-Web request into a gRPC one.
func requestGRPCWeb(r *http.Request, s *Stream) {
	s.web = grpcweb.RequestHeaders(r.Header)
	if s.web.IsGRPCWeb() && r.Body != nil && r.Body != http.NoBody {
		r.Body = readCloser{s.web.RequestBody(r.Body), r.Body}
		if s.web.TextRequest() {
			r.ContentLength = -1 // the decoded body is shorter
		}
	}
}

// requestCORS answers a preflight, or notes an actual CORS request for
// the response phase.
func (c *Chain) requestCORS(r *http.Request, rt *Route, s *Stream, resp http.Header, out *Reply) {
	res := c.cors.Check(rt.CORS, r.Method, r.Header, rand.Uint64())
	switch res.Kind {
	case cors.Preflight, cors.RejectedPreflight:
		rt.CORS.Preflight(res, r.Header, resp)
		out.Status = http.StatusOK
		c.localReplyHeaders(s, out.Status, resp)
	case cors.Actual:
		s.cors, s.corsPolicy = res, rt.CORS
	}
}

// requestFault delays and aborts as the fault configuration decides.
func (c *Chain) requestFault(ctx context.Context, r *http.Request, rt *Route, s *Stream, resp http.Header, out *Reply) error {
	cfg := fault.Override(c.cfg.fault, rt.Fault)
	d := cfg.Decide(r.Header, rand.Uint64())
	if !d.Faulted() {
		return nil
	}
	abort, held, err := c.fault.Inject(ctx, cfg, d)
	if held {
		s.faultHeld = c.fault
		if d.Delay > 0 {
			out.Flags |= accesslog.DelayInjected
		}
	}
	if err != nil || abort.Abort == 0 {
		return err
	}
	out.Flags |= accesslog.FaultInjected
	body := abort.Body
	if body == "" {
		body = BodyFaultAbort
	}
	grpcStatus := -1
	if abort.GRPC {
		grpcStatus = abort.GRPCAbort
	}
	out.Status, out.Body = c.localReply(r, s, abort.Abort, grpcStatus, body, resp)
	return nil
}

// requestRateLimit takes a token, or answers locally when there is none
// and the limit is enforced.
func (c *Chain) requestRateLimit(r *http.Request, rt *Route, s *Stream, resp http.Header, out *Reply) {
	cfg := ratelimit.Override(c.cfg.rateLimit, rt.RateLimit)
	if cfg == nil {
		return
	}
	d := cfg.Decide(ratelimit.Now(), rand.Uint64())
	s.rl, s.rlDecision = cfg, d
	if !d.Enforced {
		cfg.RequestHeaders(d, r.Header)
		return
	}
	out.Flags |= accesslog.RateLimited
	cfg.LocalReplyHeaders(d, resp)
	grpcStatus := -1
	if d.GRPCStatus != 0 {
		grpcStatus = d.GRPCStatus
	}
	out.Status, out.Body = c.localReply(r, s, d.Status, grpcStatus, BodyRateLimited, resp)
}

var noRoute Route

// localReply shapes a filter's local reply: for a gRPC request (as the
// filters after grpc_web see it) a trailers-only gRPC response, HTTP 200
// with grpc-status (grpcStatus, or the HTTP status's mapping when it is
// -1) and grpc-message; otherwise status and body as they are. The
// response phase of the filters that ran before is applied.
func (c *Chain) localReply(r *http.Request, s *Stream, status, grpcStatus int, body string, resp http.Header) (int, string) {
	if isGRPC(r.Header.Get("Content-Type")) {
		if grpcStatus < 0 {
			grpcStatus = grpcweb.HTTPStatusToGRPC(status)
		}
		resp.Set("Content-Type", grpcweb.ContentTypeGRPC)
		resp.Set("Grpc-Status", strconv.Itoa(grpcStatus))
		resp.Set("Grpc-Message", grpcweb.PercentEncode([]byte(body)))
		status, body = http.StatusOK, ""
	}
	c.localReplyHeaders(s, status, resp)
	return status, body
}

// LocalReply shapes a local reply of the proxy's own, made after the
// whole request phase ran (no healthy upstream, a timeout, a direct
// response), through the response phase of every filter that ran, as
// Envoy encodes its local replies through the filter chain: for a gRPC
// request (as the router sees it: a gRPC-Web call too) a trailers-only
// gRPC response whose grpc-status maps the HTTP status; the rate limit's,
// CORS's and gRPC-Web's headers. It sets the reply's headers in resp and
// returns the status and body to send.
func (c *Chain) LocalReply(s *Stream, r *http.Request, status int, body string, resp http.Header) (int, string) {
	if c == nil {
		return status, body
	}
	return c.localReply(r, s, status, -1, body, resp)
}

// localReplyHeaders applies the response phase of the filters that ran
// to a local reply's headers: the rate limit's x-ratelimit-* headers,
// CORS's headers and gRPC-Web's content type.
func (c *Chain) localReplyHeaders(s *Stream, status int, resp http.Header) {
	if s.rl != nil && !s.rlDecision.Enforced {
		s.rl.ResponseHeaders(s.rlDecision, resp)
	}
	s.corsPolicy.ResponseHeaders(s.cors, resp)
	if s.web.IsGRPCWeb() {
		s.web.ResponseHeaders(status, resp)
	}
}

// isGRPC reports whether a content type is gRPC's (application/grpc or
// application/grpc+subtype; not gRPC-Web).
func isGRPC(ct string) bool {
	rest, ok := strings.CutPrefix(ct, grpcweb.ContentTypeGRPC)
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// Response runs the response phase on the upstream response's head, in
// the reverse order of the chain (rate limit headers, CORS headers, then
// gRPC-Web's translation of the headers, body and trailers). It edits
// resp in place: a translated gRPC-Web body replaces resp.Body (closing
// it closes the upstream's), its trailers move into the body, and
// resp.ContentLength becomes -1 so that the body streams; resp.Trailer is
// empty until the body is closed.
func (c *Chain) Response(s *Stream, resp *http.Response) {
	if c == nil {
		return
	}
	s.rl.ResponseHeaders(s.rlDecision, resp.Header)
	s.corsPolicy.ResponseHeaders(s.cors, resp.Header)
	if !s.web.IsGRPCWeb() {
		return
	}
	up := resp.Body
	if !s.web.ResponseHeaders(resp.StatusCode, resp.Header) {
		// Not a gRPC response: a trailers-only gRPC-Web error whose
		// grpc-message is the start of the upstream's body.
		_ = grpcweb.NonGRPCMessage(resp.Header, up)
		resp.StatusCode = http.StatusOK
		resp.Body = readCloser{http.NoBody, up}
		resp.ContentLength = 0
		resp.Trailer = nil
		return
	}
	b := &webBody{up: up, resp: resp}
	b.Reader = s.web.ResponseBody(up, b.takeTrailer)
	resp.Body = b
	resp.ContentLength = -1
}

// webBody is a gRPC-Web response body. The upstream's trailers go in the
// body, so while it is read resp.Trailer is empty (a stream writes no
// HTTP trailers); closing it puts them back, so that whoever judges the
// call by its grpc-status after the body (outlier detection) still can.
type webBody struct {
	io.Reader
	up      io.Closer
	resp    *http.Response
	trailer http.Header
}

// takeTrailer is called once the upstream body has ended.
func (b *webBody) takeTrailer() http.Header {
	b.trailer, b.resp.Trailer = b.resp.Trailer, nil
	return b.trailer
}

func (b *webBody) Close() error {
	if b.trailer != nil {
		b.resp.Trailer = b.trailer
	}
	return b.up.Close()
}

// readCloser reads through a translator and closes the original body.
type readCloser struct {
	io.Reader
	io.Closer
}
