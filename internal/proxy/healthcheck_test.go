package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/cluster"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// withHealthCheck gives a cluster an active health check every interval:
// HTTP GET of path when path is set, else TCP.
func withHealthCheck(c *clusterv3.Cluster, interval time.Duration, path string, healthy, unhealthy uint32) *clusterv3.Cluster {
	hc := &corev3.HealthCheck{
		Timeout:            durationpb.New(time.Second),
		Interval:           durationpb.New(interval),
		HealthyThreshold:   wrapperspb.UInt32(healthy),
		UnhealthyThreshold: wrapperspb.UInt32(unhealthy),
		HealthChecker:      &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}},
	}
	if path != "" {
		hc.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{Path: path}}
	}
	c.HealthChecks = []*corev3.HealthCheck{hc}
	return c
}

// healthApp answers /health with 200 while healthy, 503 otherwise, and
// anything else with its name; it counts the checks and what asked.
type healthApp struct {
	*upstreamServer
	healthy atomic.Bool
	checks  atomic.Int64
	agent   atomic.Value
}

func startHealthApp(t *testing.T, name string, healthy bool) *healthApp {
	a := &healthApp{}
	a.healthy.Store(healthy)
	a.upstreamServer = startUpstream(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			a.checks.Add(1)
			a.agent.Store(r.UserAgent() + " " + r.Host)
			if !a.healthy.Load() {
				w.WriteHeader(503)
			}
			return
		}
		_, _ = io.WriteString(w, name)
	})
	return a
}

// spread sends n requests and counts the answers by body.
func spread(t *testing.T, c *http.Client, url string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		resp, body := get(t, c, url, "svc", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d %q", resp.StatusCode, body)
		}
		seen[body]++
	}
	return seen
}

func TestHealthCheckHTTP(t *testing.T) {
	t.Parallel()
	a, b := startHealthApp(t, "a", true), startHealthApp(t, "b", false)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withHealthCheck(xCluster("cds_svc", a.Addr(), b.Addr()), 20*time.Millisecond, "/health", 2, 2)).snap(t))
	url := "http://" + addrOf(t, p, egressName, 0) + "/"
	c := testClient()
	up := p.state.Load().byName["cds_svc"].Up
	hs := up.Stats.Health()

	// The first check decides: a is in, b (503) stays out.
	waitFor(t, "the first checks", func() bool { return a.checks.Load() > 0 && b.checks.Load() > 0 && hs.Healthy.Value() == 1 })
	if seen := spread(t, c, url, 10); seen["a"] != 10 {
		t.Errorf("with b failing its check: %v, want everything on a", seen)
	}
	if got, _ := a.agent.Load().(string); got != "Envoy/HC cds_svc" {
		t.Errorf("check sent User-Agent and Host %q, want Envoy's: Envoy/HC cds_svc", got)
	}
	resp, text := get(t, testClient(), "http://"+p.AdminAddr().String()+"/clusters", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(text, "cds_svc::"+b.Addr()+"::health_flags::/failed_active_hc\n") ||
		!strings.Contains(text, "cds_svc::"+a.Addr()+"::health_flags::healthy\n") {
		t.Errorf("/clusters:\n%s", text)
	}
	if got := up.Stats.MembershipHealthy.Value(); got != 1 {
		t.Errorf("membership_healthy %d, want 1", got)
	}

	// Repaired, b needs two passing checks; then both take traffic.
	b.healthy.Store(true)
	waitFor(t, "b to pass its checks", func() bool { return hs.Healthy.Value() == 2 })
	if seen := spread(t, c, url, 10); seen["a"] != 5 || seen["b"] != 5 {
		t.Errorf("both healthy: %v, want 5 each", seen)
	}
	// a fails: out after two failed checks.
	a.healthy.Store(false)
	waitFor(t, "a to fail its checks", func() bool { return hs.Healthy.Value() == 1 && up.Stats.MembershipHealthy.Value() == 1 })
	if seen := spread(t, c, url, 10); seen["b"] != 10 {
		t.Errorf("with a failing: %v, want everything on b", seen)
	}
	// Both failing: every endpoint is used rather than none (panic).
	b.healthy.Store(false)
	waitFor(t, "both to fail", func() bool { return hs.Healthy.Value() == 0 })
	if seen := spread(t, c, url, 10); seen["a"]+seen["b"] != 10 {
		t.Errorf("all failing: %v", seen)
	}
	if hs.Attempt.Value() == 0 || hs.Success.Value() == 0 || hs.Failure.Value() == 0 || hs.Attempt.Value() < hs.Success.Value()+hs.Failure.Value() {
		t.Errorf("health_check attempt %d success %d failure %d", hs.Attempt.Value(), hs.Success.Value(), hs.Failure.Value())
	}

	// Taking the check off the cluster puts every endpoint back.
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		xCluster("cds_svc", a.Addr(), b.Addr())).snap(t))
	for _, e := range p.state.Load().byName["cds_svc"].Hosts {
		if e.Stats.HC.Failed.Load() {
			t.Errorf("%s still marked failing after the check was removed", e.Addr)
		}
	}
	// A check already on the wire when the check was removed may still
	// arrive; after that, none starts.
	checks := a.checks.Load()
	waitFor(t, "checks in flight to arrive", func() bool {
		time.Sleep(50 * time.Millisecond)
		n := a.checks.Load()
		settled := n == checks
		checks = n
		return settled
	})
	time.Sleep(200 * time.Millisecond)
	if a.checks.Load() != checks {
		t.Error("checks go on after the check was removed")
	}
}

func TestHealthCheckTCP(t *testing.T) {
	t.Parallel()
	deadAddr := closedAddr(t)
	good := startUpstream(t, "good", nil)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withHealthCheck(xCluster("cds_svc", deadAddr, good.Addr()), 20*time.Millisecond, "", 1, 1)).snap(t))
	hs := p.state.Load().byName["cds_svc"].Up.Stats.Health()
	waitFor(t, "the TCP checks", func() bool { return hs.Healthy.Value() == 1 && hs.NetworkFailure.Value() > 0 })
	c := testClient()
	if seen := spread(t, c, "http://"+addrOf(t, p, egressName, 0)+"/", 6); seen["good"] != 6 {
		t.Errorf("%v, want every request on the live endpoint (no connect failure)", seen)
	}
}

func TestHealthCheckGRPC(t *testing.T) {
	t.Parallel()
	serve := func(st healthpb.HealthCheckResponse_ServingStatus) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		h := health.NewServer()
		h.SetServingStatus("color.Color", st)
		healthpb.RegisterHealthServer(s, h)
		go s.Serve(ln)
		t.Cleanup(s.Stop)
		return ln.Addr().String()
	}
	serving, notServing := serve(healthpb.HealthCheckResponse_SERVING), serve(healthpb.HealthCheckResponse_NOT_SERVING)
	cl := withHTTP2(xCluster("cds_grpc", serving, notServing))
	cl.HealthChecks = []*corev3.HealthCheck{{
		Timeout: durationpb.New(time.Second), Interval: durationpb.New(20 * time.Millisecond),
		HealthyThreshold: wrapperspb.UInt32(1), UnhealthyThreshold: wrapperspb.UInt32(1),
		HealthChecker: &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{ServiceName: "color.Color"}},
	}}
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_grpc")))}, cl).snap(t))
	v := p.state.Load().byName["cds_grpc"]
	hs := v.Up.Stats.Health()
	waitFor(t, "the gRPC checks", func() bool { return hs.Healthy.Value() == 1 && hs.Failure.Value() > 0 })
	for _, e := range v.Hosts {
		if want := e.Addr == notServing; e.Stats.HC.Failed.Load() != want {
			t.Errorf("%s failed=%v, want %v", e.Addr, e.Stats.HC.Failed.Load(), want)
		}
	}
}

// Before the cluster has traffic, checks slow to the no-traffic pace;
// the first request brings back the interval.
func TestHealthCheckNoTrafficInterval(t *testing.T) {
	t.Parallel()
	a := startHealthApp(t, "a", true)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withHealthCheck(xCluster("cds_svc", a.Addr()), 20*time.Millisecond, "/health", 1, 1)).snap(t))
	waitFor(t, "the first check", func() bool { return a.checks.Load() == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := a.checks.Load(); n != 1 {
		t.Fatalf("%d checks in 300ms without traffic, want 1 (next after %v)", n, cluster.NoTrafficInterval)
	}
	spread(t, testClient(), "http://"+addrOf(t, p, egressName, 0)+"/", 1)
	waitFor(t, "checks at the interval once there is traffic", func() bool { return a.checks.Load() >= 4 })
}

// A check path without its leading "/" (App Mesh accepted "health") is
// checked as "/health" rather than appended to the port.
func TestHealthCheckPathWithoutSlash(t *testing.T) {
	t.Parallel()
	a := startHealthApp(t, "a", true)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withHealthCheck(xCluster("cds_svc", a.Addr()), 20*time.Millisecond, "health", 1, 1)).snap(t))
	hs := p.state.Load().byName["cds_svc"].Up.Stats.Health()
	waitFor(t, "a passing check of /health", func() bool { return a.checks.Load() > 0 && hs.Healthy.Value() == 1 })
	if n := hs.Failure.Value() + hs.NetworkFailure.Value(); n != 0 {
		t.Errorf("%d failed checks, want none", n)
	}
}

// Checked endpoints wait for their next check on a timer, not in a
// goroutine each: 400 endpoints between checks add no goroutines.
func TestHealthCheckNoGoroutinePerEndpoint(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	p := startProxy(t, Config{})
	base := runtime.NumGoroutine()
	var addrs []string
	for i := range 400 {
		// Nothing listens on port 1: each check is refused at once.
		addrs = append(addrs, fmt.Sprintf("127.0.%d.%d:1", 1+i/200, 1+i%200))
	}
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_many")))},
		withHealthCheck(xCluster("cds_many", addrs...), 50*time.Millisecond, "", 1, 1)).snap(t))
	hs := p.state.Load().byName["cds_many"].Up.Stats.Health()
	// Without traffic the next checks come after noTrafficInterval: every
	// endpoint now waits.
	waitFor(t, "every endpoint's first check", func() bool { return hs.NetworkFailure.Value() >= uint64(len(addrs)) })
	waitFor(t, "the checks to end", func() bool { return runtime.NumGoroutine() < base+50 })
}
