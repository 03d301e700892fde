package metricshistory

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Counts are the raw sums of one group's traffic over a span: what a Stat
// is computed from. Unlike a Stat's rates and quantiles they add up
// across stores, so that replicas that each hold part of the mesh's
// traffic answer for the whole of it (see Merge).
type Counts struct {
	Requests uint64            `json:"requests"`
	Errors   uint64            `json:"errors"`
	Codes    map[string]uint64 `json:"codes,omitempty"`
	// Buckets counts latency samples per bucket of Buckets and +Inf (not
	// cumulative); nil without samples.
	Buckets []uint64 `json:"buckets,omitempty"`
}

// add sums o into c.
func (c *Counts) add(o Counts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	for code, n := range o.Codes {
		if c.Codes == nil {
			c.Codes = map[string]uint64{}
		}
		c.Codes[code] += n
	}
	if len(o.Buckets) > 0 {
		if c.Buckets == nil {
			c.Buckets = make([]uint64, numBuckets)
		}
		for i := 0; i < numBuckets && i < len(o.Buckets); i++ {
			c.Buckets[i] += o.Buckets[i]
		}
	}
}

// stat computes the group's rates over seconds and quantiles.
func (c *Counts) stat(l Labels, seconds float64) Stat {
	st := Stat{Labels: l, RPS: float64(c.Requests) / seconds, P50: math.NaN(), P90: math.NaN(), P99: math.NaN()}
	if c.Requests > 0 {
		st.ErrorRatio = float64(c.Errors) / float64(c.Requests)
	}
	if len(c.Codes) > 0 {
		st.ErrorsByCode = make(map[string]float64, len(c.Codes))
		for code, n := range c.Codes {
			st.ErrorsByCode[code] = float64(n) / seconds
		}
	}
	if len(c.Buckets) > 0 {
		var h [numBuckets]uint64
		copy(h[:], c.Buckets)
		st.P50, st.P90, st.P99 = quantile(0.5, &h), quantile(0.9, &h), quantile(0.99, &h)
	}
	return st
}

// GroupCounts is one group's counts.
type GroupCounts struct {
	Labels Labels `json:"labels"`
	Counts
}

// Partial is one store's answer to a Query as counts.
type Partial struct {
	// Seconds is the time the counts cover: the window rounded up to
	// whole slots of the store's resolution.
	Seconds float64       `json:"seconds"`
	Groups  []GroupCounts `json:"groups"`
}

// PointCounts is one time of a series' counts.
type PointCounts struct {
	Time time.Time `json:"time"`
	Counts
}

// SeriesCounts is one group's points as counts.
type SeriesCounts struct {
	Labels Labels        `json:"labels"`
	Points []PointCounts `json:"points"`
}

// RangePartial is one store's answer to a RangeQuery as counts.
type RangePartial struct {
	// StepSeconds is the time each point covers: the step rounded up to
	// whole slots.
	StepSeconds float64        `json:"stepSeconds"`
	Series      []SeriesCounts `json:"series"`
}

// Merge sums the answers of several stores to one Query, group by group,
// and computes the stats of the sums: rates of the summed counts and
// quantiles of the summed histograms. Every part must cover the same
// time (stores of the same resolution, asked for the same window and
// time).
func Merge(parts []*Partial) ([]Stat, error) {
	var seconds float64
	groups := map[Labels]*Counts{}
	for _, p := range parts {
		if p == nil {
			continue
		}
		if seconds == 0 {
			seconds = p.Seconds
		} else if p.Seconds != seconds {
			return nil, fmt.Errorf("merge counts over %gs with counts over %gs: the histories' resolutions differ", p.Seconds, seconds)
		}
		for _, g := range p.Groups {
			c := groups[g.Labels]
			if c == nil {
				c = &Counts{}
				groups[g.Labels] = c
			}
			c.add(g.Counts)
		}
	}
	out := make([]Stat, 0, len(groups))
	if seconds <= 0 {
		return out, nil
	}
	for l, c := range groups {
		out = append(out, c.stat(l, seconds))
	}
	sortStats(out)
	return out, nil
}

// MergeRange sums the answers of several stores to one RangeQuery, group
// by group and time by time (a time one store has and another has not,
// as when their retentions differ, counts what the stores that have it
// hold), and computes the points' stats as Merge does.
func MergeRange(parts []*RangePartial) ([]Series, error) {
	var step float64
	var times []time.Time
	seen := map[int64]bool{}
	groups := map[Labels]map[int64]*Counts{}
	for _, p := range parts {
		if p == nil {
			continue
		}
		if step == 0 {
			step = p.StepSeconds
		} else if p.StepSeconds != step {
			return nil, fmt.Errorf("merge points of %gs with points of %gs: the histories' resolutions differ", p.StepSeconds, step)
		}
		for _, s := range p.Series {
			byTime := groups[s.Labels]
			if byTime == nil {
				byTime = map[int64]*Counts{}
				groups[s.Labels] = byTime
			}
			for _, pt := range s.Points {
				k := pt.Time.UnixNano()
				if !seen[k] {
					seen[k] = true
					times = append(times, pt.Time)
				}
				c := byTime[k]
				if c == nil {
					c = &Counts{}
					byTime[k] = c
				}
				c.add(pt.Counts)
			}
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	out := make([]Series, 0, len(groups))
	for l, byTime := range groups {
		sr := Series{Labels: l, Points: make([]Point, len(times))}
		for i, t := range times {
			c := byTime[t.UnixNano()]
			if c == nil {
				c = &Counts{}
			}
			sr.Points[i] = Point{Time: t, Stat: c.stat(l, step)}
		}
		out = append(out, sr)
	}
	sort.Slice(out, func(i, j int) bool { return lessLabels(out[i].Labels, out[j].Labels) })
	return out, nil
}

func sortStrings(s []string) { sort.Strings(s) }
