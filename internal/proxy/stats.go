package proxy

import (
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2server"
	"github.com/meshlens/meshlens/internal/proxy/idlewait"
	"github.com/meshlens/meshlens/internal/stats"
)

// The proxy's stats follow Envoy's names and meanings (docs/stats.md,
// "Stats the proxy emits"). Handles are resolved when a snapshot is
// applied; the data path only updates them. With Config.DisableStats
// every handle is nil, which the stats package treats as a no-op, so the
// cost of the stats is a measurable difference.

// serverStats are the process-wide server.* and control_plane.* stats.
type serverStats struct {
	live, state, uptime, concurrency *stats.Gauge
	memAllocated, memHeapSize        *stats.Gauge
	totalConnections, cpConnected    *stats.Gauge
	// parkedConnections: downstream connections waiting for a request
	// with no goroutine of their own (idlewait).
	parkedConnections                 *stats.Gauge
	version                           *stats.TextReadout
	accessLogDropped, accessLogWrites *stats.Gauge
	// daysUntilCertExpiring is Envoy's
	// server.days_until_first_cert_expiring, over the SDS certificates;
	// created with the first certificate (a proxy without TLS has none).
	daysUntilCertExpiring atomic.Pointer[stats.Gauge]
	scope                 *stats.Scope
}

func newServerStats(s *stats.Store) *serverStats {
	sc := s.Scope("server.")
	cp := s.Scope("control_plane.")
	al := s.Scope("access_log.")
	return &serverStats{
		live:              sc.Gauge("live"),
		state:             sc.Gauge("state"),
		uptime:            sc.Gauge("uptime"),
		concurrency:       sc.Gauge("concurrency"),
		memAllocated:      sc.Gauge("memory_allocated"),
		memHeapSize:       sc.Gauge("memory_heap_size"),
		totalConnections:  sc.Gauge("total_connections"),
		parkedConnections: sc.Gauge("parked_connections"),
		version:           sc.TextReadout("version"),
		cpConnected:       cp.Gauge("connected_state"),
		accessLogDropped:  al.Gauge("dropped"),
		accessLogWrites:   al.Gauge("written"),
		scope:             sc,
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
	if st == stateLive {
		live = 1
	}
	ss.live.Set(live)
	ss.state.Set(int64(st))
	ss.uptime.Set(int64(time.Since(p.started) / time.Second))
	p.recordCertExpiry()
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
	ss.parkedConnections.Set(int64(idlewait.Parked()))
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

// codecStats are the codecs' process-wide stats, Envoy's http2.*.
type codecStats struct {
	h2HeaderOverflow *stats.Counter
	h2               *h2server.Stats
}

func newCodecStats(s *stats.Store) *codecStats {
	if s == nil {
		return &codecStats{h2: h2server.NewStats(nil)}
	}
	h2 := h2server.NewStats(s.Scope("http2."))
	return &codecStats{h2HeaderOverflow: h2.HeaderOverflow, h2: h2}
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

// recordCertExpiry sets server.days_until_first_cert_expiring from the
// certificates received over SDS (whole days, as Envoy counts; 0 once one
// has expired; without certificates the gauge is left at 0), and, as
// Envoy does per TLS context, each listener's and cluster's
// ssl.certificate.<secret>.expiration_unix_time_seconds for every SDS
// certificate or CA it uses that has been received.
func (p *Proxy) recordCertExpiry() {
	if rs := p.state.Load(); rs != nil && p.secrets != nil {
		for _, c := range rs.certs {
			if s := p.secrets.Ref(c.secret).Load(); s != nil && !s.NotAfter.IsZero() {
				c.scope.Gauge("ssl.certificate." + c.secret + ".expiration_unix_time_seconds").Set(s.NotAfter.Unix())
			}
		}
	}
	var first time.Time
	for _, s := range p.secrets.Secrets() {
		if s.Cert != nil && (first.IsZero() || s.NotAfter.Before(first)) {
			first = s.NotAfter
		}
	}
	if first.IsZero() {
		return
	}
	g := p.srvStats.daysUntilCertExpiring.Load()
	if g == nil {
		p.srvStats.daysUntilCertExpiring.CompareAndSwap(nil, p.srvStats.scope.Gauge("days_until_first_cert_expiring"))
		g = p.srvStats.daysUntilCertExpiring.Load()
	}
	g.Set(max(0, int64(time.Until(first)/(24*time.Hour))))
}
