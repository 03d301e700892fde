package hcm

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

// Tracing in the connection manager: a request that reached the route
// lookup begins its trace (the incoming context, or a new trace) and the
// head decision. Where a request enters a sidecar (inbound) or a gateway,
// it is a server span, which finish ends with the outcome (or
// materialises for the built-in store when the tail rule keeps an
// unsampled request); the request goes upstream with the server span's
// context. On a sidecar's egress the request records no span of its own:
// each upstream attempt is a client span, child of the caller's span
// (StartAttempt), and carries that span's context upstream. The router
// calls StartAttempt and InjectTrace.

// beginTrace starts the request's trace on a chain that traces.
func (ex *Exchange) beginTrace(r *http.Request, cc *ChainConfig, ci *Conn) {
	parent, _ := propagation.Extract(r.Header)
	var name string
	if ex.route != nil {
		name = ex.route.Name
	}
	ex.tracer, ex.traceFormats, ex.traceCC, ex.traceReq = cc.Tracer, cc.TraceFormats, cc, r
	ex.traceDecided = parent.SampledKnown
	if cc.Dir == table.Outbound {
		ex.Trace = cc.Tracer.DecideHTTP(parent, name, ex.start, r.Host, r.Method, r.URL.Path)
		return
	}
	ex.Trace = cc.Tracer.BeginHTTP(parent, name, ex.start, r.Host, r.Method, r.URL.Path)
	if s := ex.Trace.Span; s != nil {
		ex.describeServerSpan(s, r, cc, ci)
	}
}

// StartAttempt starts the client span of upstream attempt n (from 1) of
// a request on a sidecar's egress; nil when the request is not traced,
// not sampled, or not on an egress (its server span is the hop's span).
func (ex *Exchange) StartAttempt(n int, start time.Time) *tracing.Span {
	if ex.tracer == nil || ex.traceCC.Dir != table.Outbound {
		return nil
	}
	cs := ex.tracer.StartClientOf(&ex.Trace, n, start)
	if cs != nil {
		ex.describeServerSpan(cs, ex.traceReq, ex.traceCC, nil)
		ex.traceSpanID = cs.Context().SpanID
	}
	return cs
}

// describeServerSpan sets what the request says on its server span (or,
// on an egress, its attempts' client spans).
func (ex *Exchange) describeServerSpan(s *tracing.Span, r *http.Request, cc *ChainConfig, ci *Conn) {
	s.SetHTTPRequest(r.Method, ex.Req.path, r.UserAgent())
	if ex.route != nil {
		if t := routeTemplate(&ex.route.Match); t != "" {
			s.SetHTTPRoute(t)
		}
		s.SetVirtualService(ex.route.Meta.VirtualService)
	}
	if isGRPC(r) {
		svc, method, ok := strings.Cut(strings.TrimPrefix(ex.Req.path, "/"), "/")
		if ok {
			s.SetGRPC(svc, method)
		}
	}
	host, port := splitHostPort(r.Host)
	s.SetServerAddress(host, port)
	if ci != nil && ci.Info.Remote.IsValid() {
		s.SetPeer(ci.Info.Remote)
	}
	for _, a := range cc.TraceTags {
		s.SetAttr(a)
	}
	for _, ht := range cc.TraceHeaderTags {
		v := r.Header.Get(ht.Header)
		if v == "" {
			v = ht.Default
		}
		if v != "" {
			s.SetAttr(tracing.String(ht.Tag, v))
		}
	}
}

// endTrace ends the server span with the request's outcome (finish).
func (ex *Exchange) endTrace(ds stream.Downstream, r *http.Request, cc *ChainConfig, ci *Conn, d time.Duration) {
	grpcStatus := -1
	if isGRPC(r) {
		grpcStatus = responseGRPCStatus(ds.Header(), ex.trailer)
	}
	s := ex.Trace.Span
	if s == nil {
		if ex.traceCC.Dir == table.Outbound || !ex.tracer.KeepTail(ex.Status, grpcStatus, d) {
			return
		}
		s = ex.tracer.Materialize(&ex.Trace)
		if s == nil {
			return
		}
		ex.describeServerSpan(s, r, cc, ci)
	}
	if ex.Status != 0 {
		s.SetStatusCode(ex.Status)
	}
	if grpcStatus >= 0 {
		s.SetGRPCStatus(grpcStatus)
	}
	if ex.view != nil {
		s.SetUpstreamCluster(ex.view.Cluster.Name)
	}
	if ex.Flags != 0 {
		s.SetResponseFlags(ex.Flags.String())
	}
	if ex.Attempts > 1 {
		s.SetRetryCount(int(ex.Attempts) - 1)
	}
	if ex.Status == 0 {
		s.SetError("no response")
	}
	s.End(ex.start.Add(d))
}

// Tracing reports whether the request is traced by its chain (sampled
// or not): its trace headers are written upstream.
func (ex *Exchange) Tracing() bool { return ex.tracer != nil }

// InjectTrace writes the trace context of an upstream attempt into its
// request headers: the attempt's client span's (egress) or the server
// span's, replacing the headers of the formats the chain writes. A
// request that is not sampled keeps the trace headers it came with, and
// when no decision came with it, it carries B3's decision-only "b3: 0"
// upstream, so that the next hop does not start a trace of its own at its
// own odds; that value is shared, so an unsampled request still allocates
// nothing for tracing.
func (ex *Exchange) InjectTrace(h http.Header, client *tracing.Span) {
	switch {
	case client != nil:
		propagation.Inject(h, client.Context(), ex.traceFormats)
	case ex.Trace.Span != nil:
		propagation.Inject(h, ex.Trace.Ctx, ex.traceFormats)
	case !ex.traceDecided:
		h["B3"] = b3NotSampled
	}
}

// b3NotSampled is B3's single-header "deny" decision, shared by every
// unsampled request; header values are never modified in place.
var b3NotSampled = []string{"0"}

// TraceSpan is the span an upstream attempt's events go to: the server
// span, else (egress) the attempt's own.
func (ex *Exchange) TraceSpan(attempt *tracing.Span) *tracing.Span {
	if ex.Trace.Span != nil {
		return ex.Trace.Span
	}
	return attempt
}

// routeTemplate is http.route: the route's path as configured.
func routeTemplate(m *table.RouteMatch) string {
	switch {
	case m.Path != "":
		return m.Path
	case m.PathSeparated != "":
		return m.PathSeparated
	case m.PathRegex != nil:
		return m.PathRegex.String()
	}
	return m.Prefix
}

// isGRPC reports whether a request is gRPC by its content type.
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc")
}

// responseGRPCStatus is the grpc-status the response sent (trailer or
// trailers-only header); -1 when none.
func responseGRPCStatus(h, trailer http.Header) int {
	v := h.Get("Grpc-Status")
	if v == "" {
		v = trailer.Get("Grpc-Status")
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return n
	}
	return -1
}

// splitHostPort splits an authority; port 0 when it has none.
func splitHostPort(a string) (string, int) {
	i := strings.LastIndexByte(a, ':')
	if i < 0 || strings.IndexByte(a[i:], ']') >= 0 {
		return a, 0
	}
	p, err := strconv.Atoi(a[i+1:])
	if err != nil {
		return a, 0
	}
	return a[:i], p
}
