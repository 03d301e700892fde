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

// Client spans: on a sidecar's egress each upstream attempt of a sampled
// request is a client span, child of the caller's span, with its attempt
// number (retries are spans of their own), and its context goes upstream;
// elsewhere the request's server span's context goes upstream. An
// unsampled request keeps the headers it came with
// (hcm.Exchange.InjectTrace). Retries, timeouts, outlier ejections and
// circuit-breaker overflow are events on the server span (egress: on the
// attempt's span).

// startAttempt starts attempt n's client span (egress) and writes the
// trace headers into its request.
func startAttempt(ex *hcm.Exchange, out *http.Request, n int, view *cluster.View) *tracing.Span {
	if !ex.Tracing() {
		return nil
	}
	cs := ex.StartAttempt(n+1, time.Now())
	cs.SetUpstreamCluster(view.Cluster.Name)
	if n > 0 && (cs != nil || ex.Trace.Span != nil) {
		// A retry's headers differ from the abandoned attempt's, whose
		// transport may still be writing them: a map of its own.
		out.Header = out.Header.Clone()
	}
	ex.InjectTrace(out.Header, cs)
	return cs
}

// endAttempt ends an attempt's client span with what the attempt got
// (status: the answer sent downstream, for the last attempt), and records
// the events it caused.
func endAttempt(ex *hcm.Exchange, cs *tracing.Span, tr *tryResult, ctx context.Context, status int) {
	now := time.Now()
	if es := ex.TraceSpan(cs); es != nil {
		switch {
		case errors.Is(tr.err, cluster.ErrOverflow):
			es.AddEvent(tracing.EventOverflow, now)
		case tr.perTryTimeout || tr.err != nil && hcm.Cause(ctx) == hcm.ErrRouteTimeout:
			es.AddEvent(tracing.EventTimeout, now, tracing.Int(tracing.KeyAttempt, int64(ex.Attempts)))
		}
		if tr.ejected {
			es.AddEvent(tracing.EventEjection, now, tracing.String(tracing.KeyNetworkPeerAddress, tr.ep.Addr))
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
		if ex.Flags != 0 {
			cs.SetResponseFlags(ex.Flags.String())
		}
	case tr.resp != nil:
		cs.SetStatusCode(tr.resp.StatusCode)
	case tr.err != nil:
		cs.SetError(tr.err.Error())
	}
	cs.End(now)
}

// retryEvent records that attempt n (from 0) failed and is retried, on
// the server span or (egress) the failed attempt's span, before it ends.
func retryEvent(ex *hcm.Exchange, cs *tracing.Span, n int) {
	if s := ex.TraceSpan(cs); s != nil {
		s.AddEvent(tracing.EventRetry, time.Now(), tracing.Int(tracing.KeyAttempt, int64(n+1)))
	}
}
