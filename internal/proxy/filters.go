package proxy

import (
	"slices"

	"github.com/meshlens/meshlens/internal/proxy/filters/ratelimit"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// carryBuckets lets each rate limit of next keep the tokens of prev's
// identical one (ratelimit's BucketKey: same stats prefix and bucket), so
// that an xDS update that does not touch a rate limit (an endpoint, a
// cluster) does not refill it. A key held by more than one configuration
// in either snapshot is not carried: which bucket is whose is unknown.
func carryBuckets(prev, next *table.Snapshot) {
	if prev == nil {
		return
	}
	type keyed interface{ BucketKey() string }
	index := func(s *table.Snapshot) map[string][]keyed {
		m := map[string][]keyed{}
		add := func(c keyed) {
			if k := c.BucketKey(); k != "" {
				m[k] = append(m[k], c)
			}
		}
		for _, rl := range s.RateLimits {
			add(rl)
		}
		for _, l := range s.Listeners {
			for _, c := range append(slices.Clip(l.Chains), l.Default) {
				if c != nil && c.NetRateLimit != nil {
					add(c.NetRateLimit)
				}
			}
		}
		return m
	}
	old := index(prev)
	for k, cs := range index(next) {
		was := old[k]
		if len(cs) != 1 || len(was) != 1 {
			continue
		}
		switch c := cs[0].(type) {
		case *ratelimit.Config:
			c.ContinueFrom(was[0].(*ratelimit.Config))
		case *ratelimit.NetConfig:
			c.ContinueFrom(was[0].(*ratelimit.NetConfig))
		}
	}
}
