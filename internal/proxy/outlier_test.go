package proxy

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/allocstest"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// withOutlier gives a cluster App Mesh's outlier detection: eject after
// n consecutive 5xx for base, at most pct percent of the endpoints.
func withOutlier(c *clusterv3.Cluster, n uint32, interval, base time.Duration, pct uint32) *clusterv3.Cluster {
	c.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx:          wrapperspb.UInt32(n),
		EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
		EnforcingSuccessRate:     wrapperspb.UInt32(0),
		Interval:                 durationpb.New(interval),
		BaseEjectionTime:         durationpb.New(base),
		MaxEjectionPercent:       wrapperspb.UInt32(pct),
	}
	return c
}

// failingUpstream answers 500 while fail is set, else its name.
func failingUpstream(t *testing.T, name string, fail *atomic.Bool) *upstreamServer {
	return startUpstream(t, name, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(name))
	})
}

func TestOutlierDetectionEjectsAndReturns(t *testing.T) {
	t.Parallel()
	var badFails, goodFails atomic.Bool
	badFails.Store(true)
	bad := failingUpstream(t, "bad", &badFails)
	good := failingUpstream(t, "good", &goodFails)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withOutlier(xCluster("cds_svc", bad.Addr(), good.Addr()), 3, 50*time.Millisecond, 1500*time.Millisecond, 50)).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0) + "/"
	c := testClient()
	view := p.state.Load().byName["cds_svc"]
	od := view.Up.Stats.Outlier()

	// Round robin alternates: the bad endpoint fails its third request on
	// the sixth, and is ejected then.
	var fails int
	for range 6 {
		if resp, _ := get(t, c, base, "svc", nil); resp.StatusCode == 500 {
			fails++
		}
	}
	if fails != 3 {
		t.Fatalf("%d failures before the ejection, want 3", fails)
	}
	if got := od.Active.Value(); got != 1 {
		t.Fatalf("ejections_active %d, want 1", got)
	}
	for name, c := range map[string]uint64{
		"ejections_enforced_total":           od.EnforcedTotal.Value(),
		"ejections_enforced_consecutive_5xx": od.Enforced5xx.Value(),
		"ejections_detected_consecutive_5xx": od.Detected5xx.Value(),
		"ejections_total":                    od.Total.Value(),
		"ejections_consecutive_5xx":          od.Legacy5xx.Value(),
		"ejections_overflow (want 0, not 1)": od.Overflow.Value() + 1,
	} {
		if c != 1 {
			t.Errorf("%s = %d, want 1", name, c)
		}
	}
	// While ejected, every request goes to the good endpoint.
	for i := range 10 {
		if resp, body := get(t, c, base, "svc", nil); resp.StatusCode != 200 || body != "good" {
			t.Fatalf("request %d while bad is ejected: %d %q", i, resp.StatusCode, body)
		}
	}
	// /clusters shows the ejection as Envoy does.
	resp, text := get(t, testClient(), "http://"+p.AdminAddr().String()+"/clusters", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(text, "cds_svc::"+bad.Addr()+"::health_flags::/failed_outlier_check\n") ||
		!strings.Contains(text, "cds_svc::"+good.Addr()+"::health_flags::healthy\n") {
		t.Errorf("/clusters does not show the ejection:\n%s", text)
	}

	// Repaired, the endpoint returns once its ejection time is up.
	badFails.Store(false)
	waitFor(t, "the ejected endpoint to return", func() bool { return od.Active.Value() == 0 })
	seen := map[string]int{}
	for range 4 {
		_, body := get(t, c, base, "svc", nil)
		seen[body]++
	}
	if seen["bad"] != 2 || seen["good"] != 2 {
		t.Errorf("after the return: %v, want both endpoints twice", seen)
	}
}

func TestOutlierDetectionMaxEjectionPercent(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	a, b := failingUpstream(t, "a", &fail), failingUpstream(t, "b", &fail)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withOutlier(xCluster("cds_svc", a.Addr(), b.Addr()), 2, time.Second, time.Minute, 10)).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0) + "/"
	c := testClient()
	// 10% of two endpoints is none, but one ejection is always allowed;
	// the second endpoint then takes everything and is not ejected.
	for range 10 {
		if resp, _ := get(t, c, base, "svc", nil); resp.StatusCode != 500 {
			t.Fatalf("status %d, want the upstream's 500", resp.StatusCode)
		}
	}
	od := p.state.Load().byName["cds_svc"].Up.Stats.Outlier()
	if od.Active.Value() != 1 || od.EnforcedTotal.Value() != 1 {
		t.Errorf("ejections_active %d, enforced %d; want 1, 1", od.Active.Value(), od.EnforcedTotal.Value())
	}
	if od.Overflow.Value() == 0 || od.Detected5xx.Value() != 1+od.Overflow.Value() {
		t.Errorf("overflow %d, detected %d: each later detection must overflow", od.Overflow.Value(), od.Detected5xx.Value())
	}
}

// Connect failures count as server errors, over HTTP and TCP alike.
func TestOutlierDetectionConnectFailures(t *testing.T) {
	t.Parallel()
	deadAddr := closedAddr(t)
	good := startUpstream(t, "good", nil)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withOutlier(xCluster("cds_svc", deadAddr, good.Addr()), 2, time.Second, time.Minute, 50)).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0) + "/"
	c := testClient()
	var failed int
	for range 14 {
		if resp, _ := get(t, c, base, "svc", nil); resp.StatusCode == 503 {
			failed++
		}
	}
	if failed != 2 {
		t.Errorf("%d connect failures answered 503, want 2 before the ejection", failed)
	}
	if od := p.state.Load().byName["cds_svc"].Up.Stats.Outlier(); od.Active.Value() != 1 {
		t.Errorf("ejections_active %d, want 1", od.Active.Value())
	}
}

// The ejection time grows with each ejection and the multiplier decays
// while the endpoint stays in; an endpoint that leaves the cluster while
// ejected leaves the count.
func TestOutlierSweep(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "x", nil)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withOutlier(xCluster("cds_svc", up.Addr(), "127.0.0.1:1"), 1, time.Hour, 10*time.Second, 100)).snap(t))
	v := p.state.Load().byName["cds_svc"]
	ep := v.Hosts[0]
	h := &ep.Stats.Outlier
	t0 := time.Now()
	v.Eject(ep, t0)
	if got := time.Duration(h.EjectedUntil.Load() - t0.UnixNano()); got != 10*time.Second {
		t.Fatalf("first ejection for %v, want 10s", got)
	}
	v.Sweep(t0.Add(9 * time.Second))
	if !h.Ejected() {
		t.Fatal("returned before its time")
	}
	v.Sweep(t0.Add(10 * time.Second))
	if h.Ejected() || v.Up.Ejected.Load() != 0 || v.OutlierStats.Active.Value() != 0 {
		t.Fatalf("not returned at its time: ejected %v, count %d, gauge %d", h.Ejected(), v.Up.Ejected.Load(), v.OutlierStats.Active.Value())
	}
	t1 := t0.Add(11 * time.Second)
	v.Eject(ep, t1)
	if got := time.Duration(h.EjectedUntil.Load() - t1.UnixNano()); got != 20*time.Second {
		t.Fatalf("second ejection for %v, want 20s", got)
	}
	v.Sweep(t1.Add(20 * time.Second))
	for range 2 {
		v.Sweep(t1.Add(21 * time.Second))
	}
	if m := h.Ejections.Load(); m != 0 {
		t.Errorf("multiplier %d after two sweeps in, want 0", m)
	}

	// Ejected, then removed from the cluster by a new snapshot.
	v.Eject(ep, t1)
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withOutlier(xCluster("cds_svc", "127.0.0.1:1"), 1, time.Hour, 10*time.Second, 100)).snap(t))
	v2 := p.state.Load().byName["cds_svc"]
	if v2.Up != v.Up {
		t.Fatal("the upstream was replaced; the test needs it kept")
	}
	v2.Sweep(t1)
	if h.Ejected() || v2.OutlierStats.Active.Value() != 0 {
		t.Errorf("an endpoint that left stays ejected")
	}
}

// The policies' request path (circuit-breaker admission and release, the
// pick past ejected and failing endpoints, the outlier verdict) allocates
// nothing.
func TestPolicyPathAllocatesNothing(t *testing.T) {
	up := startUpstream(t, "x", nil)
	p := startProxy(t, Config{})
	c := withOutlier(xCluster("cds_svc", up.Addr(), closedAddr(t), closedAddr(t)), 5, time.Hour, time.Minute, 50)
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withBreakers(c, 100, 100, 100, 3)).snap(t))
	v := p.state.Load().byName["cds_svc"]
	v.Hosts[1].Stats.Outlier.EjectedUntil.Store(time.Now().Add(time.Hour).UnixNano())
	v.Hosts[2].Stats.HC.Failed.Store(true)
	allocs := allocstest.Fewest(1000, func() {
		if !v.AdmitRequest(false) {
			t.Fatal("not admitted")
		}
		ep := v.Pick()
		if ep != v.Hosts[0] {
			t.Fatalf("picked %s, want the only usable endpoint", ep.Addr)
		}
		v.Outcome(ep, false)
		if v.AdmitRetry() {
			v.Up.RetryDone()
		}
		v.Up.AttemptDone(ep.Stats)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}

// Endpoints that left the cluster are forgotten once idle; those that stay
// keep their counters across the update.
func TestEndpointCountersPruned(t *testing.T) {
	t.Parallel()
	a, b := startUpstream(t, "a", nil), startUpstream(t, "b", nil)
	p := startProxy(t, Config{})
	vh := []*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))}
	mustApply(t, p, egressRoutes(vh, xCluster("cds_svc", a.Addr(), b.Addr())).snap(t))
	c := testClient()
	base := "http://" + addrOf(t, p, egressName, 0) + "/"
	for range 4 {
		get(t, c, base, "svc", nil)
	}
	c.CloseIdleConnections()
	up := p.state.Load().byName["cds_svc"].Up
	up.CloseIdle() // nothing in flight to b any more
	waitFor(t, "the upstream connections to close", func() bool {
		return up.Endpoint(b.Addr()).CxActive.Load() == 0
	})
	kept := up.Endpoint(a.Addr())
	mustApply(t, p, egressRoutes(vh, xCluster("cds_svc", a.Addr())).snap(t))
	if p.state.Load().byName["cds_svc"].Up != up {
		t.Fatal("the upstream was replaced; the test needs it kept")
	}
	_, hasB := up.KnownEndpoints(b.Addr())
	if hasB {
		t.Error("the counters of an idle endpoint that left the cluster are still kept")
	}
	if up.Endpoint(a.Addr()) != kept || kept.RqTotal.Load() != 2 {
		t.Errorf("the endpoint that stayed lost its counters (rq_total %d, want 2)", kept.RqTotal.Load())
	}
}
