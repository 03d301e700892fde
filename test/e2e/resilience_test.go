package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const outageMesh = `
kind: Mesh
name: outage
---
kind: VirtualNode
mesh: outage
name: client
spec:
  backends: [{virtualService: {virtualServiceName: svc.outage.local}}]
---
kind: VirtualNode
mesh: outage
name: a
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: outage.local, serviceName: a}}
---
kind: VirtualNode
mesh: outage
name: b
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: outage.local, serviceName: b}}
---
kind: VirtualRouter
mesh: outage
name: svc
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: VirtualService
mesh: outage
name: svc.outage.local
spec: {provider: {virtualRouter: {virtualRouterName: svc}}}
`

func outageRoute(target string) string {
	return fmt.Sprintf(`kind: Route
mesh: outage
virtualRouter: svc
name: all
spec:
  httpRoute:
    match: {prefix: /}
    action: {weightedTargets: [{virtualNode: %s, weight: 1}]}
`, target)
}

// Killing the control plane leaves traffic flowing on the last config;
// restarting it, the proxy reconnects and picks up changes made meanwhile.
func TestControlPlaneOutage(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, outageMesh+"---\n"+outageRoute("a"), "apply", "-f", "-")
	a, b := startEchoApp(t, "a"), startEchoApp(t, "b")
	register(t, s, "outage", "a", "a-1", "127.0.0.1", a.addrPort())
	register(t, s, "outage", "b", "b-1", "127.0.0.1", b.addrPort())
	clientProxy := startProxy(t, s, "mesh/outage/virtualNode/client", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	egress := clientProxy.listenerAddr(t, "lds_egress_*")
	c := proxyClient(egress)
	answers := func(want string) error {
		for i := 0; i < 20; i++ {
			resp, err := c.Get("http://svc.outage.local:8080/")
			if err != nil {
				return err
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(string(got), want+" ") {
				return fmt.Errorf("%s %q, want app %s", resp.Status, got, want)
			}
		}
		return nil
	}
	eventually(t, 10*time.Second, "traffic to a", func() error { return answers("a") })

	s.kill()
	// The proxy serves its last good config while the control plane is away.
	for i := 0; i < 5; i++ {
		if err := answers("a"); err != nil {
			t.Fatalf("with the control plane down: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Changes made while the proxy was cut off reach it after it reconnects.
	s.restart()
	s.mustCLI(t, outageRoute("b"), "apply", "-f", "-")
	register(t, s, "outage", "a", "a-1", "127.0.0.1", a.addrPort())
	register(t, s, "outage", "b", "b-1", "127.0.0.1", b.addrPort())
	// The proxy reconnects with Envoy's backoff (0.5 s doubling to 30 s),
	// so on a loaded machine, where the restart is slow, the next attempt
	// can be half a minute away; the registrations are renewed meanwhile.
	eventually(t, 60*time.Second, "the proxy reconnects and routes to b", func() error {
		register(t, s, "outage", "b", "b-1", "127.0.0.1", b.addrPort())
		return answers("b")
	})
}

// A config the proxy cannot apply (a gateway listener on a port something
// else holds) is NACKed with the reason, and traffic continues on the old
// one.
func TestNACKKeepsOldConfig(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, outageMesh+"---\n"+outageRoute("a")+`---
kind: VirtualService
mesh: outage
name: direct.outage.local
spec: {provider: {virtualNode: {virtualNodeName: a}}}
---
kind: VirtualGateway
mesh: outage
name: gw
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: GatewayRoute
mesh: outage
virtualGateway: gw
name: all
spec:
  httpRoute:
    match: {prefix: /}
    action: {target: {virtualService: {virtualServiceName: direct.outage.local}}}
`, "apply", "-f", "-")
	a := startEchoApp(t, "a")
	register(t, s, "outage", "a", "a-1", "127.0.0.1", a.addrPort())
	gw := startProxy(t, s, "mesh/outage/virtualGateway/gw", true, "--listen", "8080=127.0.0.1:0")
	gwAddr := gw.listenerAddr(t, "lds_*")
	get := func() error {
		resp, err := http.Get("http://" + gwAddr + "/x")
		if err != nil {
			return err
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(got), "a GET /x") {
			return fmt.Errorf("%s %q", resp.Status, got)
		}
		return nil
	}
	eventually(t, 10*time.Second, "gateway answers", get)

	// Hold a port, then give the gateway a second listener on it.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	s.mustCLI(t, fmt.Sprintf(`kind: VirtualGateway
mesh: outage
name: gw
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
    - portMapping: {port: %d, protocol: http}
---
kind: GatewayRoute
mesh: outage
virtualGateway: gw
name: all
spec:
  httpRoute:
    match: {prefix: /, port: 8080}
    action: {target: {virtualService: {virtualServiceName: direct.outage.local}}}
`, port), "apply", "-f", "-")

	var lastNack string
	eventually(t, 15*time.Second, "the gateway NACKs with the reason", func() error {
		resp, err := http.Get(s.URL() + "/v1/proxies")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct {
			Items []struct {
				ID       string `json:"id"`
				Nacks    int    `json:"nacks"`
				LastNack string `json:"lastNack"`
			} `json:"items"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return err
		}
		for _, p := range out.Items {
			if p.ID == "mesh/outage/virtualGateway/gw" && p.Nacks > 0 {
				lastNack = p.LastNack
				return nil
			}
		}
		return fmt.Errorf("no NACK yet: %+v", out.Items)
	})
	if !strings.Contains(lastNack, "address already in use") || !strings.Contains(lastNack, fmt.Sprint(port)) {
		t.Errorf("NACK reason %q should say the port is in use", lastNack)
	}
	for i := 0; i < 10; i++ {
		if err := get(); err != nil {
			t.Fatalf("after the NACK the old config must keep serving: %v", err)
		}
	}
	if info, err := gw.serverInfo(); err != nil || info.State != "LIVE" {
		t.Errorf("gateway state after NACK: %+v %v", info, err)
	}
}

// App Mesh's container health check works unchanged: it fails before the
// proxy has config and passes once it has.
func TestAppMeshHealthCheckCommand(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	s := startServer(t, t.TempDir())
	check := func(admin string) error {
		cmd := exec.Command("bash", "-c", fmt.Sprintf("curl -s http://%s/server_info | grep state | grep -q LIVE", admin))
		return cmd.Run()
	}
	// The node does not exist yet: the proxy gets no config.
	p := startProxy(t, s, "mesh/outage/virtualNode/a", false, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "127.0.0.1:0", "--app", "8080=127.0.0.1:1")
	eventually(t, 10*time.Second, "admin answers", func() error { _, err := p.serverInfo(); return err })
	if err := check(p.admin); err == nil {
		t.Fatal("health check passed before the proxy had any config")
	}
	s.mustCLI(t, outageMesh, "apply", "-f", "-")
	eventually(t, 15*time.Second, "health check passes once configured", func() error { return check(p.admin) })
}
