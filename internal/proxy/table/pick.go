package table

import (
	"math/bits"
	"slices"
)

// maxSchedule bounds the weighted round-robin sequence of one cluster;
// larger weight sums are scaled down to it (a share keeps at least one
// slot), which changes a split by at most 1/maxSchedule.
const maxSchedule = 4096

// PickCluster chooses a cluster of the route by weight. rnd must be
// uniformly random (the caller owns the generator, so picking never
// locks). Zero-weight clusters are never chosen. It returns nil for a
// direct-response route, and for a hand-built route whose TotalWeight is
// not the sum of its weights.
func (r *Route) PickCluster(rnd uint32) *Cluster {
	return pickWeighted(r.Clusters, r.TotalWeight, rnd)
}

// PickCluster chooses a cluster of the TCP proxy by weight, as
// Route.PickCluster does.
func (t *TCPProxy) PickCluster(rnd uint32) *Cluster {
	return pickWeighted(t.Clusters, t.TotalWeight, rnd)
}

func pickWeighted(cs []WeightedCluster, total uint32, rnd uint32) *Cluster {
	switch {
	case len(cs) == 0 || total == 0:
		return nil
	case len(cs) == 1:
		return cs[0].Cluster
	}
	// Map rnd onto [0, total) by multiplication rather than modulo: no
	// division and no bias towards the first clusters.
	x := uint32((uint64(rnd) * uint64(total)) >> 32)
	for i := range cs {
		if x < cs[i].Weight {
			return cs[i].Cluster
		}
		x -= cs[i].Weight
	}
	return cs[len(cs)-1].Cluster // unreachable while total is the sum
}

// Pick chooses an endpoint for a new request or connection by the
// cluster's policy, among the healthy endpoints of the best priority (or,
// in panic, all of them). rnd must be uniformly random; round robin
// ignores it. ok is false when the cluster has nothing to offer (no
// endpoints, NotFound, ORIGINAL_DST, or no healthy endpoint with the
// panic threshold at 0): the runtime then answers 503 "no healthy
// upstream" as Envoy does.
func (c *Cluster) Pick(rnd uint64) (Endpoint, bool) {
	i, ok := c.PickIndex(rnd, nil, nil)
	if !ok {
		return Endpoint{}, false
	}
	return c.Endpoints[i], true
}

// PickIndex is Pick for a runtime that keeps per-endpoint state; it
// returns an index into Endpoints. skip (may be nil) vetoes endpoints the
// runtime will not use now: outlier-ejected ones, or one a retry already
// tried. load (may be nil) reports an endpoint's active requests, which
// the least-request policy compares between two random candidates.
//
// When skip vetoes every scheduled endpoint, PickIndex looks at all
// endpoints regardless of health, and when it vetoes those too it ignores
// skip: Envoy likewise routes to ejected hosts in panic rather than fail.
// Outlier ejections do not count towards PanicThreshold (only xDS health
// does); the runtime's MaxEjectionPercent bounds them instead.
//
// It does not allocate; skip and load are only called, never kept.
func (c *Cluster) PickIndex(rnd uint64, skip func(i int) bool, load func(i int) int64) (int, bool) {
	lb := c.schedule()
	s := lb.sched
	n := len(s)
	if n == 0 {
		return -1, false
	}
	var start int
	switch c.LB {
	case LBRandom:
		start = reduce64(rnd, n)
	case LBLeastRequest:
		a, b := s[reduce32(uint32(rnd), n)], s[reduce32(uint32(rnd>>32), n)]
		okA := skip == nil || !skip(a)
		okB := skip == nil || !skip(b)
		switch {
		case okA && okB:
			if load != nil && load(b) < load(a) {
				return b, true
			}
			return a, true
		case okA:
			return a, true
		case okB:
			return b, true
		}
		start = reduce64(rnd, n)
	default:
		start = int((c.rr.Add(1) - 1) % uint64(n))
	}
	if skip == nil {
		return s[start], true
	}
	for k := range n {
		if i := s[(start+k)%n]; !skip(i) {
			return i, true
		}
	}
	all := lb.all
	for k := range all {
		if i := all[(start+k)%len(all)]; !skip(i) {
			return i, true
		}
	}
	return s[start], true
}

// reduce32 and reduce64 map a uniform number onto [0, n) by
// multiplication: no division, no bias towards small values.
func reduce32(x uint32, n int) int { return int((uint64(x) * uint64(n)) >> 32) }

func reduce64(x uint64, n int) int {
	hi, _ := bits.Mul64(x, uint64(n))
	return int(hi)
}

// schedule returns the cluster's pick schedule, building it on first use
// for a cluster that Compile did not prepare. Concurrent first uses build
// the same schedule; one wins.
func (c *Cluster) schedule() *lbSchedule {
	if lb := c.lb.Load(); lb != nil {
		return lb
	}
	c.lb.CompareAndSwap(nil, c.buildSchedule())
	return c.lb.Load()
}

// prepare is Compile's step: the schedule plus the exported Healthy and
// Panic that describe it.
func (c *Cluster) prepare() {
	lb := c.buildSchedule()
	c.lb.Store(lb)
	c.Healthy, c.Panic = nil, lb.panic
	for i := range c.Endpoints {
		if c.Endpoints[i].Healthy {
			c.Healthy = append(c.Healthy, i)
		}
	}
}

// buildSchedule computes the weighted sequences Pick walks. Priorities:
// the best (lowest) priority with a healthy endpoint takes all traffic;
// Envoy's gradual spill-over by overprovisioning factor is not modelled.
func (c *Cluster) buildSchedule() *lbSchedule {
	lb := &lbSchedule{}
	n := len(c.Endpoints)
	if n == 0 {
		return lb
	}
	every := make([]int, n)
	var healthy []int
	for i := range every {
		every[i] = i
		if c.Endpoints[i].Healthy {
			healthy = append(healthy, i)
		}
	}
	lb.all = c.weighted(every)
	if float64(len(healthy))*100 < c.PanicThreshold*float64(n) {
		lb.panic = true
		lb.sched = lb.all
		return lb
	}
	if len(healthy) == 0 {
		return lb
	}
	best := c.Endpoints[healthy[0]].Priority
	for _, i := range healthy {
		best = min(best, c.Endpoints[i].Priority)
	}
	var cand []int
	for _, i := range healthy {
		if c.Endpoints[i].Priority == best {
			cand = append(cand, i)
		}
	}
	lb.sched = c.weighted(cand)
	return lb
}

// weighted turns endpoint indexes into a round-robin sequence in which
// each appears in proportion to its weight, spread out (smooth weighted
// round robin) so that consecutive picks do not hammer one endpoint.
func (c *Cluster) weighted(idx []int) []int {
	if len(idx) == 0 {
		return nil
	}
	ws := make([]uint64, len(idx))
	equal := true
	var g, total uint64
	for k, i := range idx {
		w := uint64(max(c.Endpoints[i].Weight, 1))
		ws[k] = w
		equal = equal && w == ws[0]
		g = gcd(g, w)
		total += w
	}
	if equal {
		return slices.Clone(idx)
	}
	total = 0
	for k := range ws {
		ws[k] /= g
		total += ws[k]
	}
	if total > maxSchedule {
		scaled := uint64(0)
		for k := range ws {
			ws[k] = max(1, ws[k]*maxSchedule/total)
			scaled += ws[k]
		}
		total = scaled
	}
	seq := make([]int, 0, total)
	if total*uint64(len(ws)) > 1<<22 {
		// Thousands of endpoints with uneven weights: smoothing would cost
		// too much compile time; repeat each endpoint in place instead.
		for k, w := range ws {
			for range w {
				seq = append(seq, idx[k])
			}
		}
		return seq
	}
	cur := make([]int64, len(ws))
	for range total {
		best := 0
		for k := range ws {
			cur[k] += int64(ws[k])
			if cur[k] > cur[best] {
				best = k
			}
		}
		cur[best] -= int64(total)
		seq = append(seq, idx[best])
	}
	return seq
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
