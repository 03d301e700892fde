package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
)

// upgradeApp switches to an echo protocol on "Upgrade: echo" or
// "Upgrade: websocket" (answering each line with "echo " and the line,
// and "bye" after the client half-closes), says what request it saw in
// X-Seen, and answers anything else with 200 "plain".
func upgradeApp(t *testing.T) *upstreamServer {
	return startUpstream(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", r.Method+" "+r.RequestURI+" "+r.Host+" "+r.Header.Get("Connection")+" "+r.Header.Get("Upgrade"))
		if r.Header.Get("Upgrade") == "" || r.URL.Path == "/plain" {
			_, _ = io.WriteString(w, "plain")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("upstream hijack: %v", err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\nX-Seen: %s\r\n\r\nhello\n", r.Header.Get("Upgrade"), w.Header().Get("X-Seen"))
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				fmt.Fprint(brw, "bye\n")
				brw.Flush()
				return
			}
			fmt.Fprint(brw, "echo "+line)
			brw.Flush()
		}
	})
}

func withUpgrades(types ...string) func(*hcmv3.HttpConnectionManager) {
	return func(h *hcmv3.HttpConnectionManager) {
		for _, t := range types {
			h.UpgradeConfigs = append(h.UpgradeConfigs, &hcmv3.HttpConnectionManager_UpgradeConfig{UpgradeType: t})
		}
	}
}

func upgradeProxy(t *testing.T, up string, types ...string) (*Proxy, string) {
	p := startProxy(t, Config{})
	x := xds{
		listeners: []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001", xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001", withUpgrades(types...))))},
		routes: []*routev3.RouteConfiguration{xRouteConfig("rds_egress_http_15001",
			xVHost("ws", []string{"*"}, xRoute("/", to("cds_ws"))))},
		clusters: []*clusterv3.Cluster{xCluster("cds_ws", up)},
	}
	mustApply(t, p, x.snap(t))
	return p, addrOf(t, p, egressName, 0)
}

func TestWebSocketUpgrade(t *testing.T) {
	t.Parallel()
	app := upgradeApp(t)
	p, addr := upgradeProxy(t, app.Addr(), "websocket")
	// The first line of the new protocol goes with the head.
	c, br, resp := rawRequest(t, addr, "GET http://chat.local/room?x=1 HTTP/1.1\r\nHost: chat.local\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\nfirst\n", nil)
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
	if seen := resp.Header.Get("X-Seen"); seen != "GET /room?x=1 chat.local Upgrade websocket" {
		t.Errorf("upstream saw %q", seen)
	}
	for _, want := range []string{"hello\n", "echo first\n"} {
		if got, err := br.ReadString('\n'); err != nil || got != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	io.WriteString(c, "second\n")
	if got, _ := br.ReadString('\n'); got != "echo second\n" {
		t.Fatalf("read %q", got)
	}
	waitFor(t, "the upgrade to be counted", func() bool {
		return statValue(t, p, "http.egress.downstream_cx_upgrades_total") == 1 && statValue(t, p, "http.egress.downstream_cx_upgrades_active") == 1
	})
	// A half-close crosses; the other direction still flows.
	c.(*net.TCPConn).CloseWrite()
	if got, _ := br.ReadString('\n'); got != "bye\n" {
		t.Fatalf("after half-close: %q", got)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the upstream closed: %v, want EOF", err)
	}
	waitFor(t, "the tunnel to end", func() bool {
		return statValue(t, p, "http.egress.downstream_cx_upgrades_active") == 0 &&
			statValue(t, p, "cluster.cds_ws.upstream_rq_101") == 1
	})
}

func TestUpgradeRefusedOrDeclined(t *testing.T) {
	t.Parallel()
	app := upgradeApp(t)
	_, addr := upgradeProxy(t, app.Addr(), "websocket")
	c := testClient()
	// An upgrade type the connection manager does not allow: 403.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = "x"
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("upgrade to echo: %d, want 403", resp.StatusCode)
	}
	// The h2c upgrade curl --http2 asks for: the request goes on as
	// HTTP/1.1 without it.
	req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = "x"
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "plain" || resp.ProtoMajor != 1 {
		t.Errorf("h2c upgrade request: %s %d %q, want a plain HTTP/1.1 200", resp.Proto, resp.StatusCode, b)
	}
	// The upstream declines (answers 200): a plain response.
	req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/plain", nil)
	req.Host = "x"
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "plain" || resp.Header.Get("Upgrade") != "" {
		t.Errorf("declined upgrade: %d %q %v", resp.StatusCode, b, resp.Header)
	}

	// Without upgrade_configs, a WebSocket request gets 403 and is
	// counted, as in Envoy.
	p2, addr2 := upgradeProxy(t, app.Addr())
	req, _ = http.NewRequest(http.MethodGet, "http://"+addr2+"/", nil)
	req.Host = "x"
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || statValue(t, p2, "http.egress.downstream_rq_ws_on_non_ws_route") != 1 {
		t.Errorf("websocket without upgrade_configs: %d, ws_on_non_ws_route %d", resp.StatusCode, statValue(t, p2, "http.egress.downstream_rq_ws_on_non_ws_route"))
	}
}

// A drain closes tunnels that outlive it.
func TestUpgradeDrain(t *testing.T) {
	t.Parallel()
	app := upgradeApp(t)
	p, addr := upgradeProxy(t, app.Addr(), "websocket")
	_, br, resp := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", nil)
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v", resp.Status)
	}
	br.ReadString('\n') // hello
	// The listener leaves the configuration: its drain (2 s here) ends
	// the tunnel.
	mustApply(t, p, xds{}.snap(t))
	start := time.Now()
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("tunnel ended with %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the tunnel lasted %v after the drain began", d)
	}
}

// CONNECT through the egress opens a tunnel to the route's endpoint; a
// half-close crosses it. The inbound side refuses CONNECT.
func TestConnectTunnel(t *testing.T) {
	t.Parallel()
	p, addr := upgradeProxy(t, startTCPUpstream(t), "websocket")
	c, br, resp := rawRequest(t, addr, "CONNECT db.local:5432 HTTP/1.1\r\nHost: db.local:5432\r\n\r\nearly ", &http.Request{Method: http.MethodConnect})
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v", resp.Status)
	}
	io.WriteString(c, "bytes")
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(br)
	if err != nil || string(b) != "got 11" {
		t.Fatalf("through the tunnel: %q %v, want the upstream's count of 11 bytes", b, err)
	}
	waitFor(t, "the tunnel to be counted", func() bool {
		return statValue(t, p, "http.egress.downstream_cx_upgrades_total") == 1 &&
			statValue(t, p, "http.egress.downstream_cx_upgrades_active") == 0 &&
			statValue(t, p, "cluster.cds_ws.upstream_rq_200") == 1
	})
	// A CONNECT without a port is refused.
	if _, _, resp := rawRequest(t, addr, "CONNECT db.local HTTP/1.1\r\nHost: db.local\r\n\r\n", &http.Request{Method: http.MethodConnect}); resp.StatusCode != 400 {
		t.Errorf("CONNECT without a port: %v, want 400", resp.Status)
	}
}

// An endpoint that answers an upgrade with an endless head gets the
// request refused (503), not the proxy's memory.
func TestUpgradeResponseHeadBounded(t *testing.T) {
	t.Parallel()
	endless := serveConns(t, func(c net.Conn) {
		_, _ = bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\n")
		line := "X-Filler: " + strings.Repeat("y", 1000) + "\r\n"
		for range 4000 { // 4 MB of headers
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
	_, addr := upgradeProxy(t, endless, "websocket")
	_, _, resp := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", nil)
	if resp.StatusCode != 503 {
		t.Errorf("endless upgrade response head: %d, want 503", resp.StatusCode)
	}
}

// rawRequest sends raw bytes to addr on a new connection (closed when the
// test ends, with a 10 s deadline) and reads the response head; req says
// its method when it matters (CONNECT). The reader holds what follows.
func rawRequest(t *testing.T, addr, raw string, req *http.Request) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("response to %.40q: %v", raw, err)
	}
	return c, br, resp
}
