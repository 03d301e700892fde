package sidecar

import (
	"testing"

	"github.com/meshlens/meshlens/internal/stats"
)

// The metrics service goes to the xDS address unless told otherwise, and
// "none" (or stats off) turns it off.
func TestMetricsServiceAddress(t *testing.T) {
	store, err := stats.NewStore(stats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag string
		mesh *stats.Store
		on   bool
	}{
		{"", store, true},
		{"metrics.internal:9000", store, true},
		{"none", store, false},
		{"", nil, false},
	} {
		sink, err := newMetricsService(Config{MetricsServiceAddr: tc.flag}, "cp:15010", nil, nil, tc.mesh, store, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.flag, err)
		}
		if (sink != nil) != tc.on {
			t.Errorf("%q (stats %v): sink %v, want on %v", tc.flag, tc.mesh != nil, sink != nil, tc.on)
		}
	}
	if _, err := newMetricsService(Config{MetricsServiceInterval: -1}, "cp:15010", nil, nil, store, store, nil); err == nil {
		t.Error("a negative interval was accepted")
	}
}
