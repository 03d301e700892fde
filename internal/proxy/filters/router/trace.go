package router

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/hcm"
	"github.com/meshlens/meshlens/internal/tracing"
)

// Client spans: each upstream attempt of a traced request is a client
// span, child of the request's server span, with its attempt number
// (retries are spans of their own); its trace headers carry the
// attempt's span id (or the request's context when the request is not
// sampled, so the decision travels on). The server span gets an event
// per retry, timeout and circuit-breaker overflow.

// startAttempt starts an attempt's client span and writes the trace
// headers into its request.
func startAttempt(ex *hcm.Exchange, out *http.Request, n int, view *cluster.View) *tracing.Span {
	if !ex.Tracing() {
		return nil
	}
	cs := ex.Trace.Span.StartClient(n+1, time.Now())
	if cs != nil {
		cs.SetHTTPRequest(out.Method, ex.Req.Path(), out.UserAgent())
		cs.SetUpstreamCluster(view.Cluster.Name)
	}
	ex.InjectTrace(out.Header, cs)
	return cs
}

// endAttempt ends an attempt's client span with what the attempt got,
// and records on the server span the events it caused.
func endAttempt(ex *hcm.Exchange, cs *tracing.Span, tr *tryResult, ctx context.Context, status int) {
	now := time.Now()
	ss := ex.Trace.Span
	if ss != nil {
		switch {
		case errors.Is(tr.err, cluster.ErrOverflow):
			ss.AddEvent(tracing.EventOverflow, now)
		case tr.perTryTimeout || tr.err != nil && context.Cause(ctx) == hcm.ErrRouteTimeout:
			ss.AddEvent(tracing.EventTimeout, now, tracing.Int(tracing.KeyAttempt, int64(ex.Attempts)))
		}
	}
	if cs == nil {
		return
	}
	if tr.ep != nil {
		if ap, err := netip.ParseAddrPort(tr.ep.Addr); err == nil {
			cs.SetPeer(ap)
		}
	}
	switch {
	case status != 0:
		cs.SetStatusCode(status)
	case tr.resp != nil:
		cs.SetStatusCode(tr.resp.StatusCode)
	case tr.err != nil:
		cs.SetError(tr.err.Error())
	}
	cs.End(now)
}

// retryEvent records on the server span that attempt n failed and is
// retried.
func retryEvent(ex *hcm.Exchange, n int) {
	if s := ex.Trace.Span; s != nil {
		s.AddEvent(tracing.EventRetry, time.Now(), tracing.Int(tracing.KeyAttempt, int64(n+1)))
	}
}
