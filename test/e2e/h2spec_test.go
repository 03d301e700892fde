package e2e

import (
	"errors"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

const h2specMesh = `
kind: Mesh
name: hspec
---
kind: VirtualNode
mesh: hspec
name: web
spec:
  listeners: [{portMapping: {port: 8080, protocol: http2}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: hspec.local, serviceName: web}}
---
kind: VirtualService
mesh: hspec
name: web.hspec.local
spec: {provider: {virtualNode: {virtualNodeName: web}}}
---
kind: VirtualGateway
mesh: hspec
name: edge
spec:
  listeners: [{portMapping: {port: 8080, protocol: http2}}]
---
kind: GatewayRoute
mesh: hspec
virtualGateway: edge
name: all
spec:
  http2Route:
    match: {prefix: /}
    action: {target: {virtualService: {virtualServiceName: web.hspec.local}}}
`

// h2spec (its whole HTTP/2 and HPACK suite, 145 cases) passes against a
// sidecar's inbound listener and a virtual gateway's listener, both h2c:
// the proxy's HTTP/2 codec enforces the protocol as RFC 9113 asks
// (stream errors for malformed requests, a clean close for an invalid
// preface, SETTINGS with a repeated identifier accepted, MAX_FRAME_SIZE
// 16384).
func TestH2SpecAgainstSidecarAndGateway(t *testing.T) {
	t.Parallel()
	bin := collectorBinary(t, "H2SPEC", "h2spec")
	s := startServer(t, t.TempDir())
	s.mustCLI(t, h2specMesh, "apply", "-f", "-")
	app := startEchoApp(t, "web")
	web := startProxy(t, s, "mesh/hspec/virtualNode/web", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+app.addr, "--register=false")
	var ingress string
	eventually(t, 10*time.Second, "inbound listener bound", func() error {
		if a := web.listenerAddrs(t, "lds_ingress_*"); len(a) == 1 {
			ingress = a[0]
			return nil
		}
		return errors.New("not bound yet")
	})
	_, port, _ := net.SplitHostPort(ingress)
	p, _ := strconv.Atoi(port)
	register(t, s, "hspec", "web", "web-1", "127.0.0.1", p)
	gw := startProxy(t, s, "mesh/hspec/virtualGateway/edge", true, "--listen", "8080=127.0.0.1:0")
	gwAddr := gw.listenerAddr(t, "lds_*")

	for _, target := range []struct{ name, addr string }{{"inbound", ingress}, {"gateway", gwAddr}} {
		c := h2cClient(target.addr)
		eventually(t, 20*time.Second, target.name+" routes GET /", func() error {
			resp, err := c.Get("http://" + target.addr + "/")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return errStatus(resp.StatusCode)
			}
			return nil
		})
		host, port, _ := net.SplitHostPort(target.addr)
		start := time.Now()
		out, err := exec.Command(bin, "-h", host, "-p", port, "-o", "3").CombinedOutput()
		t.Logf("%s: h2spec ran in %v", target.name, time.Since(start).Round(time.Millisecond))
		m := h2specTally.FindSubmatch(out)
		if m == nil {
			t.Fatalf("%s: h2spec: %v\n%s", target.name, err, out)
		}
		if passed, failed := string(m[2]), string(m[4]); passed != "145" || failed != "0" {
			t.Errorf("%s: h2spec: %s passed, %s failed, want 145/145\n%s", target.name, passed, failed, out)
		}
	}
}

var h2specTally = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)
