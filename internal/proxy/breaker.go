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
//   - A retry needs a place under the cluster's retry limit; without one
//     the response that would have been retried is the answer. The limit
//     is the retry budget (Envoy's retry_budget): retries in progress at
//     most budget_percent of the attempts in progress, but always
//     min_retry_concurrency. A retry_budget from xDS replaces
//     max_retries, as in Envoy; without one the default budget (20 %,
//     3) applies together with max_retries, so that retries cannot
//     multiply the load of a failing cluster even where max_retries is
//     unlimited (App Mesh's default). A retry holds its place from the
//     decision to retry, through the back-off, until the retry's
//     response head (or failure).
//   - A tcp_proxy session needs a place under max_connections.
//
// The counts are the cluster's, shared by every snapshot while its
// upstream lives: one atomic add to enter, one to leave. Envoy's
// circuit_breakers.default.*_open gauges say 1 while a threshold is
// reached (rq_open: max_requests; rq_pending_open: the HTTP/1.1 bound;
// rq_retry_open: max_retries; cx_open: upstream_cx_active at
// max_connections); they change only when a count crosses a threshold.

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
	// The retry budget: retries in progress at most budgetPercent of the
	// attempts in progress, but always budgetMin; budgetOnly when xDS
	// set it, and so replaced max_retries.
	budgetPercent float64
	budgetMin     int64
	budgetOnly    bool
}

// retryLimit is how many retries may be in progress while active
// attempts are.
func (l *breakerLimits) retryLimit(active int64) int64 {
	budget := max(l.budgetMin, int64(l.budgetPercent*float64(active)/100))
	if l.budgetOnly {
		return budget
	}
	return min(l.retries, budget)
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
	b := breakerLimits{
		h1Requests:    min(maxReq, conns+or(l.MaxPendingRequests, defaultMaxPendingRequests)),
		h2Requests:    maxReq,
		retries:       or(l.MaxRetries, defaultMaxRetries),
		connections:   conns,
		budgetPercent: table.DefaultRetryBudgetPercent,
		budgetMin:     table.DefaultRetryBudgetMinConcurrency,
	}
	if rb := l.RetryBudget; rb != nil {
		b.budgetPercent, b.budgetMin, b.budgetOnly = rb.Percent, int64(rb.MinConcurrency), true
	}
	return b
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
// h2; on overflow it counts upstream_rq_pending_overflow. requestDone
// gives the place back.
func (v *clusterView) admitRequest(h2 bool) bool {
	l := &v.limits
	limit := l.h1Requests
	if h2 {
		limit = l.h2Requests
	}
	n := v.up.breakers.requests.Add(1)
	if n > limit {
		v.up.breakers.requests.Add(-1)
		v.up.stats.rqPendingOverflow.Inc()
		return false
	}
	if n >= min(l.h1Requests, l.h2Requests) {
		v.up.stats.noteRequests(n, l)
	}
	return true
}

// requestDone gives back an attempt's place.
func (u *upstream) requestDone() {
	n := u.breakers.requests.Add(-1)
	if l := u.limits.Load(); l != nil && (n == l.h1Requests-1 || n == l.h2Requests-1) {
		u.stats.noteRequests(n, l)
	}
}

// noteRequests sets the request gauges for n attempts in progress.
func (c *clusterStats) noteRequests(n int64, l *breakerLimits) {
	c.cbRqOpen.Set(open(n >= l.h2Requests))
	c.cbRqPendingOpen.Set(open(n >= l.h1Requests))
}

func open(at bool) int64 {
	if at {
		return 1
	}
	return 0
}

// admitRetry takes a place for one retry under the retry limit (max
// retries and the retry budget); on overflow it counts
// upstream_rq_retry_overflow. retryDone gives the place back.
func (v *clusterView) admitRetry() bool {
	limit := v.limits.retryLimit(v.up.breakers.requests.Load())
	n := v.up.breakers.retries.Add(1)
	if n > limit {
		v.up.breakers.retries.Add(-1)
		v.up.stats.rqRetryOverflow.Inc()
		v.up.stats.cbRqRetryOpen.Set(1)
		return false
	}
	if n == limit {
		v.up.stats.cbRqRetryOpen.Set(1)
	}
	return true
}

// retryDone gives back a retry's place.
func (u *upstream) retryDone() {
	n := u.breakers.retries.Add(-1)
	if l := u.limits.Load(); l != nil && n < l.retryLimit(u.breakers.requests.Load()) {
		u.stats.cbRqRetryOpen.Set(0)
	}
}

// noteConnections sets cx_open for n upstream connections open, when n
// is at the threshold or just below it.
func (c *clusterStats) noteConnections(n int64) {
	if limit := c.cxLimit.Load(); limit > 0 && (n == limit || n == limit-1) {
		c.cbCxOpen.Set(open(n >= limit))
	}
}

// setLimits records a snapshot's thresholds for the gauges, and sets the
// gauges for what is in progress under them.
func (u *upstream) setLimits(l breakerLimits) {
	u.limits.Store(&l)
	c := u.stats
	c.cxLimit.Store(l.connections)
	c.noteRequests(u.breakers.requests.Load(), &l)
	c.cbRqRetryOpen.Set(open(u.breakers.retries.Load() >= l.retryLimit(u.breakers.requests.Load())))
	c.cbCxOpen.Set(open(c.cxActive.Value() >= l.connections))
	c.cbCxPoolOpen.Set(0) // max_connection_pools is not supported
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
