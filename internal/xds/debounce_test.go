package xds

import (
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// TestUpdateAfterQuietIntervalIsAppliedAtOnce: an update that follows a
// quiet interval reaches data planes at once, without waiting for the
// debounce interval (an hour here).
func TestUpdateAfterQuietIntervalIsAppliedAtOnce(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: time.Hour})
	s.Update(decodeSnapshot(t, 1, twoMeshes), staticEndpoints{})
	c := dialADS(t, addr, "mesh/a/virtualNode/c")
	c.until(10*time.Second, "the configuration, long before the debounce interval", c.synced)
}

// TestBurstOfUpdatesIsAppliedTogether: the updates that follow an applied
// one within the debounce interval are applied together, in one rebuild,
// once the interval has passed.
func TestBurstOfUpdatesIsAppliedTogether(t *testing.T) {
	t.Parallel()
	m := &rebuildCounter{}
	s, addr := startServer(t, Options{Debounce: time.Second, Metrics: m})
	lookup := decodeSnapshot(t, 1, twoMeshes)
	s.Update(lookup, staticEndpoints{})
	c := dialADS(t, addr, "mesh/a/virtualNode/c")
	c.until(10*time.Second, "the first configuration", c.synced)
	c.settle()
	m.take()

	const cluster = "cds_egress_a_x_http_9080"
	var eps []Endpoint
	for i := range 5 {
		eps = append(eps, Endpoint{Address: "10.0.1." + string(rune('1'+i)), Port: 9080, Healthy: true})
		s.Update(lookup, staticEndpoints{"a/x": eps})
	}
	c.until(10*time.Second, "the burst's last endpoints", func() bool {
		cla := claOf(t, c.last[resource.EndpointType], cluster)
		return cla != nil && countEndpoints(cla) == len(eps)
	})
	c.settle()
	if got := m.take(); len(got) > 2 {
		t.Errorf("a burst of 5 updates cost %d rebuilds (%v), want at most 2 (the first at once, the rest together)", len(got), got)
	}
}
