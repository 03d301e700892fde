package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClient struct {
	calls *atomic.Int64
	stall time.Duration // the first call on the stalled client sleeps this long
	fail  error
}

func (f *fakeClient) Do(context.Context) error {
	if f.calls.Add(1) == 1 && f.stall > 0 {
		time.Sleep(f.stall)
	}
	return f.fail
}

func (f *fakeClient) Close() error { return nil }

// A stall on the only connection delays the requests due behind it; their
// latency is counted from when they were due, not from when they were sent.
func TestOpenLoopChargesStalls(t *testing.T) {
	var calls atomic.Int64
	res, err := Run(context.Background(), Config{
		Rate: 200, Conns: 1, Duration: 500 * time.Millisecond,
		Dial: func(context.Context) (Client, error) {
			return &fakeClient{calls: &calls, stall: 100 * time.Millisecond}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 95 || res.Requests > 101 {
		t.Errorf("%d requests at 200 rps for 0.5 s", res.Requests)
	}
	// About 20 requests were due during the 100 ms stall: at least the
	// p90 must show it, as a closed-loop measurement would not.
	if p := res.Percentile(0.9); p < 10*time.Millisecond {
		t.Errorf("p90 %v: the stall was not charged", p)
	}
}

func TestCountsFailures(t *testing.T) {
	var calls atomic.Int64
	res, err := Run(context.Background(), Config{
		Conns: 2, Duration: 50 * time.Millisecond,
		Dial: func(context.Context) (Client, error) {
			return &fakeClient{calls: &calls, fail: errors.Join(ErrStatus, errors.New("status 503"))}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.BadStatus == 0 || res.BadStatus != res.Requests || res.FirstErr == "" {
		t.Errorf("bad %d of %d requests, first error %q", res.BadStatus, res.Requests, res.FirstErr)
	}
	s := res.Summarize()
	if s.Throughput != 0 || s.P50 != 0 {
		t.Errorf("failed requests counted as successes: %+v", s)
	}
}

func TestPercentile(t *testing.T) {
	r := &Result{}
	for i := 1; i <= 1000; i++ {
		r.Latencies = append(r.Latencies, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.999, 999 * time.Millisecond}, {1, time.Second}} {
		if got := r.Percentile(c.q); got != c.want {
			t.Errorf("Percentile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if n := len(CurveQuantiles); n < 10 || CurveQuantiles[0] != 0.5 && (CurveQuantiles[0] < 0.49 || CurveQuantiles[0] > 0.51) {
		t.Errorf("curve quantiles %v", CurveQuantiles)
	}
}
