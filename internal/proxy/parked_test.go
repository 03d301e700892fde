package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
