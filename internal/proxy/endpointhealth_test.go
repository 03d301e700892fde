package proxy

import (
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
)

// EndpointHealth reports what /clusters shows: an endpoint ejected by
// outlier detection, labelled with the virtual node its cluster reaches.
func TestEndpointHealthReportsEjection(t *testing.T) {
	t.Parallel()
	var badFails, goodFails atomic.Bool
	badFails.Store(true)
	bad := failingUpstream(t, "bad", &badFails)
	good := failingUpstream(t, "good", &goodFails)
	p := startProxy(t, Config{})
	cl := withOutlier(xCluster("cds_svc", bad.Addr(), good.Addr()), 3, 50*time.Millisecond, time.Minute, 50)
	cl.Metadata = meta("mesh", "demo", "virtualNode", "svc")
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))}, cl).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0) + "/"
	c := testClient()
	for range 6 {
		get(t, c, base, "svc", nil)
	}
	got := map[string]map[string]string{}
	fams := p.EndpointHealth()
	if len(fams) != 1 || fams[0].GetName() != EndpointHealthMetric {
		t.Fatalf("families %v", fams)
	}
	for _, m := range fams[0].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		got[l["address"]] = l
	}
	if l := got[bad.Addr()]; l["ejected"] != "true" || l["destination_workload"] != "svc" || l["destination_mesh"] != "demo" || l["health_check"] != "none" {
		t.Errorf("bad endpoint: %v, want ejected, of demo/svc, no health check", l)
	}
	if l := got[good.Addr()]; l["ejected"] != "false" || l["eds_healthy"] != "true" {
		t.Errorf("good endpoint: %v", l)
	}
}
