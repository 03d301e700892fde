package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// filtersMesh is the demo's shape (a gateway in front of services behind
// sidecars) with the meshlens extension: faults on a virtual router's
// routes, a rate limit on a gateway route, CORS and gRPC-Web on the
// gateway's listeners, a connection rate limit on a TCP listener. The
// gateway's access log path is filled in.
const filtersMesh = `
kind: Mesh
name: flt
---
kind: VirtualNode
mesh: flt
name: web
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: flt.local, serviceName: web}}
---
kind: VirtualNode
mesh: flt
name: rpc
spec:
  listeners: [{portMapping: {port: 9000, protocol: grpc}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: flt.local, serviceName: rpc}}
---
kind: VirtualNode
mesh: flt
name: db
spec:
  listeners:
    - portMapping: {port: 7000, protocol: tcp}
      meshlens:
        rateLimit: {maxTokens: 2, fillInterval: {unit: s, value: 3600}}
  serviceDiscovery: {awsCloudMap: {namespaceName: flt.local, serviceName: db}}
---
kind: VirtualRouter
mesh: flt
name: web-router
spec: {listeners: [{portMapping: {port: 8080, protocol: http}}]}
---
kind: Route
mesh: flt
virtualRouter: web-router
name: abort
spec:
  priority: 1
  httpRoute:
    match: {prefix: /abort}
    action: {weightedTargets: [{virtualNode: web, weight: 1}]}
    meshlens:
      fault: {abort: {httpStatus: 503, percentage: 50}}
---
kind: Route
mesh: flt
virtualRouter: web-router
name: delay
spec:
  priority: 2
  httpRoute:
    match: {prefix: /delay}
    action: {weightedTargets: [{virtualNode: web, weight: 1}]}
    meshlens:
      fault: {delay: {fixedDelay: {unit: ms, value: 400}, percentage: 100}}
---
kind: Route
mesh: flt
virtualRouter: web-router
name: hdr
spec:
  priority: 3
  httpRoute:
    match: {prefix: /hdr}
    action: {weightedTargets: [{virtualNode: web, weight: 1}]}
    meshlens:
      fault: {headerControlled: true}
---
kind: Route
mesh: flt
virtualRouter: web-router
name: plain
spec:
  priority: 9
  httpRoute:
    match: {prefix: /}
    action: {weightedTargets: [{virtualNode: web, weight: 1}]}
---
kind: VirtualService
mesh: flt
name: web.flt.local
spec: {provider: {virtualRouter: {virtualRouterName: web-router}}}
---
kind: VirtualService
mesh: flt
name: rpc.flt.local
spec: {provider: {virtualNode: {virtualNodeName: rpc}}}
---
kind: VirtualNode
mesh: flt
name: gone
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: flt.local, serviceName: gone}}
---
kind: VirtualService
mesh: flt
name: gone.flt.local
spec: {provider: {virtualNode: {virtualNodeName: gone}}}
---
kind: VirtualRouter
mesh: flt
name: slow-router
spec: {listeners: [{portMapping: {port: 9000, protocol: grpc}}]}
---
kind: Route
mesh: flt
virtualRouter: slow-router
name: slow
spec:
  grpcRoute:
    match: {serviceName: slow.Slow}
    action: {weightedTargets: [{virtualNode: rpc, weight: 1}]}
    timeout: {perRequest: {unit: ms, value: 300}}
---
kind: VirtualService
mesh: flt
name: slow.flt.local
spec: {provider: {virtualRouter: {virtualRouterName: slow-router}}}
---
kind: VirtualGateway
mesh: flt
name: edge
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      meshlens:
        cors:
          allowOrigins: [{exact: "https://app.example"}]
          allowMethods: [GET, POST]
          allowHeaders: [content-type]
          maxAge: {unit: s, value: 600}
    - portMapping: {port: 9090, protocol: grpc}
      meshlens:
        grpcWeb: {enabled: true}
  logging:
    accessLog:
      file:
        path: %s
        format: {text: "%%RESPONSE_CODE%% %%RESPONSE_FLAGS%% %%REQ(:PATH)%%\n"}
---
kind: GatewayRoute
mesh: flt
virtualGateway: edge
name: limited
spec:
  priority: 1
  httpRoute:
    match: {prefix: /limited, port: 8080}
    action: {target: {virtualService: {virtualServiceName: web.flt.local}}}
    meshlens:
      rateLimit: {maxTokens: 3, fillInterval: {unit: s, value: 3600}}
---
kind: GatewayRoute
mesh: flt
virtualGateway: edge
name: gone
spec:
  priority: 0
  httpRoute:
    match: {prefix: /gone, port: 8080}
    action: {target: {virtualService: {virtualServiceName: gone.flt.local}}}
---
kind: GatewayRoute
mesh: flt
virtualGateway: edge
name: all
spec:
  priority: 2
  httpRoute:
    match: {prefix: /, port: 8080}
    action: {target: {virtualService: {virtualServiceName: web.flt.local}}}
---
kind: GatewayRoute
mesh: flt
virtualGateway: edge
name: rpc
spec:
  grpcRoute:
    match: {serviceName: grpc.health.v1.Health, port: 9090}
    action: {target: {virtualService: {virtualServiceName: rpc.flt.local}}}
---
kind: GatewayRoute
mesh: flt
virtualGateway: edge
name: slow
spec:
  grpcRoute:
    match: {serviceName: slow.Slow, port: 9090}
    action: {target: {virtualService: {virtualServiceName: slow.flt.local}}}
`

// filtersLab is filtersMesh running: the gateway, the sidecars of web
// (an echo app) and rpc (grpc-go's health service), and the gateway's
// access log.
type filtersLab struct {
	gw              *proxyProc
	http, grpc, log string
	web             *echoApp
}

func startFiltersLab(t *testing.T) *filtersLab {
	t.Helper()
	s := startServer(t, t.TempDir())
	logPath := filepath.Join(t.TempDir(), "gateway.log")
	s.mustCLI(t, fmt.Sprintf(filtersMesh, logPath), "apply", "-f", "-")
	lab := &filtersLab{log: logPath, web: startEchoApp(t, "web")}
	web := startProxy(t, s, "mesh/flt/virtualNode/web", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+lab.web.addr)
	rpc := startProxy(t, s, "mesh/flt/virtualNode/rpc", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "9000="+startHealthApp(t))
	lab.gw = startProxy(t, s, "mesh/flt/virtualGateway/edge", true, "--listen", "8080=127.0.0.1:0", "--listen", "9090=127.0.0.1:0")
	lab.gw.waitEndpoint(t, web.listenerAddr(t, "lds_ingress_*"))
	lab.gw.waitEndpoint(t, rpc.listenerAddr(t, "lds_ingress_*"))
	lab.http = lab.gw.listenerAddr(t, "lds_ingress_0.0.0.0_8080")
	lab.grpc = lab.gw.listenerAddr(t, "lds_ingress_0.0.0.0_9090")
	return lab
}

// startHealthApp runs grpc-go's health service (status SERVING) and
// returns its address. A call of any other service hangs until the
// caller gives up.
func startHealthApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
		<-st.Context().Done()
		return st.Context().Err()
	}))
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

// get sends a request to the gateway's HTTP listener.
func (l *filtersLab) get(t *testing.T, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+l.http+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// logCount waits until the access log holds want lines that start with
// prefix ("503 FI /abort") and fails if it holds another number.
func (l *filtersLab) logCount(t *testing.T, prefix string, want int) {
	t.Helper()
	count := func() int {
		b, _ := os.ReadFile(l.log)
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, prefix) {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, fmt.Sprintf("%d access log lines %q", want, prefix), func() error {
		if n := count(); n != want {
			return fmt.Errorf("%d lines", n)
		}
		return nil
	})
}

// Through a gateway, a virtual router's route with a 50% abort answers
// about half of the requests 503 (flag FI, fault.aborts_injected); a
// fixed delay delays (flag DI); a header-controlled fault aborts with the
// status the request asks for, and only then.
func TestFaultInjectionThroughGateway(t *testing.T) {
	t.Parallel()
	lab := startFiltersLab(t)
	eventually(t, 20*time.Second, "the gateway routes /", func() error {
		if resp, _ := lab.get(t, "GET", "/"); resp.StatusCode != 200 {
			return errStatus(resp.StatusCode)
		}
		return nil
	})

	const n = 200
	aborted := 0
	for range n {
		resp, body := lab.get(t, "GET", "/abort")
		switch {
		case resp.StatusCode == 503 && body == "fault filter abort":
			aborted++
		case resp.StatusCode != 200:
			t.Fatalf("GET /abort: %d %q", resp.StatusCode, body)
		}
	}
	// Binomial(200, 0.5): outside [60, 140] about once in 10^9 runs.
	if aborted < 60 || aborted > 140 {
		t.Errorf("%d of %d requests aborted, want about half", aborted, n)
	}
	if got := statSum(t, lab.gw.admin, `http\.[^:]*\.fault\.aborts_injected`); got != int64(aborted) {
		t.Errorf("fault.aborts_injected = %d, want %d", got, aborted)
	}
	lab.logCount(t, "503 FI /abort", aborted)
	// In Prometheus, with Envoy's tag-extracted name and App Mesh's tags.
	prom := adminGet(t, lab.gw.admin, "/stats/prometheus")
	if v, _ := promSum(prom, "envoy_http_fault_aborts_injected", `envoy_http_conn_manager_prefix="ingress"`, `appmesh_listener_protocol="http"`, `appmesh_listener_port="8080"`); v != float64(aborted) {
		t.Errorf("envoy_http_fault_aborts_injected{...listener 8080} = %v, want %d", v, aborted)
	}

	start := time.Now()
	if resp, _ := lab.get(t, "GET", "/delay"); resp.StatusCode != 200 {
		t.Errorf("GET /delay: %d", resp.StatusCode)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("GET /delay took %s, want at least the 400ms delay", d)
	}
	lab.logCount(t, "200 DI /delay", 1)
	if got := statSum(t, lab.gw.admin, `http\.[^:]*\.fault\.delays_injected`); got != 1 {
		t.Errorf("fault.delays_injected = %d, want 1", got)
	}

	if resp, _ := lab.get(t, "GET", "/hdr", "x-envoy-fault-abort-request", "418"); resp.StatusCode != 418 {
		t.Errorf("GET /hdr asking for a 418 abort: %d", resp.StatusCode)
	}
	if resp, _ := lab.get(t, "GET", "/hdr"); resp.StatusCode != 200 {
		t.Errorf("GET /hdr without fault headers: %d", resp.StatusCode)
	}
	lab.logCount(t, "418 FI /hdr", 1)
}

// A gateway route's rate limit lets its bucket's requests through, then
// answers 429 with x-envoy-ratelimited and retry-after (flag RL,
// rate_limited counted) without reaching the service; a TCP listener's
// rate limit closes the connections over its bucket.
func TestRateLimitThroughGateway(t *testing.T) {
	t.Parallel()
	lab := startFiltersLab(t)
	eventually(t, 20*time.Second, "the gateway routes /", func() error {
		if resp, _ := lab.get(t, "GET", "/"); resp.StatusCode != 200 {
			return errStatus(resp.StatusCode)
		}
		return nil
	})
	lab.web.seen()
	for i := range 3 {
		if resp, body := lab.get(t, "GET", "/limited"); resp.StatusCode != 200 {
			t.Fatalf("request %d within the bucket: %d %q", i, resp.StatusCode, body)
		}
	}
	resp, body := lab.get(t, "GET", "/limited")
	if resp.StatusCode != 429 || body != "local_rate_limited" || resp.Header.Get("X-Envoy-Ratelimited") != "true" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("request over the bucket: %d %q %v, want 429 with x-envoy-ratelimited and retry-after", resp.StatusCode, body, resp.Header)
	}
	if n := lab.web.seen(); n != 3 {
		t.Errorf("the service saw %d requests, want the 3 within the bucket", n)
	}
	if got := statSum(t, lab.gw.admin, `gateway_route\.limited\.http_local_rate_limit\.rate_limited`); got != 1 {
		t.Errorf("gateway_route.limited.http_local_rate_limit.rate_limited = %d, want 1", got)
	}
	lab.logCount(t, "429 RL /limited", 1)
	// A prefix of two tokens stays in the Prometheus name, as in Envoy.
	if v, _ := promSum(adminGet(t, lab.gw.admin, "/stats/prometheus"), "envoy_gateway_route_limited_http_local_rate_limit_rate_limited"); v != 1 {
		t.Errorf("envoy_gateway_route_limited_http_local_rate_limit_rate_limited = %v, want 1", v)
	}
	// Other routes have no limit.
	if resp, _ := lab.get(t, "GET", "/other"); resp.StatusCode != 200 {
		t.Errorf("a route without a rate limit: %d", resp.StatusCode)
	}
}

// The TCP listener's rate limit (2 connections an hour) lets two
// sessions through its sidecar and closes the third at once, counted.
func TestTCPRateLimitThroughSidecar(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, fmt.Sprintf(filtersMesh, "/dev/null"), "apply", "-f", "-")
	db := startProxy(t, s, "mesh/flt/virtualNode/db", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "7000="+startTCPEcho(t), "--register=false")
	addr := db.listenerAddr(t, "lds_ingress_*")
	session := func() string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "hi")
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	for i := range 2 {
		if got := session(); got != "hibye" {
			t.Fatalf("session %d within the bucket: %q", i, got)
		}
	}
	if got := session(); got != "" {
		t.Errorf("session over the bucket got %q, want the connection closed", got)
	}
	if got := statSum(t, db.admin, `local_ratelimit\.[^:]*\.rate_limited`); got != 1 {
		t.Errorf("local_ratelimit.<prefix>.rate_limited = %d, want 1", got)
	}
}

// The gateway answers a CORS preflight from an allowed origin itself,
// with the allow headers; an actual request's response gets
// Access-Control-Allow-Origin; a disallowed origin gets none.
func TestCORSAtGateway(t *testing.T) {
	t.Parallel()
	lab := startFiltersLab(t)
	eventually(t, 20*time.Second, "the gateway routes /", func() error {
		if resp, _ := lab.get(t, "GET", "/"); resp.StatusCode != 200 {
			return errStatus(resp.StatusCode)
		}
		return nil
	})
	lab.web.seen()
	resp, _ := lab.get(t, "OPTIONS", "/items", "Origin", "https://app.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	want := map[string]string{
		"Access-Control-Allow-Origin":  "https://app.example",
		"Access-Control-Allow-Methods": "GET,POST",
		"Access-Control-Allow-Headers": "content-type",
		"Access-Control-Max-Age":       "600",
	}
	if resp.StatusCode != 200 {
		t.Errorf("preflight: %d", resp.StatusCode)
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("preflight %s = %q, want %q", k, got, v)
		}
	}
	if n := lab.web.seen(); n != 0 {
		t.Errorf("the service saw %d preflights, want them answered at the gateway", n)
	}
	resp, _ = lab.get(t, "GET", "/items", "Origin", "https://app.example")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("actual request: %d, allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	resp, _ = lab.get(t, "GET", "/items", "Origin", "https://evil.example")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("request from a disallowed origin: %d, allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if v, i := statSum(t, lab.gw.admin, `http\.[^:]*\.cors\.origin_valid`), statSum(t, lab.gw.admin, `http\.[^:]*\.cors\.origin_invalid`); v != 2 || i != 1 {
		t.Errorf("cors.origin_valid = %d, origin_invalid = %d; want 2, 1", v, i)
	}
}

// A browser's gRPC-Web call, binary and text, reaches grpc-go's health
// service behind a sidecar through the gateway and gets its message and
// grpc-status back, the trailers in the body.
func TestGRPCWebThroughGateway(t *testing.T) {
	t.Parallel()
	lab := startFiltersLab(t)
	url := "http://" + lab.grpc + "/grpc.health.v1.Health/Check"
	for _, text := range []bool{false, true} {
		var res grpcWebResult
		eventually(t, 20*time.Second, fmt.Sprintf("gRPC-Web call (text %v)", text), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			res, err = grpcWebCall{text: text}.do(ctx, url, &healthpb.HealthCheckRequest{})
			if err == nil && res.status() != "0" {
				err = fmt.Errorf("grpc-status %q %q", res.status(), res.header.Get("Grpc-Message"))
			}
			return err
		})
		if res.trailer == nil || len(res.messages) != 1 {
			t.Fatalf("text %v: %d messages, trailer %v: want one message and the trailers in the body", text, len(res.messages), res.trailer)
		}
		var msg healthpb.HealthCheckResponse
		if err := proto.Unmarshal(res.messages[0], &msg); err != nil || msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("text %v: response %v %v, want SERVING", text, &msg, err)
		}
	}
}

// A browser's request to a gateway route whose virtual node has no
// instance gets the gateway's 503 with the CORS headers, as every local
// reply made after the filters ran goes through their response phase.
func TestCORSOnGatewayLocalReply(t *testing.T) {
	t.Parallel()
	lab := startFiltersLab(t)
	var resp *http.Response
	var body string
	eventually(t, 20*time.Second, "the gateway answers /gone 503", func() error {
		resp, body = lab.get(t, "GET", "/gone/x", "Origin", "https://app.example")
		if resp.StatusCode != 503 {
			return errStatus(resp.StatusCode)
		}
		return nil
	})
	if body != "no healthy upstream" || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("503 to a browser: body %q, access-control-allow-origin %q; want no healthy upstream with the CORS header", body, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// A gRPC-Web call whose route times out at the gateway gets the
// timeout as a gRPC-Web status: a trailers-only response with
// grpc-status 14 (UNAVAILABLE, Envoy's mapping of 504), which a gRPC-Web
// client reads as the call's status, not an HTTP error.
func TestGRPCWebTimeoutThroughGateway(t *testing.T) {
	t.Parallel()
	lab := startFiltersLab(t)
	url := "http://" + lab.grpc + "/slow.Slow/Hang"
	for _, text := range []bool{false, true} {
		var res grpcWebResult
		eventually(t, 20*time.Second, fmt.Sprintf("gRPC-Web call timed out (text %v)", text), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			res, err = grpcWebCall{text: text}.do(ctx, url, &healthpb.HealthCheckRequest{})
			if err == nil && res.status() != "14" {
				err = fmt.Errorf("grpc-status %q %q", res.status(), res.header.Get("Grpc-Message"))
			}
			return err
		})
		if m := res.header.Get("Grpc-Message"); m != "upstream request timeout" || len(res.messages) != 0 {
			t.Errorf("text %v: grpc-message %q, %d messages; want the timeout's reply and no message", text, m, len(res.messages))
		}
	}
	lab.logCount(t, "200 UT /slow.Slow/Hang", 2)
}
