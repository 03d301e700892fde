package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

const connectMesh = `
kind: Mesh
name: tun
---
kind: VirtualNode
mesh: tun
name: web
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: tun.local, serviceName: web}}
---
kind: VirtualService
mesh: tun
name: web.tun.local
spec: {provider: {virtualNode: {virtualNodeName: web}}}
---
kind: VirtualGateway
mesh: tun
name: edge
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: GatewayRoute
mesh: tun
virtualGateway: edge
name: all
spec:
  httpRoute:
    match: {prefix: /}
    action: {target: {virtualService: {virtualServiceName: web.tun.local}}}
`

// A virtual gateway whose route matches every path, and a sidecar's
// inbound listener, answer CONNECT with 405: no tunnel from outside the
// mesh past the routes. (The egress's tunnels:
// TestWebSocketThroughTwoSidecars; HTTP/2's CONNECT, refused everywhere:
// the proxy package's TestConnectRefusedOffTheEgress.)
func TestConnectRefusedByGatewayAndInbound(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, connectMesh, "apply", "-f", "-")
	app := startEchoApp(t, "web")
	web := startProxy(t, s, "mesh/tun/virtualNode/web", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+app.addr, "--register=false")
	ingress := web.listenerAddr(t, "lds_ingress_*")
	_, port, _ := net.SplitHostPort(ingress)
	p, _ := strconv.Atoi(port)
	register(t, s, "tun", "web", "web-1", "127.0.0.1", p)
	gw := startProxy(t, s, "mesh/tun/virtualGateway/edge", true, "--listen", "8080=127.0.0.1:0")
	gwAddr := gw.listenerAddr(t, "lds_*")

	for name, addr := range map[string]string{"gateway": gwAddr, "inbound": ingress} {
		// Routed first, so a 405 is the answer of a configured listener.
		eventually(t, 20*time.Second, name+" routes GET /", func() error {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return errStatus(resp.StatusCode)
			}
			return nil
		})
		app.seen() // from now on, count

		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "CONNECT anything.example:443 HTTP/1.1\r\nHost: anything.example:443\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
		conn.Close()
		if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: HTTP/1.1 CONNECT: %v %v, want 405", name, resp, err)
		}

		if n := app.seen(); n != 0 {
			t.Errorf("%s: the app saw %d requests after the CONNECTs", name, n)
		}
	}
}

type errStatus int

func (e errStatus) Error() string { return "status " + strconv.Itoa(int(e)) }
