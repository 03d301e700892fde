// Package tracing records the spans of the data plane: a server span
// where a request enters a sidecar or gateway and a client span for each
// upstream attempt, with OpenTelemetry's HTTP and RPC attribute keys and
// the mesh's own (keys.go), and hands finished spans to exporters
// (package export) off the request path.
//
// # Wiring into a request path
//
//	tr := tracing.New(tracing.Config{Resource: res, Sampler: smp, Exporters: exps, Store: store})
//
//	// Request headers arrived and the route matched:
//	parent, _ := propagation.Extract(req.Header)
//	r := tr.Begin(parent, routeName, start) // r.Span is nil when not sampled
//	r.Span.SetHTTPRequest(method, path, userAgent)
//	r.Span.SetRoute(routeName) // ...and the other setters; no-ops on nil
//
//	// Each upstream attempt (retries are new client spans):
//	child := r.Span.StartClient(attempt, now)
//	out := r.Ctx
//	if child != nil {
//		out = child.Context()
//	}
//	propagation.Inject(upstreamReq.Header, out, formats)
//	child.SetStatusCode(code)
//	child.End(now)
//
//	// The response is finished:
//	if r.Span == nil && tr.KeepTail(code, grpcStatus, end.Sub(r.Start)) {
//		tr.Materialize(&r) // a tail-kept span, for the built-in store only
//		r.Span.SetHTTPRequest(method, path, userAgent) // ...
//	}
//	r.Span.SetStatusCode(code)
//	r.Span.End(end)
//	// The access log prints r.Ctx.TraceID and r.Ctx.SpanID.
//
// StartServer(parent, route, start) is Begin(...).Span for callers that
// need only the span.
//
// # Cost
//
// A nil *Span's methods do nothing, so an unsampled request pays for
// Extract, Begin (two random numbers and one map lookup) and, at the end,
// KeepTail: no allocation. A sampled request takes its Spans from a pool;
// End copies the span into each exporter's bounded queue by value, and
// the only allocation is the copy of its extra attributes and events
// when it has any.
//
// # Tail-kept spans
//
// The tail rule (sampling.Tail) keeps requests that failed or were slow
// although head sampling dropped them, for the built-in store. Nothing is
// recorded while such a request runs: Request is the minimal record (ids,
// start, route), and Materialize turns it into a server span at the end.
// That span has the ids the request propagated, so the store can join it
// with tail-kept spans of other hops; it has no client spans (the
// attempts were not recorded: SetRetryCount and the upstream attributes
// say what happened), and it is never sent to collectors.
package tracing
