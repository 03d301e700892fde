package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

// maxRetryBody is the largest request body buffered so that a request can
// be retried. Larger bodies, and bodies of unknown length, are streamed
// and their requests tried once: a retry must not replay a body that was
// partly sent, nor buffer an upload without bound.
const maxRetryBody = 64 << 10

// tryResult is one upstream attempt.
type tryResult struct {
	resp *http.Response
	ep   *endpointRT
	err  error
	// perTryTimeout: the attempt's own timeout (RetryPolicy.PerTryTimeout)
	// fired, not the route's.
	perTryTimeout bool
	// trailersJudge: outlier detection waits for the gRPC trailers.
	trailersJudge bool
	cancel        context.CancelFunc
	start         time.Time
}

// try performs one attempt under the retry policy's per-try timeout.
func (h *httpServer) try(ctx context.Context, out *http.Request, downMajor int, view *clusterView, route *table.Route) tryResult {
	tr := tryResult{cancel: func() {}, start: time.Now()}
	actx := ctx
	if p := route.Retry; p != nil && p.PerTryTimeout > 0 {
		actx, tr.cancel = context.WithTimeout(ctx, p.PerTryTimeout)
		out = out.WithContext(actx)
	}
	tr.resp, tr.ep, tr.err = h.attempt(out, downMajor, view, route)
	if tr.err != nil && actx.Err() != nil && ctx.Err() == nil {
		tr.perTryTimeout = true
	}
	if view.skip != nil {
		switch judge(ctx, &tr) {
		case verdictOK:
			view.outcome(tr.ep, false)
		case verdictFail:
			view.outcome(tr.ep, true)
		case verdictTrailers:
			tr.trailersJudge = true
		}
	}
	return tr
}

// discard releases an attempt that will not be answered downstream.
func (tr *tryResult) discard(view *clusterView) {
	if tr.resp != nil {
		countStatus(view.up.stats, tr.ep.stats, tr.resp.StatusCode)
		_ = tr.resp.Body.Close()
		view.up.attemptDone(tr.ep.stats)
		view.up.stats.rqTime.RecordDuration(time.Since(tr.start))
	}
	tr.cancel()
}

// replayable prepares a request for retries: a body of known length up to
// maxRetryBody is read (through the stream, so the route timeout starts
// at its end) and replayed from memory on each attempt. It returns the
// number of retries allowed and the body (nil for none), or ok false when
// the client failed while sending the body.
func replayable(pol *table.RetryPolicy, body io.Reader, contentLength int64) (retries int, replay []byte, ok bool) {
	if pol == nil || pol.NumRetries == 0 {
		return 0, nil, true
	}
	if body == nil {
		return int(pol.NumRetries), nil, true
	}
	if contentLength < 0 || contentLength > maxRetryBody {
		return 0, nil, true
	}
	b, err := io.ReadAll(io.LimitReader(body, maxRetryBody+1))
	if err != nil || int64(len(b)) != contentLength {
		return 0, nil, false
	}
	return int(pol.NumRetries), b, true
}

// withBody points an attempt at the replayed body.
func withBody(out *http.Request, replay []byte) {
	out.Body = io.NopCloser(bytes.NewReader(replay))
	out.ContentLength = int64(len(replay))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(replay)), nil }
}

// gRPC status codes the retry policy can name.
const (
	grpcCancelled         = "1"
	grpcDeadlineExceeded  = "4"
	grpcResourceExhausted = "8"
	grpcInternal          = "13"
	grpcUnavailable       = "14"
)

// retriable reports whether an attempt's outcome may be retried under
// the policy, with Envoy's meaning of each retry_on condition. Nothing is
// retried once the request itself is over (route timeout, stream idle,
// client gone).
func retriable(pol *table.RetryPolicy, tr *tryResult, ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	on := pol.On
	if tr.err != nil {
		var ce *connectError
		switch {
		case errors.Is(tr.err, errNoEndpoint), errors.Is(tr.err, errOverflow):
			// Envoy retries neither a cluster with nothing to offer nor
			// a circuit breaker's refusal.
			return false
		case errors.As(tr.err, &ce):
			return on&(table.RetryConnectFailure|table.Retry5xx|table.RetryGatewayError|table.RetryResetBeforeRequest) != 0
		case tr.perTryTimeout:
			return on&(table.Retry5xx|table.RetryGatewayError) != 0
		case strings.Contains(tr.err.Error(), "REFUSED_STREAM"):
			return on&(table.RetryRefusedStream|table.Retry5xx|table.RetryGatewayError|table.RetryReset) != 0
		}
		return on&(table.RetryReset|table.Retry5xx|table.RetryGatewayError) != 0
	}
	code := tr.resp.StatusCode
	switch {
	case code >= 500 && on&table.Retry5xx != 0,
		(code == 502 || code == 503 || code == 504) && on&table.RetryGatewayError != 0,
		code == 409 && on&table.RetryRetriable4xx != 0,
		on&table.RetryRetriableStatusCodes != 0 && slices.Contains(pol.RetriableStatusCodes, uint32(code)):
		return true
	}
	if on&table.RetryEnvoyRateLimited != 0 && tr.resp.Header.Get("X-Envoy-Ratelimited") != "" {
		return true
	}
	// gRPC: a status in the response headers (a trailers-only response).
	switch tr.resp.Header.Get("Grpc-Status") {
	case grpcCancelled:
		return on&table.RetryGRPCCancelled != 0
	case grpcDeadlineExceeded:
		return on&table.RetryGRPCDeadline != 0
	case grpcResourceExhausted:
		return on&table.RetryGRPCResourceExhausted != 0
	case grpcInternal:
		return on&table.RetryGRPCInternal != 0
	case grpcUnavailable:
		return on&table.RetryGRPCUnavailable != 0
	}
	return false
}

// backoff waits before retry number n (0-based) as Envoy does: a random
// time in [0, (2^(n+1)-1) * base), capped at max. It returns false when
// ctx ended first.
func backoff(ctx context.Context, pol *table.RetryPolicy, n int) bool {
	base, maxWait := pol.BackoffBase, pol.BackoffMax
	if base <= 0 {
		base = 25 * time.Millisecond
	}
	if maxWait < base {
		maxWait = 10 * base
	}
	upper := base * time.Duration(uint64(1)<<min(n+1, 30)-1)
	upper = min(upper, maxWait)
	d := time.Duration(rand.Int64N(int64(upper) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
