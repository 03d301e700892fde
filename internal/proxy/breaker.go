package proxy

import (
	"errors"
	"sync/atomic"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

// Circuit breakers, as Envoy's default-priority thresholds: each cluster
// admits at most so many requests, retries and TCP sessions at once, and
// fails the rest at once rather than queue them without bound (503 with
// x-envoy-overflow, response flag UO; a TCP connection is closed).
//
//   - An HTTP/2 (and gRPC) attempt needs a place under max_requests.
//   - An HTTP/1.1 attempt holds a connection of its own, so it needs a
//     place under max_connections + max_pending_requests (App Mesh's
//     connectionPool.http) as well as under max_requests: Envoy's queue of
//     requests waiting for a connection, counted as one.
//   - A retry needs a place under max_retries; without one the response
//     that would have been retried is the answer.
//   - A tcp_proxy session needs a place under max_connections.
//
// The counts are the cluster's, shared by every snapshot while its
// upstream lives: one atomic add to enter, one to leave.

// Envoy's defaults for thresholds xDS leaves unset.
const (
	defaultMaxConnections     = 1024
	defaultMaxPendingRequests = 1024
	defaultMaxRequests        = 1024
	defaultMaxRetries         = 3
)

// errOverflow: a circuit breaker refused the attempt.
var errOverflow = errors.New("circuit breaker overflow")

// bodyOverflow is Envoy's local reply for an overflow.
const bodyOverflow = "upstream connect error or disconnect/reset before headers. reset reason: overflow"

// breakerLimits are a cluster's thresholds with Envoy's defaults filled
// in.
type breakerLimits struct {
	h1Requests, h2Requests, retries, connections int64
}

func limitsOf(l table.CircuitBreakers) breakerLimits {
	or := func(v uint32, def int64) int64 {
		if v == 0 {
			return def
		}
		return int64(v)
	}
	maxReq := or(l.MaxRequests, defaultMaxRequests)
	conns := or(l.MaxConnections, defaultMaxConnections)
	return breakerLimits{
		h1Requests:  min(maxReq, conns+or(l.MaxPendingRequests, defaultMaxPendingRequests)),
		h2Requests:  maxReq,
		retries:     or(l.MaxRetries, defaultMaxRetries),
		connections: conns,
	}
}

// breakerCounts are what a cluster has in progress.
type breakerCounts struct {
	requests, retries, sessions atomic.Int64
}

// enter takes a place under limit, or counts nothing and reports false.
func enter(n *atomic.Int64, limit int64) bool {
	if n.Add(1) > limit {
		n.Add(-1)
		return false
	}
	return true
}

// admitRequest takes a place for one attempt, over HTTP/2 upstream when
// h2; on overflow it counts upstream_rq_pending_overflow.
func (v *clusterView) admitRequest(h2 bool) bool {
	limit := v.limits.h1Requests
	if h2 {
		limit = v.limits.h2Requests
	}
	if enter(&v.up.breakers.requests, limit) {
		return true
	}
	v.up.stats.rqPendingOverflow.Inc()
	return false
}

// admitRetry takes a place for one retry; on overflow it counts
// upstream_rq_retry_overflow.
func (v *clusterView) admitRetry() bool {
	if enter(&v.up.breakers.retries, v.limits.retries) {
		return true
	}
	v.up.stats.rqRetryOverflow.Inc()
	return false
}

// admitSession takes a place for one TCP session; on overflow it counts
// upstream_cx_overflow.
func (v *clusterView) admitSession() bool {
	if enter(&v.up.breakers.sessions, v.limits.connections) {
		return true
	}
	v.up.stats.cxOverflow.Inc()
	return false
}
