package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

const wsMesh = `
kind: Mesh
name: ws
---
kind: VirtualNode
mesh: ws
name: client
spec:
  backends: [{virtualService: {virtualServiceName: chat.ws.local}}]
---
kind: VirtualNode
mesh: ws
name: chat
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: ws.local, serviceName: chat}}
---
kind: VirtualService
mesh: ws
name: chat.ws.local
spec: {provider: {virtualNode: {virtualNodeName: chat}}}
---
kind: VirtualGateway
mesh: ws
name: edge
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: GatewayRoute
mesh: ws
virtualGateway: edge
name: chat
spec:
  httpRoute:
    match: {prefix: /room}
    action: {target: {virtualService: {virtualServiceName: chat.ws.local}}}
`

// A WebSocket session crosses both sidecars of an http listener, and the
// ingress gateway, as it did through App Mesh's Envoys: the handshake is
// routed like a request, then messages flow both ways until the client
// closes.
func TestWebSocketThroughTwoSidecars(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, wsMesh, "apply", "-f", "-")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: websocket.Handler(func(c *websocket.Conn) {
		for {
			var msg string
			if err := websocket.Message.Receive(c, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(c, "echo "+msg); err != nil {
				return
			}
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })

	server := startProxy(t, s, "mesh/ws/virtualNode/chat", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+ln.Addr().String(), "--register=false")
	ingress := server.listenerAddr(t, "lds_ingress_*")
	_, port, _ := net.SplitHostPort(ingress)
	p, _ := strconv.Atoi(port)
	register(t, s, "ws", "chat", "chat-1", "127.0.0.1", p)
	client := startProxy(t, s, "mesh/ws/virtualNode/client", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	egress := client.listenerAddr(t, "lds_egress_*")

	cfg, err := websocket.NewConfig("ws://chat.ws.local:8080/room", "http://chat.ws.local/")
	if err != nil {
		t.Fatal(err)
	}
	var ws *websocket.Conn
	eventually(t, 20*time.Second, "the WebSocket handshake through the sidecars", func() error {
		conn, err := net.Dial("tcp", egress)
		if err != nil {
			return err
		}
		ws, err = websocket.NewClient(cfg, conn)
		if err != nil {
			conn.Close()
			return err
		}
		return nil
	})
	defer ws.Close()
	ws.SetDeadline(time.Now().Add(10 * time.Second))
	for _, msg := range []string{"hello", strings.Repeat("x", 100<<10)} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatal(err)
		}
		if got != "echo "+msg {
			t.Fatalf("received %d bytes %.20q, want the echo of %d bytes", len(got), got, len(msg))
		}
	}
	// WebSocket clients behind an HTTP proxy (HTTP_PROXY) open a CONNECT
	// tunnel first; the egress routes it by its authority.
	conn, err := net.Dial("tcp", egress)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "CONNECT chat.ws.local:8080 HTTP/1.1\r\nHost: chat.ws.local:8080\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT through the egress: %v %v", resp, err)
	}
	ws2, err := websocket.NewClient(cfg, conn)
	if err != nil {
		t.Fatalf("WebSocket handshake in the CONNECT tunnel: %v", err)
	}
	defer ws2.Close()
	if err := websocket.Message.Send(ws2, "tunnelled"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := websocket.Message.Receive(ws2, &got); err != nil || got != "echo tunnelled" {
		t.Fatalf("through the CONNECT tunnel: %q %v", got, err)
	}

	// From outside the mesh, through the ingress gateway.
	gw := startProxy(t, s, "mesh/ws/virtualGateway/edge", true, "--listen", "8080=127.0.0.1:0")
	gwAddr := gw.listenerAddr(t, "lds_*")
	var ws3 *websocket.Conn
	eventually(t, 20*time.Second, "the WebSocket handshake through the gateway", func() error {
		conn, err := net.Dial("tcp", gwAddr)
		if err != nil {
			return err
		}
		ws3, err = websocket.NewClient(cfg, conn)
		if err != nil {
			conn.Close()
			return err
		}
		return nil
	})
	defer ws3.Close()
	ws3.SetDeadline(time.Now().Add(10 * time.Second))
	if err := websocket.Message.Send(ws3, "from outside"); err != nil {
		t.Fatal(err)
	}
	if err := websocket.Message.Receive(ws3, &got); err != nil || got != "echo from outside" {
		t.Fatalf("through the gateway: %q %v", got, err)
	}

	for name, p := range map[string]*proxyProc{"client": client, "server": server} {
		resp, err := http.Get("http://" + p.admin + "/stats?filter=downstream_cx_upgrades_total")
		if err != nil {
			t.Fatal(err)
		}
		b := new(strings.Builder)
		_, _ = io.Copy(b, resp.Body)
		resp.Body.Close()
		// The client sidecar counts the upgrade and the CONNECT tunnel,
		// the server sidecar both upgrades and the gateway's.
		want := map[string]string{"client": "2", "server": "3"}[name]
		if !regexp.MustCompile(`(?m)^http\.[^ ]+\.downstream_cx_upgrades_total: ` + want + `$`).MatchString(b.String()) {
			t.Errorf("%s sidecar stats:\n%s", name, b)
		}
	}
}
