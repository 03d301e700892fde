// Package sampling decides which requests are traced.
//
// # Head sampling
//
// A Sampler is compiled once from a Config: a default percentage (the
// proxy's: its virtual node's or gateway's, else its mesh's, resolved by
// whoever builds the Config) and per-route overrides, as App Mesh and
// Envoy sample at random per listener and route. The request path asks
// Sample(ctx, route): one map lookup by the route name and one compare,
// no lock and no allocation.
//
// An incoming decision wins: sampled=1 (or B3 debug) samples, sampled=0
// does not, whatever the percentage; only a request with no decision is
// decided here. The decision is a function of the trace id (its low 64
// bits against a threshold, as OpenTelemetry's TraceIdRatioBased
// sampler does), so every hop that decides the same trace at the same
// rate agrees, and a fresh trace (whose id is random) is sampled at the
// configured rate.
//
// # X-Ray local sampling rules
//
// With Config.Rules (an X-Ray sampling rules file, ParseManifest and
// NewRules), the rules decide a request with no incoming decision in
// place of the percentages: the first rule matching its Host header,
// method and path (else the default rule) samples up to fixed_target
// requests a second from a lock-free reservoir, then its rate of the
// rest by trace id. SampleHTTP passes the request's host, method and
// path; matching allocates nothing.
//
// # Tail rule for the built-in store
//
// Tail says which finished requests are kept although head sampling
// dropped them: those that failed (HTTP 5xx, or a gRPC status that is a
// server error) or took at least a latency threshold. Nothing is
// recorded for an unsampled request while it runs: the proxy keeps the
// request's ids and start time (tracing.Request, a plain value), and at
// the end asks Tail.Keep with the status and duration it has anyway; only
// then, and only for a kept request, is a span made. Such a span is
// marked tail-kept and goes to the built-in store only: collectors see
// the head-sampled traffic they were promised.
package sampling

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

// Config is what to sample.
type Config struct {
	// Percent is the head-sampling percentage for requests with no
	// incoming decision, 0 to 100.
	Percent float64
	// Routes overrides Percent for requests matched by a named route.
	Routes map[string]float64
	// Tail is the rule for the built-in store.
	Tail Tail
	// Rules, when set (X-Ray local sampling rules), decide requests with
	// no incoming decision in place of Percent and Routes.
	Rules *Rules
}

// Tail keeps finished requests that head sampling dropped.
type Tail struct {
	// Errors keeps failed requests: HTTP status 5xx, or a gRPC status
	// that is a server error (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
	// INTERNAL, UNAVAILABLE, DATA_LOSS).
	Errors bool
	// Latency keeps requests that took at least this long; 0 is off.
	Latency time.Duration
}

// Keep reports whether a finished request is kept: statusCode is the
// HTTP status (0 when none was sent, which counts as an error: the
// request failed before a response), grpcStatus the gRPC status or -1
// when the request was not gRPC or had none, d its duration.
func (t Tail) Keep(statusCode, grpcStatus int, d time.Duration) bool {
	if t.Latency > 0 && d >= t.Latency {
		return true
	}
	if !t.Errors {
		return false
	}
	return statusCode >= 500 || statusCode == 0 || GRPCServerError(grpcStatus)
}

// GRPCServerError reports whether a gRPC status is a server-side error,
// as OpenTelemetry's RPC conventions list them for server spans.
func GRPCServerError(code int) bool {
	switch code {
	case 2, 4, 12, 13, 14, 15:
		return true
	}
	return false
}

// rate is a percentage compiled to a threshold on 64 bits.
type rate struct {
	all, none bool
	threshold uint64
}

func compileRate(field string, p float64) (rate, error) {
	switch {
	case math.IsNaN(p) || p < 0 || p > 100:
		return rate{}, fmt.Errorf("%s: %v is not a percentage between 0 and 100", field, p)
	case p == 0:
		return rate{none: true}, nil
	case p == 100:
		return rate{all: true}, nil
	}
	return rate{threshold: uint64(p / 100 * math.Exp2(64))}, nil
}

func (r rate) sample(x uint64) bool {
	if r.all {
		return true
	}
	if r.none {
		return false
	}
	return x < r.threshold
}

// Sampler is a compiled Config; it is read-only and safe for concurrent
// use. The zero Sampler (and a nil one) samples nothing that arrives
// undecided.
type Sampler struct {
	def    rate
	routes map[string]rate
	tail   Tail
	rules  *Rules
}

// New compiles cfg; errors name the field.
func New(cfg Config) (*Sampler, error) {
	def, err := compileRate("sampling.percent", cfg.Percent)
	if err != nil {
		return nil, err
	}
	if cfg.Tail.Latency < 0 {
		return nil, fmt.Errorf("sampling.tail.latency: %v is negative", cfg.Tail.Latency)
	}
	s := &Sampler{def: def, tail: cfg.Tail, rules: cfg.Rules}
	if len(cfg.Routes) > 0 {
		s.routes = make(map[string]rate, len(cfg.Routes))
		for name, p := range cfg.Routes {
			r, err := compileRate(fmt.Sprintf("sampling.routes[%q]", name), p)
			if err != nil {
				return nil, err
			}
			s.routes[name] = r
		}
	}
	return s, nil
}

// Sample is the head decision for a request whose context is ctx (its
// trace id already set: the caller's, or a fresh random one) and that
// matched the named route ("" for none).
func (s *Sampler) Sample(ctx propagation.SpanContext, route string) bool {
	return s.SampleHTTP(ctx, route, "", "", "", time.Time{})
}

// SampleHTTP is Sample for an HTTP request to host with method and path
// at now, which sampling rules (Config.Rules) match.
func (s *Sampler) SampleHTTP(ctx propagation.SpanContext, route, host, method, path string, now time.Time) bool {
	if ctx.Debug {
		return true
	}
	if ctx.SampledKnown {
		return ctx.Sampled
	}
	if s == nil {
		return false
	}
	if s.rules != nil {
		return s.rules.Sample(binary.BigEndian.Uint64(ctx.TraceID[8:]), host, method, path, now)
	}
	r := s.def
	if s.routes != nil {
		if rr, ok := s.routes[route]; ok {
			r = rr
		}
	}
	return r.sample(binary.BigEndian.Uint64(ctx.TraceID[8:]))
}

// Tail is the sampler's tail rule; the zero Tail keeps nothing.
func (s *Sampler) Tail() Tail {
	if s == nil {
		return Tail{}
	}
	return s.tail
}
