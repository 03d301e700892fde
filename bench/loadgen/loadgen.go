// Package loadgen is the harness's load generator: open-loop at a fixed
// rate (latency measured from when each request was due, so a stalled
// proxy is charged for the requests it delayed: coordinated omission
// corrected) or closed-loop (as fast as the connections allow, for maximum
// throughput), over a fixed number of connections.
//
// It is written here rather than taken from vegeta or ghz because one
// generator must drive HTTP/1.1, h2c, gRPC unary and streaming and raw TCP
// with the same scheduler and the same accounting, so that the figures of
// different protocols compare.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Client is one connection's worth of load: Do sends one request and
// waits for its whole response. A Client is used by one goroutine.
type Client interface {
	Do(ctx context.Context) error
	Close() error
}

// Dialer opens one Client (one connection to the target).
type Dialer func(ctx context.Context) (Client, error)

// ErrStatus marks a response that arrived but was not a success (non-2xx
// HTTP status, non-OK gRPC status, short TCP echo): a dropped request.
var ErrStatus = errors.New("unsuccessful response")

// Config is one run.
type Config struct {
	// Rate is requests per second; 0 means closed loop.
	Rate float64
	// Conns is the number of connections, each with one request in flight.
	Conns int
	// Duration of the measured part.
	Duration time.Duration
	// Warmup requests per connection before measuring (connections open,
	// pools fill); not counted.
	Warmup int
	Dial   Dialer
	// Started, when set, is called once warm-up is over, right before the
	// measured part begins (to read the cost counters of the processes
	// under test).
	Started func()
}

// Result is what a run measured.
type Result struct {
	Requests  int           `json:"requests"`
	Errors    int           `json:"errors"`     // transport errors
	BadStatus int           `json:"bad_status"` // non-2xx / non-OK
	FirstErr  string        `json:"first_error,omitempty"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	// Throughput is successful requests per second.
	Throughput float64 `json:"throughput_rps"`
	// Latencies of successful requests, sorted.
	Latencies []time.Duration `json:"-"`
}

// Percentile returns the q-quantile (0..1) of the successful requests'
// latency, nearest-rank.
func (r *Result) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.Latencies))+0.5) - 1
	i = max(0, min(i, len(r.Latencies)-1))
	return r.Latencies[i]
}

type workerOut struct {
	lat       []time.Duration
	errs, bad int
	firstErr  error
}

// Run opens cfg.Conns connections, warms them, then sends load for
// cfg.Duration. It fails only when connections cannot be opened; request
// failures are counted in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Conns <= 0 {
		return nil, fmt.Errorf("loadgen: %d connections", cfg.Conns)
	}
	clients := make([]Client, 0, cfg.Conns)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := 0; i < cfg.Conns; i++ {
		c, err := cfg.Dial(ctx)
		if err != nil {
			return nil, fmt.Errorf("loadgen: open connection %d: %w", i, err)
		}
		clients = append(clients, c)
	}
	// Warm up every connection; a failure here is a failure of the run.
	for i, c := range clients {
		for j := 0; j < cfg.Warmup; j++ {
			if err := c.Do(ctx); err != nil {
				return nil, fmt.Errorf("loadgen: warm-up on connection %d: %w", i, err)
			}
		}
	}

	if cfg.Started != nil {
		cfg.Started()
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration+30*time.Second)
	defer cancel()
	start := time.Now()
	end := start.Add(cfg.Duration)
	outs := make([]workerOut, len(clients))
	var wg sync.WaitGroup

	var ticks chan time.Time
	if cfg.Rate > 0 {
		n := int(cfg.Rate*cfg.Duration.Seconds()) + 1
		ticks = make(chan time.Time, n)
		go schedule(runCtx, ticks, start, end, cfg.Rate)
	}
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &outs[i]
			o.lat = make([]time.Duration, 0, 1024)
			record := func(due time.Time, err error) {
				switch {
				case err == nil:
					o.lat = append(o.lat, time.Since(due))
					return
				case errors.Is(err, ErrStatus):
					o.bad++
				default:
					o.errs++
				}
				if o.firstErr == nil {
					o.firstErr = err
				}
			}
			if ticks != nil {
				for due := range ticks {
					record(due, c.Do(runCtx))
				}
				return
			}
			for time.Now().Before(end) && runCtx.Err() == nil {
				due := time.Now()
				record(due, c.Do(runCtx))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := &Result{Elapsed: elapsed}
	for _, o := range outs {
		res.Latencies = append(res.Latencies, o.lat...)
		res.Errors += o.errs
		res.BadStatus += o.bad
		if o.firstErr != nil && res.FirstErr == "" {
			res.FirstErr = o.firstErr.Error()
		}
	}
	slices.Sort(res.Latencies)
	res.Requests = len(res.Latencies) + res.Errors + res.BadStatus
	// Throughput over the scheduled window: the tail that drains after it
	// is load the window produced.
	res.Throughput = float64(len(res.Latencies)) / max(cfg.Duration, elapsed).Seconds()
	if cfg.Rate == 0 {
		res.Throughput = float64(len(res.Latencies)) / elapsed.Seconds()
	}
	return res, runCtx.Err()
}

// schedule puts the due time of every request on ticks, at rate per
// second from start until end, then closes it. Due times are computed,
// not measured, so a late scheduler wake-up does not shift them: the
// requests it releases late are charged their wait.
func schedule(ctx context.Context, ticks chan<- time.Time, start, end time.Time, rate float64) {
	defer close(ticks)
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			return
		}
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		ticks <- due
	}
}

// Summary is the part of a Result that is kept: counts, throughput and
// latency quantiles in milliseconds.
type Summary struct {
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	BadStatus  int     `json:"bad_status"`
	FirstErr   string  `json:"first_error,omitempty"`
	Throughput float64 `json:"throughput_rps"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	P999       float64 `json:"p999_ms"`
	Max        float64 `json:"max_ms"`
	// Curve holds the latency (ms) at each of CurveQuantiles, for plots.
	Curve []float64 `json:"curve_ms,omitempty"`
}

// CurveQuantiles are the quantiles a Summary's Curve samples: 1 - 10^-k
// in steps of a quarter decade, from the median to 99.99 %.
var CurveQuantiles = func() []float64 {
	var qs []float64
	for k := 0.30103; k <= 4.0001; k += 0.25 {
		qs = append(qs, 1-math.Pow(10, -k))
	}
	return qs
}()

// Summarize reduces the Result to its Summary.
func (r *Result) Summarize() Summary {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	s := Summary{
		Requests: r.Requests, Errors: r.Errors, BadStatus: r.BadStatus, FirstErr: r.FirstErr,
		Throughput: r.Throughput,
		P50:        ms(r.Percentile(0.50)), P90: ms(r.Percentile(0.90)),
		P99: ms(r.Percentile(0.99)), P999: ms(r.Percentile(0.999)),
	}
	if n := len(r.Latencies); n > 0 {
		s.Max = ms(r.Latencies[n-1])
	}
	for _, q := range CurveQuantiles {
		s.Curve = append(s.Curve, ms(r.Percentile(q)))
	}
	return s
}
