package cluster

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

// ErrOverflow: a circuit breaker refused the attempt.
var ErrOverflow = errors.New("circuit breaker overflow")

// Limits are a cluster's thresholds with Envoy's defaults filled
// in.
type Limits struct {
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
func (l *Limits) retryLimit(active int64) int64 {
	budget := max(l.budgetMin, int64(l.budgetPercent*float64(active)/100))
	if l.budgetOnly {
		return budget
	}
	return min(l.retries, budget)
}

func limitsOf(l table.CircuitBreakers) Limits {
	or := func(v uint32, def int64) int64 {
		if v == 0 {
			return def
		}
		return int64(v)
	}
	maxReq := or(l.MaxRequests, defaultMaxRequests)
	conns := or(l.MaxConnections, defaultMaxConnections)
	b := Limits{
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

// Breakers are what a cluster has in progress.
type Breakers struct {
	Requests, Retries, Sessions atomic.Int64
}

// enter takes a place under limit, or counts nothing and reports false.
func enter(n *atomic.Int64, limit int64) bool {
	if n.Add(1) > limit {
		n.Add(-1)
		return false
	}
	return true
}

// AdmitRequest takes a place for one attempt, over HTTP/2 upstream when
// h2; on overflow it counts upstream_rq_pending_overflow. requestDone
// gives the place back.
func (v *View) AdmitRequest(h2 bool) bool {
	l := &v.limits
	limit := l.h1Requests
	if h2 {
		limit = l.h2Requests
	}
	n := v.Up.Breakers.Requests.Add(1)
	if n > limit {
		v.Up.Breakers.Requests.Add(-1)
		v.Up.Stats.RqPendingOverflow.Inc()
		return false
	}
	if n >= min(l.h1Requests, l.h2Requests) {
		v.Up.Stats.noteRequests(n, l)
	}
	return true
}

// requestDone gives back an attempt's place.
func (u *Upstream) requestDone() {
	n := u.Breakers.Requests.Add(-1)
	if l := u.limits.Load(); l != nil && (n == l.h1Requests-1 || n == l.h2Requests-1) {
		u.Stats.noteRequests(n, l)
	}
}

// noteRequests sets the request gauges for n attempts in progress.
func (c *Stats) noteRequests(n int64, l *Limits) {
	c.CbRqOpen.Set(open(n >= l.h2Requests))
	c.CbRqPendingOpen.Set(open(n >= l.h1Requests))
}

func open(at bool) int64 {
	if at {
		return 1
	}
	return 0
}

// AdmitRetry takes a place for one retry under the retry limit (max
// retries and the retry budget); on overflow it counts
// upstream_rq_retry_overflow. retryDone gives the place back.
func (v *View) AdmitRetry() bool {
	limit := v.limits.retryLimit(v.Up.Breakers.Requests.Load())
	n := v.Up.Breakers.Retries.Add(1)
	if n > limit {
		v.Up.Breakers.Retries.Add(-1)
		v.Up.Stats.RqRetryOverflow.Inc()
		v.Up.Stats.CbRqRetryOpen.Set(1)
		return false
	}
	if n == limit {
		v.Up.Stats.CbRqRetryOpen.Set(1)
	}
	return true
}

// RetryDone gives back a retry's place.
func (u *Upstream) RetryDone() {
	n := u.Breakers.Retries.Add(-1)
	if l := u.limits.Load(); l != nil && n < l.retryLimit(u.Breakers.Requests.Load()) {
		u.Stats.CbRqRetryOpen.Set(0)
	}
}

// noteConnections sets cx_open for n upstream connections open, when n
// is at the threshold or just below it.
func (c *Stats) noteConnections(n int64) {
	if limit := c.cxLimit.Load(); limit > 0 && (n == limit || n == limit-1) {
		c.CbCxOpen.Set(open(n >= limit))
	}
}

// setLimits records a snapshot's thresholds for the gauges, and sets the
// gauges for what is in progress under them.
func (u *Upstream) setLimits(l Limits) {
	u.limits.Store(&l)
	c := u.Stats
	c.cxLimit.Store(l.connections)
	c.noteRequests(u.Breakers.Requests.Load(), &l)
	c.CbRqRetryOpen.Set(open(u.Breakers.Retries.Load() >= l.retryLimit(u.Breakers.Requests.Load())))
	c.CbCxOpen.Set(open(c.CxActive.Value() >= l.connections))
	c.cbCxPoolOpen.Set(0) // max_connection_pools is not supported
}

// AdmitSession takes a place for one TCP session; on overflow it counts
// upstream_cx_overflow.
func (v *View) AdmitSession() bool {
	if enter(&v.Up.Breakers.Sessions, v.limits.connections) {
		return true
	}
	v.Up.Stats.CxOverflow.Inc()
	return false
}
