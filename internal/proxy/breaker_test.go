package proxy

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/hcm"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// withBreakers sets a cluster's default-priority thresholds; 0 leaves one
// unset.
func withBreakers(c *clusterv3.Cluster, conns, pending, requests, retries uint32) *clusterv3.Cluster {
	th := &clusterv3.CircuitBreakers_Thresholds{Priority: corev3.RoutingPriority_DEFAULT}
	set := func(dst **wrapperspb.UInt32Value, v uint32) {
		if v > 0 {
			*dst = wrapperspb.UInt32(v)
		}
	}
	set(&th.MaxConnections, conns)
	set(&th.MaxPendingRequests, pending)
	set(&th.MaxRequests, requests)
	set(&th.MaxRetries, retries)
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	return c
}

// gate is an upstream handler that holds every request until opened, and
// says how many it holds.
type gate struct {
	open    chan struct{}
	once    sync.Once
	holding atomic.Int64
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) handler(w http.ResponseWriter, r *http.Request) {
	g.holding.Add(1)
	defer g.holding.Add(-1)
	select {
	case <-g.open:
	case <-r.Context().Done():
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// overflowAfter sends n requests that the upstream holds, waits until it
// holds want of them and queued (when not nil) reports the others queued
// in the proxy, then sends one more and returns that response.
func overflowAfter(t *testing.T, c *http.Client, url string, g *gate, n, want int, queued func() bool) (*http.Response, string, []chan int) {
	t.Helper()
	var codes []chan int
	for range n {
		ch := make(chan int, 1)
		codes = append(codes, ch)
		go func() {
			resp, err := c.Get(url)
			if err != nil {
				ch <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ch <- resp.StatusCode
		}()
	}
	waitFor(t, "the upstream to hold the first requests", func() bool { return g.holding.Load() == int64(want) })
	if queued != nil {
		waitFor(t, "the other requests to queue in the proxy", queued)
	}
	resp, body := get(t, c, url, "", nil)
	return resp, body, codes
}

func TestCircuitBreakerHTTP1Pending(t *testing.T) {
	t.Parallel()
	g := newGate()
	up := startUpstream(t, "held", g.handler)
	p := startProxy(t, Config{})
	// One connection and one queued request: the third concurrent one
	// overflows, and is not retried (as Envoy).
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, withRetry(xRoute("/", to("cds_svc")), "5xx,connect-failure,reset", 2, 0))},
		withBreakers(xCluster("cds_svc", up.Addr()), 1, 1, 0, 0)).snap(t))
	url := "http://" + addrOf(t, p, egressName, 0) + "/"
	c := testClient()
	cs := p.state.Load().byName["cds_svc"].Up.Stats
	// The second request must be queued before the third is sent, or the
	// third takes the queue's one place.
	resp, body, codes := overflowAfter(t, c, url, g, 2, 1, func() bool { return cs.CbRqPendingOpen.Value() == 1 })
	if resp.StatusCode != 503 || resp.Header.Get("X-Envoy-Overflow") != "true" || body != hcm.BodyOverflow {
		t.Errorf("third request: %d %q overflow=%q, want 503 %q with x-envoy-overflow", resp.StatusCode, body, resp.Header.Get("X-Envoy-Overflow"), hcm.BodyOverflow)
	}
	if cs.CbRqPendingOpen.Value() != 1 || cs.CbRqOpen.Value() != 0 || cs.CbCxOpen.Value() != 1 {
		t.Errorf("at the limit: rq_pending_open %d rq_open %d cx_open %d, want 1 0 1", cs.CbRqPendingOpen.Value(), cs.CbRqOpen.Value(), cs.CbCxOpen.Value())
	}
	g.release()
	for i, ch := range codes {
		if code := <-ch; code != 200 {
			t.Errorf("admitted request %d: %d", i, code)
		}
	}
	st := p.state.Load().byName["cds_svc"].Up
	if got := st.Stats.RqPendingOverflow.Value(); got != 1 {
		t.Errorf("upstream_rq_pending_overflow %d, want 1", got)
	}
	if n := st.Breakers.Requests.Load(); n != 0 {
		t.Errorf("%d attempts still counted after all ended", n)
	}
	if resp, body := get(t, c, url, "", nil); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("after the overflow: %d %q", resp.StatusCode, body)
	}
	if cs.CbRqPendingOpen.Value() != 0 {
		t.Errorf("rq_pending_open %d after the requests ended, want 0", cs.CbRqPendingOpen.Value())
	}
}

func TestCircuitBreakerHTTP2Requests(t *testing.T) {
	t.Parallel()
	g := newGate()
	up := startUpstream(t, "held", g.handler)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_svc")))},
		withBreakers(withHTTP2(xCluster("cds_svc", up.Addr())), 0, 0, 2, 0)).snap(t))
	url := "http://" + addrOf(t, p, egressName, 0) + "/"
	c := testClient()
	resp, _, codes := overflowAfter(t, c, url, g, 2, 2, nil)
	if resp.StatusCode != 503 || resp.Header.Get("X-Envoy-Overflow") != "true" {
		t.Errorf("third concurrent HTTP/2 request: %d, want 503 with x-envoy-overflow", resp.StatusCode)
	}
	cs := p.state.Load().byName["cds_svc"].Up.Stats
	if cs.CbRqOpen.Value() != 1 {
		t.Errorf("rq_open %d at max_requests, want 1", cs.CbRqOpen.Value())
	}
	g.release()
	for _, ch := range codes {
		if code := <-ch; code != 200 {
			t.Errorf("admitted request: %d", code)
		}
	}
	waitFor(t, "rq_open to close", func() bool { return cs.CbRqOpen.Value() == 0 })
	if got := p.state.Load().byName["cds_svc"].Up.Stats.RqPendingOverflow.Value(); got != 1 {
		t.Errorf("upstream_rq_pending_overflow %d, want 1", got)
	}
}

// With one retry allowed at a time, a second failing request gets the
// upstream's answer instead of a retry.
func TestCircuitBreakerRetries(t *testing.T) {
	t.Parallel()
	g := newGate()
	var calls atomic.Int64
	// The first request's retry (the second call) is held; every other
	// call fails.
	up := startUpstream(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 2 {
			g.handler(w, r)
			return
		}
		w.WriteHeader(503)
	})
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, withRetry(xRoute("/", to("cds_svc")), "5xx", 1, 0))},
		withBreakers(xCluster("cds_svc", up.Addr()), 0, 0, 0, 1)).snap(t))
	url := "http://" + addrOf(t, p, egressName, 0) + "/"
	c := testClient()
	resp, _, codes := overflowAfter(t, c, url, g, 1, 1, nil)
	if resp.StatusCode != 503 || resp.Header.Get("X-Envoy-Overflow") != "" {
		t.Errorf("second request: %d overflow=%q, want the upstream's own 503", resp.StatusCode, resp.Header.Get("X-Envoy-Overflow"))
	}
	if v := p.state.Load().byName["cds_svc"].Up.Stats.CbRqRetryOpen.Value(); v != 1 {
		t.Errorf("rq_retry_open %d with max_retries in progress, want 1", v)
	}
	g.release()
	if code := <-codes[0]; code != 200 {
		t.Errorf("the retried request: %d, want 200", code)
	}
	st := p.state.Load().byName["cds_svc"].Up
	if got := st.Stats.RqRetryOverflow.Value(); got != 1 {
		t.Errorf("upstream_rq_retry_overflow %d, want 1", got)
	}
	if n := st.Breakers.Retries.Load(); n != 0 {
		t.Errorf("%d retries still counted", n)
	}
}

func TestCircuitBreakerTCPConnections(t *testing.T) {
	t.Parallel()
	p := startProxy(t, Config{Listen: map[uint32]string{5432: "127.0.0.1:0"}})
	mustApply(t, p, xds{
		listeners: []*listenerv3.Listener{xListener(ingressName, "0.0.0.0:15000", xChain("ingress_tcp_5432", 5432, xTCP("ingress.tcp.5432", 0, to("cds_tcp"))))},
		clusters:  []*clusterv3.Cluster{withBreakers(xCluster("cds_tcp", startTCPUpstream(t)), 1, 0, 0, 0)},
	}.snap(t))
	addr := addrOf(t, p, ingressName, 5432)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	up := p.state.Load().byName["cds_tcp"].Up
	waitFor(t, "the first session to be connected upstream", func() bool {
		return up.Breakers.Sessions.Load() == 1 && up.Stats.CxActive.Value() == 1
	})
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := second.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("second session: read %d, %v; want it closed", n, err)
	}
	if got := up.Stats.CxOverflow.Value(); got != 1 {
		t.Errorf("upstream_cx_overflow %d, want 1", got)
	}
	if v := up.Stats.CbCxOpen.Value(); v != 1 {
		t.Errorf("cx_open %d at max_connections, want 1", v)
	}
	// What App Mesh's dashboards query.
	_, prom := adminGet(t, p, "/stats/prometheus")
	if v, ok := promValue(prom, "envoy_cluster_circuit_breakers_default_cx_open", `envoy_cluster_name="cds_tcp"`); !ok || v != 1 {
		t.Errorf("envoy_cluster_circuit_breakers_default_cx_open{envoy_cluster_name=\"cds_tcp\"} = %v (found %v), want 1", v, ok)
	}
	// The first session still works, and its place is free once it ends.
	_, _ = first.Write([]byte("abc"))
	_ = first.(*net.TCPConn).CloseWrite()
	_ = first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, _ := io.ReadAll(first); string(b) != "got 3" {
		t.Errorf("first session answered %q", b)
	}
	waitFor(t, "the session's place to be freed", func() bool {
		return up.Breakers.Sessions.Load() == 0 && up.Stats.CbCxOpen.Value() == 0
	})
}
