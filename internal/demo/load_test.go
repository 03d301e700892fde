package demo

import (
	"testing"
	"time"
)

func TestLoadSummary(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, tc := range []struct {
		name   string
		status []int           // 0: no answer
		took   []time.Duration // per request
		want   string
	}{
		{"nothing", nil, nil, "load, last 10s through the gateway: no requests completed"},
		{"all 200", []int{200, 200, 200, 200}, []time.Duration{3 * ms, 1 * ms, 2 * ms, 40 * ms},
			"load, last 10s through the gateway: 4 requests (0.4/s); by status: 200=4; errors: 0; latency p50 2ms p99 40ms"},
		{"statuses sorted, errors apart", []int{503, 200, 0, 200, 404}, []time.Duration{1500 * time.Microsecond, 850 * time.Microsecond, 5 * time.Second, 2 * ms, 12345 * time.Microsecond},
			"load, last 10s through the gateway: 5 requests (0.5/s); by status: 200=2 404=1 503=1; errors: 1; latency p50 1.5ms p99 12ms"},
		{"only errors", []int{0, 0}, []time.Duration{time.Second, time.Second},
			"load, last 10s through the gateway: 2 requests (0.2/s); by status: none; errors: 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w loadWindow
			for i, st := range tc.status {
				w.add(st, tc.took[i])
			}
			if got := w.summary(10 * time.Second); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		n, p int
		want time.Duration
	}{
		{100, 50, 50 * time.Millisecond},
		{100, 99, 99 * time.Millisecond},
		{1, 99, time.Millisecond},
		{1, 50, time.Millisecond},
		{3, 50, 2 * time.Millisecond},
	} {
		if got := percentile(d[:tc.n], tc.p); got != tc.want {
			t.Errorf("p%d of %d: %v, want %v", tc.p, tc.n, got, tc.want)
		}
	}
}
