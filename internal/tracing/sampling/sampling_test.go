package sampling

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

func ctxWithLow(x uint64) propagation.SpanContext {
	var sc propagation.SpanContext
	binary.BigEndian.PutUint64(sc.TraceID[8:], x)
	sc.TraceID[0] = 1
	return sc
}

func TestSampleHonoursIncomingDecision(t *testing.T) {
	t.Parallel()
	none, _ := New(Config{Percent: 0})
	all, _ := New(Config{Percent: 100})
	tests := []struct {
		name string
		s    *Sampler
		ctx  propagation.SpanContext
		want bool
	}{
		{"sampled=1 beats 0%", none, propagation.SpanContext{SampledKnown: true, Sampled: true}, true},
		{"debug beats 0%", none, propagation.SpanContext{Debug: true}, true},
		{"sampled=0 beats 100%", all, propagation.SpanContext{SampledKnown: true}, false},
		{"undecided at 100%", all, ctxWithLow(^uint64(0)), true},
		{"undecided at 0%", none, ctxWithLow(0), false},
		{"nil sampler undecided", nil, ctxWithLow(0), false},
		{"nil sampler sampled=1", nil, propagation.SpanContext{SampledKnown: true, Sampled: true}, true},
	}
	for _, tt := range tests {
		if got := tt.s.Sample(tt.ctx, ""); got != tt.want {
			t.Errorf("%s: got %v", tt.name, got)
		}
	}
}

func TestSampleRateAndRoutes(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Percent: 10, Routes: map[string]float64{"checkout": 50, "health": 0}})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	counts := map[string]int{}
	for range n {
		ctx := ctxWithLow(r.Uint64())
		for _, route := range []string{"", "other", "checkout", "health"} {
			if s.Sample(ctx, route) {
				counts[route]++
			}
		}
	}
	check := func(route string, pct float64) {
		got := float64(counts[route]) / n * 100
		if got < pct-1.5 || got > pct+1.5 {
			t.Errorf("route %q sampled %.2f%%, want about %v%%", route, got, pct)
		}
	}
	check("", 10)
	check("other", 10)
	check("checkout", 50)
	check("health", 0)
	// The decision is a function of the trace id: hops agree.
	ctx := ctxWithLow(r.Uint64())
	first := s.Sample(ctx, "checkout")
	for range 10 {
		if s.Sample(ctx, "checkout") != first {
			t.Fatal("decision not stable for one trace id")
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Percent: 101}, "sampling.percent: 101 is not a percentage"},
		{Config{Percent: -1}, "sampling.percent: -1 is not"},
		{Config{Routes: map[string]float64{"r1": 200}}, `sampling.routes["r1"]: 200 is not`},
		{Config{Tail: Tail{Latency: -time.Second}}, "sampling.tail.latency: -1s is negative"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestTailKeep(t *testing.T) {
	t.Parallel()
	tail := Tail{Errors: true, Latency: 500 * time.Millisecond}
	tests := []struct {
		name       string
		t          Tail
		code, grpc int
		d          time.Duration
		want       bool
	}{
		{"ok fast", tail, 200, -1, time.Millisecond, false},
		{"404 fast", tail, 404, -1, time.Millisecond, false},
		{"503", tail, 503, -1, time.Millisecond, true},
		{"no response", tail, 0, -1, time.Millisecond, true},
		{"grpc unavailable", tail, 200, 14, time.Millisecond, true},
		{"grpc not found", tail, 200, 5, time.Millisecond, false},
		{"slow", tail, 200, -1, 500 * time.Millisecond, true},
		{"errors off", Tail{Latency: time.Second}, 503, -1, time.Millisecond, false},
		{"zero tail", Tail{}, 503, 13, time.Hour, false},
	}
	for _, tt := range tests {
		if got := tt.t.Keep(tt.code, tt.grpc, tt.d); got != tt.want {
			t.Errorf("%s: Keep = %v", tt.name, got)
		}
	}
}

func TestSampleAllocs(t *testing.T) {
	s, _ := New(Config{Percent: 1, Routes: map[string]float64{"a": 5}})
	ctx := ctxWithLow(12345)
	if n := testing.AllocsPerRun(100, func() { s.Sample(ctx, "a"); s.Sample(ctx, "b") }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
