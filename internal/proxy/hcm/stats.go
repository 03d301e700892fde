package hcm

import "github.com/meshlens/meshlens/internal/stats"

// Stats are an HTTP connection manager's http.<stat_prefix>.* stats,
// the router's included (no_route, no_cluster, rq_direct_response).
type Stats struct {
	cxTotal, cxHTTP1Total, cxHTTP2Total, cxDestroy *stats.Counter
	cxActive, cxHTTP1Active, cxHTTP2Active         *stats.Gauge
	CxRxBytes, CxTxBytes                           *stats.Counter
	cxLength                                       *stats.Histogram

	rqTotal, rqHTTP1Total, rqHTTP2Total, rqCompleted *stats.Counter
	rqActive                                         *stats.Gauge
	codes                                            *stats.CodeCounters // classes only
	rqTime                                           *stats.Histogram
	RqIdleTimeout, RqTxReset, CxProtocolError        *stats.Counter
	rqUnanswered                                     *stats.Counter // meshlens's own: see ensureAnswered
	noRoute, noCluster, directResponse               *stats.Counter
	cxUpgradesTotal, rqWsOnNonWsRoute                *stats.Counter
	cxUpgradesActive                                 *stats.Gauge
	rqTooManyPrematureResets                         *stats.Counter
	cxIdleTimeout                                    *stats.Counter
}

func NewStats(sc *stats.Scope) *Stats {
	if sc == nil {
		return &Stats{}
	}
	return &Stats{
		cxTotal:          sc.Counter("downstream_cx_total"),
		cxHTTP1Total:     sc.Counter("downstream_cx_http1_total"),
		cxHTTP2Total:     sc.Counter("downstream_cx_http2_total"),
		cxDestroy:        sc.Counter("downstream_cx_destroy"),
		cxActive:         sc.Gauge("downstream_cx_active"),
		cxHTTP1Active:    sc.Gauge("downstream_cx_http1_active"),
		cxHTTP2Active:    sc.Gauge("downstream_cx_http2_active"),
		CxRxBytes:        sc.Counter("downstream_cx_rx_bytes_total"),
		CxTxBytes:        sc.Counter("downstream_cx_tx_bytes_total"),
		cxLength:         sc.Histogram("downstream_cx_length_ms", stats.Milliseconds),
		rqTotal:          sc.Counter("downstream_rq_total"),
		rqHTTP1Total:     sc.Counter("downstream_rq_http1_total"),
		rqHTTP2Total:     sc.Counter("downstream_rq_http2_total"),
		rqCompleted:      sc.Counter("downstream_rq_completed"),
		rqActive:         sc.Gauge("downstream_rq_active"),
		codes:            sc.CodeCounters("downstream_rq"),
		rqTime:           sc.Histogram("downstream_rq_time", stats.Milliseconds),
		RqIdleTimeout:    sc.Counter("downstream_rq_idle_timeout"),
		cxUpgradesTotal:  sc.Counter("downstream_cx_upgrades_total"),
		cxUpgradesActive: sc.Gauge("downstream_cx_upgrades_active"),
		rqWsOnNonWsRoute: sc.Counter("downstream_rq_ws_on_non_ws_route"),
		RqTxReset:        sc.Counter("downstream_rq_tx_reset"),
		CxProtocolError:  sc.Counter("downstream_cx_protocol_error"),
		rqUnanswered:     sc.Counter("downstream_rq_unanswered"),
		noRoute:          sc.Counter("no_route"),
		noCluster:        sc.Counter("no_cluster"),
		directResponse:   sc.Counter("rq_direct_response"),

		rqTooManyPrematureResets: sc.Counter("downstream_rq_too_many_premature_resets"),
		cxIdleTimeout:            sc.Counter("downstream_cx_idle_timeout"),
	}
}
