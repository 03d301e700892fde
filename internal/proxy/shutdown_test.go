package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
)

// TestShutdownDrains: Shutdown turns the state DRAINING (admin stays up
// meanwhile), stops accepting, lets the in-flight request finish, then
// returns.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	release := make(chan struct{})
	up := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	p, err := New(Config{AdminAddr: "127.0.0.1:0", EgressAddr: "127.0.0.1:0", DrainTimeout: 10 * time.Second, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()
	mustApply(t, p, outbound(xCluster("cds_slow", up.Addr())).snap(t))
	addr := addrOf(t, p, egressName, 0)

	got := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Host = "greeting.demo.local"
		resp, err := testClient().Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-entered
	cancel() // as SIGTERM does through the CLI

	waitFor(t, "DRAINING", func() bool { return strings.Contains(stateLine(t, p), "DRAINING") })
	if code, _ := adminGet(t, p, "/ready"); code != 503 {
		t.Errorf("/ready while draining: %d", code)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("listener still accepts while draining")
	}
	select {
	case err := <-runDone:
		t.Fatalf("Run returned before the in-flight request finished: %v", err)
	default:
	}
	close(release)
	if body := <-got; body != "done" {
		t.Errorf("in-flight request during shutdown: %q", body)
	}
	select {
	case err := <-runDone:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
	if _, err := net.DialTimeout("tcp", p.AdminAddr().String(), time.Second); err == nil {
		t.Error("admin still up after shutdown")
	}
}

// TestShutdownDrainTimeout: a request longer than DrainTimeout is cut.
func TestShutdownDrainTimeout(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	up := startUpstream(t, "stuck", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	})
	p, err := New(Config{AdminAddr: "127.0.0.1:0", EgressAddr: "127.0.0.1:0", DrainTimeout: 200 * time.Millisecond, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, p, outbound(xCluster("cds_stuck", up.Addr())).snap(t))
	req, _ := http.NewRequest(http.MethodGet, "http://"+addrOf(t, p, egressName, 0)+"/", nil)
	req.Host = "greeting.demo.local"
	go func() {
		if resp, err := testClient().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	start := time.Now()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %s with a 200ms drain", d)
	}
}

// TestClientHangupCancelsUpstream: a client that closes its connection
// while its request waits for the upstream has the upstream request
// cancelled within about a second (h1server's hang-up look), not at the
// route timeout.
func TestClientHangupCancelsUpstream(t *testing.T) {
	t.Parallel()
	up, entered, cancelled := stuckUpstream(t)
	p := startProxy(t, Config{})
	mustApply(t, p, outbound(xCluster("cds_stuck", up.Addr())).snap(t))
	c, err := net.Dial("tcp", addrOf(t, p, egressName, 0))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: greeting.demo.local\r\n\r\n")
	<-entered
	start := time.Now()
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream request not cancelled after the client hung up")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled after %s", d)
	}
}

// TestHTTP2ClientResetCancelsUpstream: an HTTP/2 client that resets its
// stream while the request waits for an HTTP/2 upstream has the upstream
// stream cancelled at once (h2server tells the reset through
// stream.CancelNotifier, h2client resets through the request context's
// SetAbort), the request is logged as the client's doing, and the
// upstream is not blamed.
func TestHTTP2ClientResetCancelsUpstream(t *testing.T) {
	t.Parallel()
	up, entered, cancelled := stuckUpstream(t)
	cfg, logPath := loggedEgress(t, []*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_stuck")))},
		withOutlier(withHTTP2(xCluster("cds_stuck", up.Addr())), 1, 10*time.Second, 30*time.Second, 100))
	p := startProxy(t, Config{})
	mustApply(t, p, cfg.snap(t))
	h := dialH2(t, addrOf(t, p, egressName, 0))
	if err := h.request(1, "GET", "greeting.demo.local", true, hpack.HeaderField{Name: ":path", Value: "/stuck"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("request did not reach the upstream")
	}
	if err := h.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream stream not cancelled after the client reset its stream")
	}
	if line := logLine(t, logPath, 1); line != "0 /stuck DC" {
		t.Errorf("access log %q, want %q (no response, the downstream went away)", line, "0 /stuck DC")
	}
	if got := statValue(t, p, "http2.rx_reset"); got != 1 {
		t.Errorf("http2.rx_reset = %d, want 1", got)
	}
	for _, name := range []string{"cluster.cds_stuck.upstream_rq_5xx", "cluster.cds_stuck.upstream_rq_rx_reset", "cluster.cds_stuck.outlier_detection.ejections_enforced_total"} {
		if got := statValue(t, p, name); got > 0 {
			t.Errorf("%s = %d after a client reset", name, got)
		}
	}
}

// stuckUpstream is an upstream that answers nothing: entered is closed
// when a request reaches it, cancelled when that request's context ends
// (the proxy cancelled it) within 30 s.
func stuckUpstream(t *testing.T) (up *upstreamServer, entered, cancelled chan struct{}) {
	entered, cancelled = make(chan struct{}), make(chan struct{})
	up = startUpstream(t, "stuck", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(30 * time.Second):
		}
	})
	return up, entered, cancelled
}

// TestShutdownIsBoundedByItsContext: a connection whose goroutine never
// ends (what a bug would leave) does not keep Shutdown from returning
// when its context ends, so a sidecar told to stop exits in the time it
// was given; the error says so. A later Shutdown returns the same way.
func TestShutdownIsBoundedByItsContext(t *testing.T) {
	t.Parallel()
	p, err := New(Config{AdminAddr: "127.0.0.1:0", EgressAddr: "127.0.0.1:0", DrainTimeout: 100 * time.Millisecond, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	p.conns.Add(1) // a connection goroutine that never calls Done
	t.Cleanup(p.conns.Done)
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		err := p.Shutdown(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "shutdown unfinished") {
			t.Errorf("Shutdown %d with a connection that never ends: %v, want the unfinished shutdown's error", i, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Shutdown %d returned after %v, past its 500ms context", i, d)
		}
	}
}
