package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshlens/meshlens/internal/proxy/codec/workers"
	"github.com/meshlens/meshlens/internal/proxy/idlewait"
)

// idleProxy starts a proxy whose egress listener routes every request to
// an upstream, with the connection manager's idle_timeout.
func idleProxy(t *testing.T, idle time.Duration) (*Proxy, string) {
	t.Helper()
	if !idlewait.Supported() {
		t.Skip("connections are not parked on this platform")
	}
	up := startUpstream(t, "app", nil)
	x := egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_app")))}, xCluster("cds_app", up.Addr()))
	x.listeners[0].FilterChains[0].Filters[0] = xHCM("egress", "rds_egress_http_15001", func(h *hcmv3.HttpConnectionManager) {
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(idle)}
	})
	p := startProxy(t, Config{})
	mustApply(t, p, x.snap(t))
	return p, addrOf(t, p, egressName, 0)
}

// waitStat polls a stat until it has the value want.
func waitStat(t *testing.T, p *Proxy, name string, want int64) {
	t.Helper()
	var got int64
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = statValue(t, p, name); got == want {
			return
		}
	}
	t.Fatalf("%s = %d, want %d", name, got, want)
}

// Through the sidecar's listener, keep-alive HTTP/1.1 connections beyond
// the connection manager's attached waits are parked between requests
// (no goroutine each), each is served when its next request comes, and
// the idle timeout still ends every one: the listener's and the
// connection manager's active-connection gauges go back to zero.
func TestHTTP1IdleConnectionsParked(t *testing.T) {
	const n = workers.DefaultWaits + 40
	p, addr := idleProxy(t, 3*time.Second)
	parked0 := idlewait.Parked()
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	roundTrip := func(i int) {
		t.Helper()
		if _, err := fmt.Fprintf(conns[i], "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(readers[i], nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("connection %d: status %d", i, resp.StatusCode)
		}
	}
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		conns[i], readers[i] = c, bufio.NewReader(c)
		roundTrip(i)
	}
	waitFor(t, "connections past the attached waits parked", func() bool {
		return idlewait.Parked()-parked0 >= n-workers.DefaultWaits
	})
	// An operator sees them (process-wide: other tests' may add).
	if got := statValue(t, p, "server.parked_connections"); got < n-workers.DefaultWaits {
		t.Errorf("server.parked_connections = %d with %d connections parked", got, n-workers.DefaultWaits)
	}
	for i := range n {
		roundTrip(i)
	}
	for i, c := range conns {
		if _, err := readers[i].ReadByte(); err != io.EOF {
			t.Fatalf("connection %d after the idle timeout: %v, want EOF", i, err)
		}
		c.Close()
	}
	waitStat(t, p, "http.egress.downstream_cx_active", 0)
}

// The same for HTTP/2 connections (h2c): parked between streams, served
// again, and ended by the idle timeout with GOAWAY.
func TestHTTP2IdleConnectionsParked(t *testing.T) {
	const n = 100
	p, addr := idleProxy(t, 3*time.Second)
	parked0 := idlewait.Parked()
	conns := make([]*h2Raw, n)
	for i := range n {
		conns[i] = dialH2(t, addr)
		if err := conns[i].request(1, "GET", "x", true); err != nil {
			t.Fatal(err)
		}
		if status, err := conns[i].response(1); err != nil || status != "200" {
			t.Fatalf("connection %d: %q %v", i, status, err)
		}
	}
	waitFor(t, "connections parked", func() bool { return idlewait.Parked()-parked0 >= n-workers.DefaultWaits })
	for i, h := range conns {
		if err := h.request(3, "GET", "x", true); err != nil {
			t.Fatal(err)
		}
		if status, err := h.response(3); err != nil || status != "200" {
			t.Fatalf("connection %d, second stream: %q %v", i, status, err)
		}
	}
	for i, h := range conns {
		var goaway bool
		for {
			f, err := h.fr.ReadFrame()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("connection %d: %v, want EOF after GOAWAY", i, err)
				}
				break
			}
			if _, ok := f.(*http2.GoAwayFrame); ok {
				goaway = true
			}
		}
		if !goaway {
			t.Errorf("connection %d closed without GOAWAY", i)
		}
	}
	waitStat(t, p, "http.egress.downstream_cx_active", 0)
}

// The proxy's shutdown ends parked idle connections, HTTP/1.1 and HTTP/2
// alike, as promptly as ones waiting on goroutines: Run returns well
// within the drain timeout and every client reads the end.
func TestShutdownEndsParkedConnections(t *testing.T) {
	if !idlewait.Supported() {
		t.Skip("connections are not parked on this platform")
	}
	up := startUpstream(t, "app", nil)
	p, err := New(Config{AdminAddr: "127.0.0.1:0", EgressAddr: "127.0.0.1:0", DrainTimeout: 30 * time.Second, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()
	mustApply(t, p, outbound(xCluster("cds_app", up.Addr())).snap(t))
	addr := addrOf(t, p, egressName, 0)
	parked0 := idlewait.Parked()
	const n = workers.DefaultWaits + 20
	var h1 []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: greeting.demo.local\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("HTTP/1.1 request: %v %v", resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		h1 = append(h1, c)
	}
	var h2 []*h2Raw
	for range n {
		h := dialH2(t, addr)
		if err := h.request(1, "GET", "greeting.demo.local", true); err != nil {
			t.Fatal(err)
		}
		if status, err := h.response(1); err != nil || status != "200" {
			t.Fatalf("HTTP/2 request: %q %v", status, err)
		}
		h2 = append(h2, h)
	}
	waitFor(t, "parked connections", func() bool { return idlewait.Parked()-parked0 >= 2*(n-workers.DefaultWaits) })
	start := time.Now()
	cancel()
	select {
	case err := <-runDone:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return: parked connections kept the drain waiting")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %v with parked connections", d)
	}
	for i, c := range h1 {
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("HTTP/1.1 connection %d still open after shutdown", i)
		}
	}
	for i, h := range h2 {
		for {
			if _, err := h.fr.ReadFrame(); err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("HTTP/2 connection %d after shutdown: %v, want its end", i, err)
				}
				break
			}
		}
	}
}
