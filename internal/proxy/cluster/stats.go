package cluster

import (
	"sync/atomic"

	"github.com/meshlens/meshlens/internal/proxy/tlsctx"
	"github.com/meshlens/meshlens/internal/stats"
)

// Stats are a cluster's cluster.<name>.* stats. They belong to the
// cluster's upstream, which outlives snapshots; a replaced upstream's
// successor acquires the same scope first, so counts carry over.
type Stats struct {
	scope *stats.Scope

	cxTotal, cxConnectFail, cxConnectTimeout, cxDestroy *stats.Counter
	cxHTTP1Total, cxHTTP2Total, CxRxBytes, cxTxBytes    *stats.Counter
	CxActive                                            *stats.Gauge
	cxConnectMs, cxLength                               *stats.Histogram

	RqTotal, RqCompleted, RqTimeout, RqPerTryTimeout *stats.Counter
	RqRetry, RqRetrySuccess, RqRxReset               *stats.Counter
	RqPendingOverflow, RqRetryOverflow, CxOverflow   *stats.Counter
	CxNoneHealthy, RqRetryAbandoned                  *stats.Counter
	// circuit_breakers.default.*_open (breaker.go); cxLimit is the
	// latest max_connections, for cx_open.
	CbCxOpen, cbCxPoolOpen, CbRqPendingOpen *stats.Gauge
	CbRqOpen, CbRqRetryOpen                 *stats.Gauge
	cxLimit                                 atomic.Int64
	// ssl are the cluster.<name>.ssl.* stats, on the first TLS handshake.
	ssl      tlsctx.LazySSL
	RqActive *stats.Gauge
	Codes    *stats.CodeCounters
	RqTime   *stats.Histogram

	membershipTotal, MembershipHealthy, membershipDegraded, membershipExcluded *stats.Gauge
	maxHostWeight                                                              *stats.Gauge
	membershipChange, lbHealthyPanic, updateSuccess                            *stats.Counter

	// OutlierStats are the outlier_detection.* stats, once a snapshot gives the
	// cluster outlier detection (outlier.go).
	od atomic.Pointer[OutlierStats]
	// HC are the health_check.* stats, once a snapshot gives the cluster
	// active health checks (healthcheck.go).
	hc atomic.Pointer[HealthStats]
}

func NewStats(sc *stats.Scope) *Stats {
	if sc == nil {
		return &Stats{}
	}
	return &Stats{
		scope:              sc,
		cxTotal:            sc.Counter("upstream_cx_total"),
		cxConnectFail:      sc.Counter("upstream_cx_connect_fail"),
		cxConnectTimeout:   sc.Counter("upstream_cx_connect_timeout"),
		cxDestroy:          sc.Counter("upstream_cx_destroy"),
		cxHTTP1Total:       sc.Counter("upstream_cx_http1_total"),
		cxHTTP2Total:       sc.Counter("upstream_cx_http2_total"),
		CxRxBytes:          sc.Counter("upstream_cx_rx_bytes_total"),
		cxTxBytes:          sc.Counter("upstream_cx_tx_bytes_total"),
		CxActive:           sc.Gauge("upstream_cx_active"),
		cxConnectMs:        sc.Histogram("upstream_cx_connect_ms", stats.Milliseconds),
		cxLength:           sc.Histogram("upstream_cx_length_ms", stats.Milliseconds),
		RqTotal:            sc.Counter("upstream_rq_total"),
		RqCompleted:        sc.Counter("upstream_rq_completed"),
		RqTimeout:          sc.Counter("upstream_rq_timeout"),
		RqPerTryTimeout:    sc.Counter("upstream_rq_per_try_timeout"),
		RqRetry:            sc.Counter("upstream_rq_retry"),
		RqRetrySuccess:     sc.Counter("upstream_rq_retry_success"),
		RqRxReset:          sc.Counter("upstream_rq_rx_reset"),
		RqPendingOverflow:  sc.Counter("upstream_rq_pending_overflow"),
		RqRetryOverflow:    sc.Counter("upstream_rq_retry_overflow"),
		CxOverflow:         sc.Counter("upstream_cx_overflow"),
		CxNoneHealthy:      sc.Counter("upstream_cx_none_healthy"),
		RqRetryAbandoned:   sc.Counter("retry_or_shadow_abandoned"),
		CbCxOpen:           sc.Gauge("circuit_breakers.default.cx_open"),
		cbCxPoolOpen:       sc.Gauge("circuit_breakers.default.cx_pool_open"),
		CbRqPendingOpen:    sc.Gauge("circuit_breakers.default.rq_pending_open"),
		CbRqOpen:           sc.Gauge("circuit_breakers.default.rq_open"),
		CbRqRetryOpen:      sc.Gauge("circuit_breakers.default.rq_retry_open"),
		RqActive:           sc.Gauge("upstream_rq_active"),
		Codes:              sc.CodeCounters("upstream_rq"),
		RqTime:             sc.Histogram("upstream_rq_time", stats.Milliseconds),
		membershipTotal:    sc.Gauge("membership_total"),
		MembershipHealthy:  sc.Gauge("membership_healthy"),
		membershipDegraded: sc.Gauge("membership_degraded"),
		membershipExcluded: sc.Gauge("membership_excluded"),
		maxHostWeight:      sc.Gauge("max_host_weight"),
		membershipChange:   sc.Counter("membership_change"),
		lbHealthyPanic:     sc.Counter("lb_healthy_panic"),
		updateSuccess:      sc.Counter("update_success"),
	}
}

// Release gives the cluster's scope back (the upstream is gone).
func (c *Stats) Release() {
	if c != nil && c.scope != nil {
		c.scope.Release()
	}
}

// setMembership records a snapshot's view of the cluster's endpoints.
func (c *Stats) setMembership(v *View) {
	var total, healthy, maxW int64
	for _, e := range v.Endpoints() {
		total++
		if e.Spec.Healthy && (e.Stats == nil || !e.Stats.Unusable()) {
			healthy++
		}
		maxW = max(maxW, int64(e.Spec.Weight))
	}
	if prev := c.membershipTotal.Value(); c.membershipTotal.Used() && prev != total {
		c.membershipChange.Inc()
	}
	c.membershipTotal.Set(total)
	c.MembershipHealthy.Set(healthy)
	c.membershipDegraded.Set(0)
	c.membershipExcluded.Set(0)
	c.maxHostWeight.Set(maxW)
	c.updateSuccess.Inc()
}

// CountResponse counts an upstream response: cluster.<c>.upstream_rq_<code>,
// _<class>xx and _completed, and the endpoint's success or error.
func (cs *Stats) CountResponse(es *EndpointStats, code int) {
	cs.Codes.Inc(code)
	cs.RqCompleted.Inc()
	if code >= 500 {
		es.RqError.Add(1)
		return
	}
	es.RqSuccess.Add(1)
}
