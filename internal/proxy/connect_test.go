package proxy

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"golang.org/x/net/http2/hpack"
)

// CONNECT opens a tunnel only on a sidecar's egress: a gateway and an
// inbound listener answer 405 whatever their routes match (a tunnel there
// would carry anything past the routes), and so does the egress for
// HTTP/2's CONNECT. Nothing reaches the upstream.
func TestConnectRefusedOffTheEgress(t *testing.T) {
	t.Parallel()
	tcpUp := startTCPUpstream(t)
	routes := func(name string) *routev3.RouteConfiguration {
		return xRouteConfig(name, xVHost("all", []string{"*"}, xRoute("/", to("cds_any"))))
	}
	gwName := "lds_ingress_0.0.0.0_8080"
	gw := startProxy(t, Config{Gateway: true, Listen: map[uint32]string{8080: "127.0.0.1:0"}})
	mustApply(t, gw, xds{
		gateway:   true,
		listeners: []*listenerv3.Listener{xListener(gwName, "0.0.0.0:8080", xChain("ingress_http_8080", 0, xHCM("ingress.http.8080", "rds_ingress_http_8080", withUpgrades("websocket"))))},
		routes:    []*routev3.RouteConfiguration{routes("rds_ingress_http_8080")},
		clusters:  []*clusterv3.Cluster{xCluster("cds_any", tcpUp)},
	}.snap(t))
	side := startProxy(t, Config{Listen: map[uint32]string{9080: "127.0.0.1:0"}})
	mustApply(t, side, xds{
		listeners: []*listenerv3.Listener{
			xListener(ingressName, "0.0.0.0:15000", xChain("ingress_http_9080", 9080, xHCM("ingress.http.9080", "rds_ingress_http_9080", withUpgrades("websocket")))),
			xListener(egressName, "0.0.0.0:15001", xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001", withUpgrades("websocket")))),
		},
		routes:   []*routev3.RouteConfiguration{routes("rds_ingress_http_9080"), routes("rds_egress_http_15001")},
		clusters: []*clusterv3.Cluster{xCluster("cds_any", tcpUp)},
	}.snap(t))

	for _, tc := range []struct {
		name, addr, prefix string
		p                  *Proxy
		h1                 bool // HTTP/1.1 CONNECT is refused (the egress tunnels it)
	}{
		{"gateway", addrOf(t, gw, gwName, 0), "ingress.http.8080", gw, true},
		{"inbound", addrOf(t, side, ingressName, 9080), "ingress.http.9080", side, true},
		{"egress", addrOf(t, side, egressName, 0), "egress", side, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.h1 {
				_, _, resp := rawRequest(t, tc.addr, "CONNECT anything.example:443 HTTP/1.1\r\nHost: anything.example:443\r\n\r\n", &http.Request{Method: http.MethodConnect})
				if resp.StatusCode != http.StatusMethodNotAllowed {
					t.Errorf("HTTP/1.1 CONNECT: %s, want 405", resp.Status)
				}
			}
			h := dialH2(t, tc.addr)
			if err := h.request(1, "CONNECT", "anything.example:443", false); err != nil {
				t.Fatal(err)
			}
			if st, err := h.response(1); err != nil || st != "405" {
				t.Errorf("HTTP/2 CONNECT: %q %v, want 405", st, err)
			}
			// Extended CONNECT (RFC 8441, WebSocket over HTTP/2) is not
			// offered: the stream is refused.
			if err := h.request(3, "CONNECT", "anything.example:443", false,
				hpack.HeaderField{Name: ":protocol", Value: "websocket"}, hpack.HeaderField{Name: ":scheme", Value: "http"}, hpack.HeaderField{Name: ":path", Value: "/"}); err != nil {
				t.Fatal(err)
			}
			if st, err := h.response(3); err == nil || errors.Is(err, errGoAway) || !strings.Contains(err.Error(), "PROTOCOL_ERROR") {
				t.Errorf("HTTP/2 extended CONNECT: %q %v, want the stream reset", st, err)
			}
			if n := statValue(t, tc.p, "http."+tc.prefix+".downstream_cx_upgrades_total"); n != 0 {
				t.Errorf("%d tunnels opened", n)
			}
		})
	}
	if n := statValue(t, gw, "cluster.cds_any.upstream_rq_total"); n != 0 {
		t.Errorf("the gateway sent %d requests upstream", n)
	}
}
