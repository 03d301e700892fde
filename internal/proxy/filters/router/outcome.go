package router

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/meshlens/meshlens/internal/proxy/hcm"
)

// The router's verdict on each attempt, which it feeds to the cluster's
// outlier detection (package cluster): Envoy's consecutive_5xx counts
// 5xx responses, gRPC statuses that map to one, connect failures, resets
// and timeouts, but not what the client broke.

// Outlier verdicts on one attempt.
type verdict uint8

const (
	verdictNone     verdict = iota // not the endpoint's doing: not counted
	verdictOK                      // a success: resets the count
	verdictFail                    // a failure: counts towards ejection
	verdictTrailers                // a gRPC response: its trailers decide
)

// judge classifies an attempt for outlier detection. ctx is the request's
// context with the route timeout: an attempt cut short because the client
// went away or the stream idled is not counted.
func judge(ctx context.Context, tr *tryResult) verdict {
	switch {
	case tr.ep == nil || tr.downstream || tr.outgrew || errors.Is(tr.err, errNoEndpoint):
		// A request the client broke (its body failed), or whose body
		// could not be replayed, says nothing of the endpoint.
		return verdictNone
	case tr.err != nil:
		if tr.perTryTimeout || hcm.Cause(ctx) == hcm.ErrRouteTimeout {
			return verdictFail
		}
		if ctx.Err() != nil {
			return verdictNone
		}
		return verdictFail // connect failure or reset
	case tr.resp.StatusCode >= 500:
		return verdictFail
	case !isGRPCResponse(tr.resp):
		return verdictOK
	}
	if s := tr.resp.Header.Get("Grpc-Status"); s != "" { // trailers-only
		if grpcStatusFails(s) {
			return verdictFail
		}
		return verdictOK
	}
	return verdictTrailers
}

// grpcOutcome is the outlier verdict on a gRPC response whose status came
// in the trailers, once its body has been copied: the upstream failing
// mid-body counts against it, the client going away (a cancelled stream)
// does not count.
func grpcOutcome(resp *http.Response, bodyErr error) verdict {
	switch {
	case bodyErr != nil && errors.Is(bodyErr, errUpstreamBody):
		return verdictFail
	case bodyErr != nil:
		return verdictNone
	case grpcStatusFails(resp.Trailer.Get("Grpc-Status")):
		return verdictFail
	}
	return verdictOK
}

func isGRPCResponse(resp *http.Response) bool {
	ct := resp.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc")
}

// grpcStatusFails reports whether a grpc-status maps to a 5xx HTTP code
// in Envoy's table (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
// UNAVAILABLE, DATA_LOSS), the codes its outlier detector counts. A
// missing status counts as a failure: the stream ended without one.
func grpcStatusFails(s string) bool {
	switch s {
	case "2", "4", "12", "13", "14", "15", "":
		return true
	}
	return false
}
