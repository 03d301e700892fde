package sampling

import (
	"sync"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

var timeZero time.Time

func mustRules(t *testing.T, m *Manifest) *Rules {
	t.Helper()
	rs, err := NewRules(m)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRulesFirstMatchWins(t *testing.T) {
	t.Parallel()
	rs := mustRules(t, &Manifest{Version: 2, Rules: []Rule{
		{Host: "*", HTTPMethod: "GET", URLPath: "/health*", Rate: 0},
		{Host: "api.*", HTTPMethod: "*", URLPath: "*", Rate: 1},
		{Host: "*", HTTPMethod: "*", URLPath: "/api/*", Rate: 1},
	}, Default: Rule{Rate: 0}})
	for _, tc := range []struct {
		host, method, path string
		want               bool
	}{
		{"api.local", "GET", "/healthz", false}, // first rule, before the host rule
		{"api.local", "POST", "/healthz", true},
		{"web", "PUT", "/api/x", true},
		{"web", "GET", "/", false}, // default
	} {
		if got := rs.Sample(0, tc.host, tc.method, tc.path, timeZero); got != tc.want {
			t.Errorf("%s %s %s: %v, want %v", tc.host, tc.method, tc.path, got, tc.want)
		}
	}
}

func TestRulesReservoirPerSecond(t *testing.T) {
	t.Parallel()
	rs := mustRules(t, &Manifest{Version: 2, Rules: []Rule{{Host: "*", HTTPMethod: "*", URLPath: "/r", FixedTarget: 3, Rate: 0}}, Default: Rule{FixedTarget: 1, Rate: 0}})
	sec := time.Unix(1700000000, 0)
	count := func(now time.Time, path string, n int) int {
		k := 0
		for range n {
			if rs.Sample(^uint64(0), "h", "GET", path, now) {
				k++
			}
		}
		return k
	}
	if got := count(sec, "/r", 10); got != 3 {
		t.Errorf("first second: %d sampled, want 3", got)
	}
	if got := count(sec.Add(500*time.Millisecond), "/r", 10); got != 0 {
		t.Errorf("same second: %d sampled, want 0", got)
	}
	if got := count(sec.Add(time.Second), "/r", 10); got != 3 {
		t.Errorf("next second: %d sampled, want 3", got)
	}
	// Each rule has its own reservoir.
	if got := count(sec, "/other", 10); got != 1 {
		t.Errorf("default: %d sampled, want 1", got)
	}
}

func TestRulesReservoirConcurrent(t *testing.T) {
	t.Parallel()
	rs := mustRules(t, &Manifest{Version: 2, Default: Rule{FixedTarget: 50, Rate: 0}})
	now := time.Unix(1700000000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := 0
			for range 100 {
				if rs.Sample(^uint64(0), "h", "GET", "/", now) {
					k++
				}
			}
			mu.Lock()
			total += k
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total != 50 {
		t.Errorf("%d sampled by the reservoir, want 50", total)
	}
}

func TestRulesRate(t *testing.T) {
	t.Parallel()
	rs := mustRules(t, &Manifest{Version: 2, Default: Rule{Rate: 0.25}})
	// The rate is a threshold on the trace id's low 64 bits.
	for _, tc := range []struct {
		x    uint64
		want bool
	}{{0, true}, {1 << 61, true}, {1<<62 - 1, true}, {1 << 62, false}, {^uint64(0), false}} {
		if got := rs.Sample(tc.x, "h", "GET", "/", timeZero); got != tc.want {
			t.Errorf("x=%#x: %v, want %v", tc.x, got, tc.want)
		}
	}
}

// An incoming decision wins over the rules; rules replace the percentages.
func TestSamplerRules(t *testing.T) {
	t.Parallel()
	rs := mustRules(t, &Manifest{Version: 2, Rules: []Rule{{Host: "*", HTTPMethod: "*", URLPath: "/yes", Rate: 1}}, Default: Rule{Rate: 0}})
	s, err := New(Config{Percent: 100, Routes: map[string]float64{"r": 100}, Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	var ctx propagation.SpanContext
	if s.SampleHTTP(ctx, "r", "h", "GET", "/no", timeZero) {
		t.Error("the default rule's rate 0 did not win over the route's 100 %")
	}
	if !s.SampleHTTP(ctx, "r", "h", "GET", "/yes", timeZero) {
		t.Error("the matching rule's rate 1 did not sample")
	}
	ctx.SampledKnown, ctx.Sampled = true, true
	if !s.SampleHTTP(ctx, "r", "h", "GET", "/no", timeZero) {
		t.Error("an incoming sampled decision lost to the rules")
	}
}

func TestRulesSampleDoesNotAllocate(t *testing.T) {
	rs := mustRules(t, &Manifest{Version: 2, Rules: []Rule{{Host: "*.local", HTTPMethod: "GET", URLPath: "/api/*", FixedTarget: 1, Rate: 0.1}}, Default: Rule{FixedTarget: 1, Rate: 0.01}})
	now := time.Unix(1700000000, 0)
	if n := testing.AllocsPerRun(100, func() { rs.Sample(^uint64(0), "a.local", "GET", "/api/x", now) }); n != 0 {
		t.Errorf("%v allocations per decision, want 0", n)
	}
}
