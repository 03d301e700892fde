package proxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

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

// outlierHost is one endpoint's outlier-detection state.
type outlierHost struct {
	consec5xx atomic.Uint32
	// ejectedUntil is when the ejection ends, in Unix nanoseconds; 0
	// while the endpoint is in.
	ejectedUntil atomic.Int64
	// ejections is the ejection-time multiplier.
	ejections atomic.Uint32
}

// ejected reports whether picking should pass the endpoint over.
func (h *outlierHost) ejected() bool { return h.ejectedUntil.Load() != 0 }

// outlierStats are a cluster's cluster.<name>.outlier_detection.* stats,
// created when a snapshot first gives the cluster outlier detection.
type outlierStats struct {
	active                            *stats.Gauge
	total, enforcedTotal, enforced5xx *stats.Counter
	detected5xx, overflow, legacy5xx  *stats.Counter
}

// outlier returns the cluster's outlier-detection stats, creating
// them on first use (when a snapshot is applied, not per request).
func (c *clusterStats) outlier() *outlierStats {
	if o := c.od.Load(); o != nil {
		return o
	}
	o := &outlierStats{}
	if sc := c.scope; sc != nil {
		o = &outlierStats{
			active:        sc.Gauge("outlier_detection.ejections_active"),
			total:         sc.Counter("outlier_detection.ejections_total"),
			enforcedTotal: sc.Counter("outlier_detection.ejections_enforced_total"),
			enforced5xx:   sc.Counter("outlier_detection.ejections_enforced_consecutive_5xx"),
			detected5xx:   sc.Counter("outlier_detection.ejections_detected_consecutive_5xx"),
			overflow:      sc.Counter("outlier_detection.ejections_overflow"),
			legacy5xx:     sc.Counter("outlier_detection.ejections_consecutive_5xx"),
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
func (v *clusterView) outlierOn() bool {
	return v.c.Outlier != nil && v.c.Outlier.Consecutive5xx > 0 && v.override == nil && !v.origDst && v.od != nil
}

// outcome feeds the result of one attempt on ep to outlier detection.
func (v *clusterView) outcome(ep *endpointRT, failed bool) {
	if ep == nil || !v.outlierOn() {
		return
	}
	h := &ep.stats.outlier
	if !failed {
		if h.consec5xx.Load() != 0 {
			h.consec5xx.Store(0)
		}
		return
	}
	if h.consec5xx.Add(1) != v.c.Outlier.Consecutive5xx {
		return
	}
	h.consec5xx.Store(0)
	v.eject(ep, time.Now())
}

// eject takes ep out of the cluster's rotation, within the cluster's
// ejection bounds.
func (v *clusterView) eject(ep *endpointRT, now time.Time) {
	od, st, h := v.c.Outlier, v.od, &ep.stats.outlier
	if h.ejected() {
		return
	}
	st.detected5xx.Inc()
	// Reserve a place among the ejected: at most MaxEjectionPercent of
	// the endpoints, but always one.
	n := int64(len(v.eps))
	for {
		cur := v.up.ejected.Load()
		if cur > 0 && (cur+1)*100 > int64(od.MaxEjectionPercent)*n {
			st.overflow.Inc()
			return
		}
		if v.up.ejected.CompareAndSwap(cur, cur+1) {
			break
		}
	}
	// Envoy's deprecated totals count ejections within bounds, enforced
	// or not.
	st.total.Inc()
	st.legacy5xx.Inc()
	if e := od.EnforcingConsecutive5xx; e < 100 && uint32(rand.IntN(100)) >= e {
		v.up.ejected.Add(-1)
		return
	}
	m := h.ejections.Load() + 1
	d := min(od.BaseEjectionTime*time.Duration(m), max(maxEjectionTime, od.BaseEjectionTime))
	if !h.ejectedUntil.CompareAndSwap(0, now.Add(d).UnixNano()) {
		v.up.ejected.Add(-1) // another attempt ejected it meanwhile
		return
	}
	h.ejections.Add(1)
	st.active.Inc()
	st.enforcedTotal.Inc()
	st.enforced5xx.Inc()
	v.up.refreshMembership()
	v.up.log.Info("outlier detection ejected an endpoint", "cluster", v.c.Name, "endpoint", ep.addr,
		"consecutive_5xx", od.Consecutive5xx, "for", d)
}

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
		if tr.perTryTimeout || context.Cause(ctx) == errRouteTimeout {
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

// outlierLoop returns ejected endpoints when their time is up and decays
// the ejection multipliers, every cluster at its own interval, until the
// proxy quits.
func (p *Proxy) outlierLoop() {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case now := <-t.C:
			t.Reset(p.sweepOutliers(now))
		}
	}
}

// Bounds on the sweep period: the shortest cluster interval, clamped.
const (
	minOutlierSweep = 50 * time.Millisecond
	maxOutlierSweep = time.Second
)

// sweepOutliers runs one sweep over the current snapshot's clusters whose
// interval has come, and returns how long to wait for the next one.
func (p *Proxy) sweepOutliers(now time.Time) time.Duration {
	next := maxOutlierSweep
	rs := p.state.Load()
	if rs == nil {
		return next
	}
	for _, v := range rs.views {
		if !v.outlierOn() {
			if v.up.ejected.Load() != 0 {
				v.returnAll() // outlier detection was taken off the cluster
			}
			continue
		}
		iv := max(v.c.Outlier.Interval, minOutlierSweep)
		next = min(next, iv)
		u := v.up
		if now.Before(u.nextSweep) {
			continue
		}
		u.nextSweep = now.Add(iv)
		v.sweep(now)
	}
	return next
}

// sweep returns the view's endpoints whose ejection is over, and any
// ejected endpoint that has left the cluster; the others that are in and
// were ejected before have their multiplier decay by one.
func (v *clusterView) sweep(now time.Time) {
	in := make(map[*endpointStats]bool, len(v.eps))
	for _, e := range v.eps {
		in[e.stats] = true
	}
	hosts := v.up.hosts()
	for s, addr := range hosts {
		h := &s.outlier
		until := h.ejectedUntil.Load()
		switch {
		case until != 0 && (now.UnixNano() >= until || !in[s]):
			v.up.unEject(s, until, addr)
		case until == 0:
			if m := h.ejections.Load(); m > 0 {
				h.ejections.CompareAndSwap(m, m-1)
			}
		}
	}
}

// returnAll ends every ejection of the view's upstream.
func (v *clusterView) returnAll() {
	hosts := v.up.hosts()
	for s, addr := range hosts {
		if until := s.outlier.ejectedUntil.Load(); until != 0 {
			v.up.unEject(s, until, addr)
		}
	}
}

// hosts copies the upstream's endpoint counters, keyed back to their
// addresses, for a sweep to walk without the lock.
func (u *upstream) hosts() map[*endpointStats]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[*endpointStats]string, len(u.endpoints))
	for addr, s := range u.endpoints {
		out[s] = addr
	}
	return out
}

// unEject returns an endpoint ejected until until, unless another
// sweep or a new ejection got there first.
func (u *upstream) unEject(s *endpointStats, until int64, addr string) {
	h := &s.outlier
	if !h.ejectedUntil.CompareAndSwap(until, 0) {
		return
	}
	h.consec5xx.Store(0)
	u.ejected.Add(-1)
	if o := u.stats.od.Load(); o != nil {
		o.active.Dec()
	}
	u.refreshMembership()
	u.log.Info("outlier detection returned an endpoint", "cluster", u.name, "endpoint", addr)
}

// retireOutliers takes an upstream that a configuration change replaced
// out of the cluster's ejections_active gauge: its successor starts with
// every endpoint in, as Envoy's rebuilt cluster does.
func (u *upstream) retireOutliers() {
	if n := u.ejected.Swap(0); n != 0 {
		if o := u.stats.od.Load(); o != nil {
			o.active.Sub(n)
		}
	}
}
