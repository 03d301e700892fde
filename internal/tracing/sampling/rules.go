package sampling

import (
	"sync/atomic"
	"time"
)

// Rules is a compiled Manifest: safe for concurrent use, and deciding
// without a lock or an allocation.
type Rules struct {
	rules []compiledRule
	def   compiledRule
}

type compiledRule struct {
	Rule
	rate rate
	// reservoir packs the unix second (high 32 bits) and the requests
	// sampled by the reservoir in it (low 32 bits), so that one
	// compare-and-swap moves both.
	reservoir *atomic.Uint64
}

// NewRules compiles m.
func NewRules(m *Manifest) (*Rules, error) {
	c := func(field string, r Rule) (compiledRule, error) {
		rt, err := compileRate(field+".rate", r.Rate*100)
		return compiledRule{Rule: r, rate: rt, reservoir: new(atomic.Uint64)}, err
	}
	def, err := c("default", m.Default)
	if err != nil {
		return nil, err
	}
	rs := &Rules{def: def}
	for _, r := range m.Rules {
		cr, err := c("rules", r)
		if err != nil {
			return nil, err
		}
		rs.rules = append(rs.rules, cr)
	}
	return rs, nil
}

// match is the first rule matching the request, else the default.
func (rs *Rules) match(host, method, path string) *compiledRule {
	for i := range rs.rules {
		r := &rs.rules[i]
		if wildcardMatch(r.Host, host) && wildcardMatch(r.HTTPMethod, method) && wildcardMatch(r.URLPath, path) {
			return r
		}
	}
	return &rs.def
}

// Sample decides a request with no incoming decision: the matching
// rule's reservoir samples up to fixed_target requests in now's second,
// then its rate decides by the trace id's low 64 bits (x).
func (rs *Rules) Sample(x uint64, host, method, path string, now time.Time) bool {
	r := rs.match(host, method, path)
	if r.take(now) {
		return true
	}
	return r.rate.sample(x)
}

// take takes one request from the reservoir of now's second.
func (r *compiledRule) take(now time.Time) bool {
	if r.FixedTarget == 0 {
		return false
	}
	sec := uint64(uint32(now.Unix()))
	for {
		old := r.reservoir.Load()
		var nv uint64
		switch {
		case old>>32 != sec:
			nv = sec<<32 | 1
		case old&0xffffffff >= uint64(r.FixedTarget):
			return false
		default:
			nv = old + 1
		}
		if r.reservoir.CompareAndSwap(old, nv) {
			return true
		}
	}
}
