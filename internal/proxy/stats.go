package proxy

import (
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/meshlens/meshlens/internal/stats"
)

// The proxy's stats follow Envoy's names and meanings (docs/stats.md,
// "Stats the proxy emits"). Handles are resolved when a snapshot is
// applied; the data path only updates them. With Config.DisableStats
// every handle is nil, which the stats package treats as a no-op, so the
// cost of the stats is a measurable difference.

// serverStats are the process-wide server.* and control_plane.* stats.
type serverStats struct {
	live, state, uptime, concurrency  *stats.Gauge
	memAllocated, memHeapSize         *stats.Gauge
	totalConnections, cpConnected     *stats.Gauge
	version                           *stats.TextReadout
	accessLogDropped, accessLogWrites *stats.Gauge
}

func newServerStats(s *stats.Store) *serverStats {
	sc := s.Scope("server.")
	cp := s.Scope("control_plane.")
	al := s.Scope("access_log.")
	return &serverStats{
		live:             sc.Gauge("live"),
		state:            sc.Gauge("state"),
		uptime:           sc.Gauge("uptime"),
		concurrency:      sc.Gauge("concurrency"),
		memAllocated:     sc.Gauge("memory_allocated"),
		memHeapSize:      sc.Gauge("memory_heap_size"),
		totalConnections: sc.Gauge("total_connections"),
		version:          sc.TextReadout("version"),
		cpConnected:      cp.Gauge("connected_state"),
		accessLogDropped: al.Gauge("dropped"),
		accessLogWrites:  al.Gauge("written"),
	}
}

// memSamples are the runtime metrics behind server.memory_*.
var memSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/total:bytes"},
}

// refreshServerStats brings the sampled server gauges up to date; it runs
// before every flush and every admin stats output.
func (p *Proxy) refreshServerStats() {
	ss := p.srvStats
	st := p.serverState()
	live := int64(0)
	if st == 0 { // adminv3.ServerInfo_LIVE
		live = 1
	}
	ss.live.Set(live)
	ss.state.Set(int64(st))
	ss.uptime.Set(int64(time.Since(p.started) / time.Second))
	ss.concurrency.Set(int64(runtime.GOMAXPROCS(0)))
	samples := make([]metrics.Sample, len(memSamples))
	copy(samples, memSamples)
	metrics.Read(samples)
	if v := samples[0].Value; v.Kind() == metrics.KindUint64 {
		ss.memAllocated.Set(int64(v.Uint64()))
	}
	if v := samples[1].Value; v.Kind() == metrics.KindUint64 {
		ss.memHeapSize.Set(int64(v.Uint64()))
	}
	ss.totalConnections.Set(p.openConns.Load())
	cp := int64(0)
	if p.cpConnected.Load() {
		cp = 1
	}
	ss.cpConnected.Set(cp)
	var dropped, written uint64
	if rs := p.state.Load(); rs != nil {
		for _, w := range rs.logWriters {
			dropped += w.Dropped()
			written += w.Written()
		}
	}
	ss.accessLogDropped.Set(int64(dropped))
	ss.accessLogWrites.Set(int64(written))
}

// hcmStats are an HTTP connection manager's http.<stat_prefix>.* stats,
// the router's included (no_route, no_cluster, rq_direct_response).
type hcmStats struct {
	cxTotal, cxHTTP1Total, cxHTTP2Total, cxDestroy *stats.Counter
	cxActive, cxHTTP1Active, cxHTTP2Active         *stats.Gauge
	cxRxBytes, cxTxBytes                           *stats.Counter
	cxLength                                       *stats.Histogram

	rqTotal, rqHTTP1Total, rqHTTP2Total, rqCompleted *stats.Counter
	rqActive                                         *stats.Gauge
	codes                                            *stats.CodeCounters // classes only
	rqTime                                           *stats.Histogram
	rqIdleTimeout, rqTxReset, cxProtocolError        *stats.Counter
	rqUnanswered                                     *stats.Counter // meshlens's own: see ensureAnswered
	noRoute, noCluster, directResponse               *stats.Counter
	cxUpgradesTotal, rqWsOnNonWsRoute                *stats.Counter
	cxUpgradesActive                                 *stats.Gauge
	rqTooManyPrematureResets                         *stats.Counter
}

func newHCMStats(sc *stats.Scope) *hcmStats {
	if sc == nil {
		return &hcmStats{}
	}
	return &hcmStats{
		cxTotal:          sc.Counter("downstream_cx_total"),
		cxHTTP1Total:     sc.Counter("downstream_cx_http1_total"),
		cxHTTP2Total:     sc.Counter("downstream_cx_http2_total"),
		cxDestroy:        sc.Counter("downstream_cx_destroy"),
		cxActive:         sc.Gauge("downstream_cx_active"),
		cxHTTP1Active:    sc.Gauge("downstream_cx_http1_active"),
		cxHTTP2Active:    sc.Gauge("downstream_cx_http2_active"),
		cxRxBytes:        sc.Counter("downstream_cx_rx_bytes_total"),
		cxTxBytes:        sc.Counter("downstream_cx_tx_bytes_total"),
		cxLength:         sc.Histogram("downstream_cx_length_ms", stats.Milliseconds),
		rqTotal:          sc.Counter("downstream_rq_total"),
		rqHTTP1Total:     sc.Counter("downstream_rq_http1_total"),
		rqHTTP2Total:     sc.Counter("downstream_rq_http2_total"),
		rqCompleted:      sc.Counter("downstream_rq_completed"),
		rqActive:         sc.Gauge("downstream_rq_active"),
		codes:            sc.CodeCounters("downstream_rq"),
		rqTime:           sc.Histogram("downstream_rq_time", stats.Milliseconds),
		rqIdleTimeout:    sc.Counter("downstream_rq_idle_timeout"),
		cxUpgradesTotal:  sc.Counter("downstream_cx_upgrades_total"),
		cxUpgradesActive: sc.Gauge("downstream_cx_upgrades_active"),
		rqWsOnNonWsRoute: sc.Counter("downstream_rq_ws_on_non_ws_route"),
		rqTxReset:        sc.Counter("downstream_rq_tx_reset"),
		cxProtocolError:  sc.Counter("downstream_cx_protocol_error"),
		rqUnanswered:     sc.Counter("downstream_rq_unanswered"),
		noRoute:          sc.Counter("no_route"),
		noCluster:        sc.Counter("no_cluster"),
		directResponse:   sc.Counter("rq_direct_response"),

		rqTooManyPrematureResets: sc.Counter("downstream_rq_too_many_premature_resets"),
	}
}

// codecStats are the codecs' process-wide stats, Envoy's http2.*.
type codecStats struct {
	h2HeaderOverflow *stats.Counter
}

func newCodecStats(s *stats.Store) *codecStats {
	if s == nil {
		return &codecStats{}
	}
	sc := s.Scope("http2.")
	return &codecStats{h2HeaderOverflow: sc.Counter("header_overflow")}
}

// scopes is the set of stats scopes one snapshot acquired, released when
// the next snapshot has acquired its own.
type scopes []*stats.Scope

func (s *scopes) acquire(store *stats.Store, prefix string) *stats.Scope {
	if store == nil {
		return nil
	}
	sc := store.Scope(prefix)
	*s = append(*s, sc)
	return sc
}

func (s scopes) release() {
	for _, sc := range s {
		sc.Release()
	}
}
