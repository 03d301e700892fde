package cluster

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/stats"
)

// Outlier detection, as Envoy's consecutive_5xx detector (App Mesh's only
// outlier signal): an endpoint whose last Consecutive5xx attempts all
// failed (a 5xx response, a gRPC status that maps to one, a connect
// failure, a reset or a timeout) is ejected at once for BaseEjectionTime
// times the number of times it has been ejected (capped at
// maxEjectionTime), unless that would eject more than MaxEjectionPercent
// of the cluster's endpoints (one ejection is always allowed, as Envoy).
// An ejected endpoint is not picked while others are left; it returns at
// the first sweep (every Interval) after its time is up, and its
// multiplier decays by one for each interval it then stays in.
//
// The state lives on the endpoint's counters, which belong to the
// cluster's upstream and so survive configuration updates while the
// endpoint stays, as a host's does in Envoy. The request path only does
// atomic operations: a counter on each outcome, a compare-and-swap to
// eject.

// maxEjectionTime bounds an ejection however often the endpoint has been
// ejected: Envoy's max_ejection_time default.
const maxEjectionTime = 300 * time.Second

// OutlierHost is one endpoint's outlier-detection state.
type OutlierHost struct {
	consec5xx atomic.Uint32
	// EjectedUntil is when the ejection ends, in Unix nanoseconds; 0
	// while the endpoint is in.
	EjectedUntil atomic.Int64
	// Ejections is the ejection-time multiplier.
	Ejections atomic.Uint32
}

// Ejected reports whether picking should pass the endpoint over.
func (h *OutlierHost) Ejected() bool { return h.EjectedUntil.Load() != 0 }

// OutlierStats are a cluster's cluster.<name>.outlier_detection.* stats,
// created when a snapshot first gives the cluster outlier detection.
type OutlierStats struct {
	Active                            *stats.Gauge
	Total, EnforcedTotal, Enforced5xx *stats.Counter
	Detected5xx, Overflow, Legacy5xx  *stats.Counter
}

// Outlier returns the cluster's outlier-detection stats, creating
// them on first use (when a snapshot is applied, not per request).
func (c *Stats) Outlier() *OutlierStats {
	if o := c.od.Load(); o != nil {
		return o
	}
	o := &OutlierStats{}
	if sc := c.scope; sc != nil {
		o = &OutlierStats{
			Active:        sc.Gauge("outlier_detection.ejections_active"),
			Total:         sc.Counter("outlier_detection.ejections_total"),
			EnforcedTotal: sc.Counter("outlier_detection.ejections_enforced_total"),
			Enforced5xx:   sc.Counter("outlier_detection.ejections_enforced_consecutive_5xx"),
			Detected5xx:   sc.Counter("outlier_detection.ejections_detected_consecutive_5xx"),
			Overflow:      sc.Counter("outlier_detection.ejections_overflow"),
			Legacy5xx:     sc.Counter("outlier_detection.ejections_consecutive_5xx"),
		}
	}
	if c.od.CompareAndSwap(nil, o) {
		return o
	}
	return c.od.Load()
}

// outlierOn reports whether the view's endpoints are subject to outlier
// detection: the cluster asks for it and its endpoints are real (not the
// local-app override, not ORIGINAL_DST).
func (v *View) outlierOn() bool {
	return v.Cluster.Outlier != nil && v.Cluster.Outlier.Consecutive5xx > 0 && v.override == nil && !v.OrigDst && v.OutlierStats != nil
}

// Outcome feeds the result of one attempt on ep to outlier detection.
func (v *View) Outcome(ep *Endpoint, failed bool) {
	if ep == nil || !v.outlierOn() {
		return
	}
	h := &ep.Stats.Outlier
	if !failed {
		if h.consec5xx.Load() != 0 {
			h.consec5xx.Store(0)
		}
		return
	}
	if h.consec5xx.Add(1) != v.Cluster.Outlier.Consecutive5xx {
		return
	}
	h.consec5xx.Store(0)
	v.Eject(ep, time.Now())
}

// Eject takes ep out of the cluster's rotation, within the cluster's
// ejection bounds.
func (v *View) Eject(ep *Endpoint, now time.Time) {
	od, st, h := v.Cluster.Outlier, v.OutlierStats, &ep.Stats.Outlier
	if h.Ejected() {
		return
	}
	st.Detected5xx.Inc()
	// Reserve a place among the ejected: at most MaxEjectionPercent of
	// the endpoints, but always one.
	n := int64(len(v.Hosts))
	for {
		cur := v.Up.Ejected.Load()
		if cur > 0 && (cur+1)*100 > int64(od.MaxEjectionPercent)*n {
			st.Overflow.Inc()
			return
		}
		if v.Up.Ejected.CompareAndSwap(cur, cur+1) {
			break
		}
	}
	// Envoy's deprecated totals count ejections within bounds, enforced
	// or not.
	st.Total.Inc()
	st.Legacy5xx.Inc()
	if e := od.EnforcingConsecutive5xx; e < 100 && uint32(rand.IntN(100)) >= e {
		v.Up.Ejected.Add(-1)
		return
	}
	m := h.Ejections.Load() + 1
	d := min(od.BaseEjectionTime*time.Duration(m), max(maxEjectionTime, od.BaseEjectionTime))
	if !h.EjectedUntil.CompareAndSwap(0, now.Add(d).UnixNano()) {
		v.Up.Ejected.Add(-1) // another attempt ejected it meanwhile
		return
	}
	h.Ejections.Add(1)
	st.Active.Inc()
	st.EnforcedTotal.Inc()
	st.Enforced5xx.Inc()
	v.Up.refreshMembership()
	v.Up.log.Info("outlier detection ejected an endpoint", "cluster", v.Cluster.Name, "endpoint", ep.Addr,
		"consecutive_5xx", od.Consecutive5xx, "for", d)
}

// Bounds on the sweep period: the shortest cluster interval, clamped.
const (
	minOutlierSweep = 50 * time.Millisecond
	MaxOutlierSweep = time.Second
)

// SweepOutliers runs one sweep over a snapshot's clusters whose
// interval has come, and returns how long to wait for the next one. One
// goroutine (the proxy's) calls it.
func SweepOutliers(now time.Time, views map[*table.Cluster]*View) time.Duration {
	next := MaxOutlierSweep
	for _, v := range views {
		if !v.outlierOn() {
			if v.Up.Ejected.Load() != 0 {
				v.returnAll() // outlier detection was taken off the cluster
			}
			continue
		}
		iv := max(v.Cluster.Outlier.Interval, minOutlierSweep)
		next = min(next, iv)
		u := v.Up
		if now.Before(u.nextSweep) {
			continue
		}
		u.nextSweep = now.Add(iv)
		v.Sweep(now)
	}
	return next
}

// Sweep returns the view's endpoints whose ejection is over, and any
// ejected endpoint that has left the cluster; the others that are in and
// were ejected before have their multiplier decay by one.
func (v *View) Sweep(now time.Time) {
	in := make(map[*EndpointStats]bool, len(v.Hosts))
	for _, e := range v.Hosts {
		in[e.Stats] = true
	}
	hosts := v.Up.hosts()
	for s, addr := range hosts {
		h := &s.Outlier
		until := h.EjectedUntil.Load()
		switch {
		case until != 0 && (now.UnixNano() >= until || !in[s]):
			v.Up.unEject(s, until, addr)
		case until == 0:
			if m := h.Ejections.Load(); m > 0 {
				h.Ejections.CompareAndSwap(m, m-1)
			}
		}
	}
}

// returnAll ends every ejection of the view's upstream.
func (v *View) returnAll() {
	hosts := v.Up.hosts()
	for s, addr := range hosts {
		if until := s.Outlier.EjectedUntil.Load(); until != 0 {
			v.Up.unEject(s, until, addr)
		}
	}
}

// hosts copies the upstream's endpoint counters, keyed back to their
// addresses, for a sweep to walk without the lock.
func (u *Upstream) hosts() map[*EndpointStats]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[*EndpointStats]string, len(u.endpoints))
	for addr, s := range u.endpoints {
		out[s] = addr
	}
	return out
}

// unEject returns an endpoint ejected until until, unless another
// sweep or a new ejection got there first.
func (u *Upstream) unEject(s *EndpointStats, until int64, addr string) {
	h := &s.Outlier
	if !h.EjectedUntil.CompareAndSwap(until, 0) {
		return
	}
	h.consec5xx.Store(0)
	u.Ejected.Add(-1)
	if o := u.Stats.od.Load(); o != nil {
		o.Active.Dec()
	}
	u.refreshMembership()
	u.log.Info("outlier detection returned an endpoint", "cluster", u.Name, "endpoint", addr)
}

// RetireOutliers takes an upstream that a configuration change replaced
// out of the cluster's ejections_active gauge: its successor starts with
// every endpoint in, as Envoy's rebuilt cluster does.
func (u *Upstream) RetireOutliers() {
	if n := u.Ejected.Swap(0); n != 0 {
		if o := u.Stats.od.Load(); o != nil {
			o.Active.Sub(n)
		}
	}
}
