package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

const routingMesh = `
kind: Mesh
name: routing
---
kind: VirtualNode
mesh: routing
name: client
spec:
  backends:
    - virtualService: {virtualServiceName: svc.routing.local}
    - virtualService: {virtualServiceName: grpcsvc.routing.local}
---
kind: VirtualNode
mesh: routing
name: a
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: routing.local, serviceName: a}}
---
kind: VirtualNode
mesh: routing
name: b
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: routing.local, serviceName: b}}
---
kind: VirtualNode
mesh: routing
name: ga
spec:
  listeners: [{portMapping: {port: 9090, protocol: grpc}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: routing.local, serviceName: ga}}
---
kind: VirtualNode
mesh: routing
name: gb
spec:
  listeners: [{portMapping: {port: 9090, protocol: grpc}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: routing.local, serviceName: gb}}
---
kind: VirtualRouter
mesh: routing
name: svc
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: VirtualRouter
mesh: routing
name: grpcsvc
spec:
  listeners: [{portMapping: {port: 9090, protocol: grpc}}]
---
kind: VirtualService
mesh: routing
name: svc.routing.local
spec: {provider: {virtualRouter: {virtualRouterName: svc}}}
---
kind: VirtualService
mesh: routing
name: grpcsvc.routing.local
spec: {provider: {virtualRouter: {virtualRouterName: grpcsvc}}}
`

// httpRoute renders a route of router svc that sends matches to b.
func httpRoute(name string, priority int, match string) string {
	return fmt.Sprintf(`---
kind: Route
mesh: routing
virtualRouter: svc
name: %s
spec:
  priority: %d
  httpRoute:
    match: %s
    action: {weightedTargets: [{virtualNode: b, weight: 1}]}
`, name, priority, match)
}

func routingRoutes() string {
	var b strings.Builder
	b.WriteString(httpRoute("exact", 1, `{path: {exact: /exact}}`))
	b.WriteString(httpRoute("regex", 2, `{path: {regex: "^/re/[0-9]+$"}}`))
	b.WriteString(httpRoute("hdr-exact", 3, `{prefix: /, headers: [{name: x-canary, match: {exact: "1"}}]}`))
	b.WriteString(httpRoute("hdr-prefix", 4, `{prefix: /, headers: [{name: x-user, match: {prefix: adm}}]}`))
	b.WriteString(httpRoute("hdr-suffix", 5, `{prefix: /, headers: [{name: x-host, match: {suffix: .internal}}]}`))
	b.WriteString(httpRoute("hdr-regex", 6, `{prefix: /, headers: [{name: x-trace, match: {regex: "^t-[0-9a-f]{4}$"}}]}`))
	b.WriteString(httpRoute("hdr-range", 7, `{prefix: /, headers: [{name: x-ver, match: {range: {start: 10, end: 20}}}]}`))
	b.WriteString(httpRoute("hdr-invert", 8, `{prefix: /inv, headers: [{name: x-tier, invert: true, match: {exact: gold}}]}`))
	b.WriteString(httpRoute("method", 9, `{prefix: /m, method: POST}`))
	b.WriteString(httpRoute("query", 10, `{prefix: /q, queryParameters: [{name: variant, match: {exact: b}}]}`))
	b.WriteString(httpRoute("prio-high", 15, `{prefix: /prio}`))
	// Lower priority (higher number) than prio-high for the same prefix:
	// must never win. It targets a.
	b.WriteString(strings.Replace(httpRoute("prio-low", 20, `{prefix: /prio}`), "virtualNode: b", "virtualNode: a", 1))
	b.WriteString(strings.Replace(httpRoute("default", 100, `{prefix: /}`), "virtualNode: b", "virtualNode: a", 1))
	b.WriteString(`---
kind: Route
mesh: routing
virtualRouter: grpcsvc
name: unary-canary
spec:
  priority: 1
  grpcRoute:
    match: {serviceName: grpc.testing.TestService, methodName: UnaryCall, metadata: [{name: x-canary, match: {exact: "1"}}]}
    action: {weightedTargets: [{virtualNode: gb, weight: 1}]}
---
kind: Route
mesh: routing
virtualRouter: grpcsvc
name: streaming
spec:
  priority: 2
  grpcRoute:
    match: {serviceName: grpc.testing.TestService, methodName: FullDuplexCall}
    action: {weightedTargets: [{virtualNode: gb, weight: 1}]}
---
kind: Route
mesh: routing
virtualRouter: grpcsvc
name: grpc-default
spec:
  priority: 3
  grpcRoute:
    match: {serviceName: grpc.testing.TestService}
    action: {weightedTargets: [{virtualNode: ga, weight: 1}]}
`)
	return b.String()
}

type routeCase struct {
	name, method, path string
	header             map[string]string
	want               string // app name
}

var routeCases = []routeCase{
	{"exact path", "GET", "/exact", nil, "b"},
	{"exact path is not a prefix", "GET", "/exact/more", nil, "a"},
	{"regex path", "GET", "/re/123", nil, "b"},
	{"regex path no match", "GET", "/re/abc", nil, "a"},
	{"header exact", "GET", "/", map[string]string{"x-canary": "1"}, "b"},
	{"header exact no match", "GET", "/", map[string]string{"x-canary": "2"}, "a"},
	{"header prefix", "GET", "/", map[string]string{"x-user": "admin"}, "b"},
	{"header prefix no match", "GET", "/", map[string]string{"x-user": "user"}, "a"},
	{"header suffix", "GET", "/", map[string]string{"x-host": "db.internal"}, "b"},
	{"header regex", "GET", "/", map[string]string{"x-trace": "t-beef"}, "b"},
	{"header regex no match", "GET", "/", map[string]string{"x-trace": "t-xyz1"}, "a"},
	{"header range", "GET", "/", map[string]string{"x-ver": "15"}, "b"},
	{"header range above", "GET", "/", map[string]string{"x-ver": "20"}, "a"},
	{"header range not a number", "GET", "/", map[string]string{"x-ver": "abc"}, "a"},
	{"inverted header other value", "GET", "/inv", map[string]string{"x-tier": "silver"}, "b"},
	// As in Envoy (and so App Mesh), an absent header never matches, inverted or not.
	{"inverted header absent", "GET", "/inv", nil, "a"},
	{"inverted header present", "GET", "/inv", map[string]string{"x-tier": "gold"}, "a"},
	{"method", "POST", "/m", nil, "b"},
	{"method no match", "GET", "/m", nil, "a"},
	{"query", "GET", "/q?variant=b", nil, "b"},
	{"query no match", "GET", "/q?variant=a", nil, "a"},
	{"priority", "GET", "/prio", nil, "b"},
	{"default", "GET", "/anything", nil, "a"},
}

// grpcApp is a TestService that answers with its name, on unary and
// bidirectional streaming calls, and sets a trailer.
type grpcApp struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (g *grpcApp) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	grpc.SetTrailer(ctx, metadata.Pairs("x-served-by", g.name))
	return &testgrpc.SimpleResponse{ServerId: g.name}, nil
}

func (g *grpcApp) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			stream.SetTrailer(metadata.Pairs("x-served-by", g.name))
			return nil
		}
		if err != nil {
			return err
		}
		body := append([]byte(g.name+":"), req.GetPayload().GetBody()...)
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: body}}); err != nil {
			return err
		}
	}
}

func startGRPCApp(t *testing.T, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(g, &grpcApp{name: name})
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return ln.Addr().(*net.TCPAddr).Port
}

// Every match type and priority, over HTTP/1.1 (as an HTTP proxy) and h2c,
// and gRPC unary and bidirectional streaming with trailers, through a
// sidecar's egress configured by the control plane.
func TestRoutingThroughSidecar(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, routingMesh+routingRoutes(), "apply", "-f", "-")
	a, b := startEchoApp(t, "a"), startEchoApp(t, "b")
	register(t, s, "routing", "a", "a-1", "127.0.0.1", a.addrPort())
	register(t, s, "routing", "b", "b-1", "127.0.0.1", b.addrPort())
	register(t, s, "routing", "ga", "ga-1", "127.0.0.1", startGRPCApp(t, "ga"))
	register(t, s, "routing", "gb", "gb-1", "127.0.0.1", startGRPCApp(t, "gb"))

	clientProxy := startProxy(t, s, "mesh/routing/virtualNode/client", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	egress := clientProxy.listenerAddr(t, "lds_egress_*")

	clients := map[string]*http.Client{"http1-proxy": proxyClient(egress), "h2c": h2cClient(egress)}
	// Endpoints arrive by EDS after the listener: wait until routing works.
	eventually(t, 10*time.Second, "routes ready", func() error {
		resp, err := clients["http1-proxy"].Get("http://svc.routing.local:8080/exact")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if !strings.HasPrefix(string(got), "b ") {
			return fmt.Errorf("%s %q", resp.Status, got)
		}
		return nil
	})
	for proto, c := range clients {
		for _, rc := range routeCases {
			t.Run(proto+"/"+rc.name, func(t *testing.T) {
				req, _ := http.NewRequest(rc.method, "http://svc.routing.local:8080"+rc.path, strings.NewReader(""))
				for k, v := range rc.header {
					req.Header.Set(k, v)
				}
				resp, err := c.Do(req)
				code, got := body(t, resp, err)
				wantProto := "HTTP/1.1" // router listener is http: upstream is HTTP/1.1
				if code != 200 || !strings.HasPrefix(got, rc.want+" "+rc.method+" "+rc.path+" "+wantProto) {
					t.Errorf("%s %s: %d %q, want app %s", rc.method, rc.path, code, got, rc.want)
				}
			})
		}
	}

	// gRPC through the egress, by :authority.
	conn, err := grpc.NewClient("passthrough:///"+egress,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("grpcsvc.routing.local:9090"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	unary := func(md metadata.MD) (string, string) {
		var trailer metadata.MD
		resp, err := client.UnaryCall(metadata.NewOutgoingContext(ctx, md), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer), grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("unary call: %v", err)
		}
		return resp.GetServerId(), strings.Join(trailer.Get("x-served-by"), ",")
	}
	if id, tr := unary(nil); id != "ga" || tr != "ga" {
		t.Errorf("unary default: server %q trailer %q, want ga", id, tr)
	}
	if id, tr := unary(metadata.Pairs("x-canary", "1")); id != "gb" || tr != "gb" {
		t.Errorf("unary with metadata: server %q trailer %q, want gb", id, tr)
	}
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(resp.GetPayload().GetBody()); got != fmt.Sprintf("gb:%d", i) {
			t.Errorf("stream message %d: %q", i, got)
		}
	}
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	if tr := stream.Trailer().Get("x-served-by"); len(tr) != 1 || tr[0] != "gb" {
		t.Errorf("stream trailer %v, want gb", tr)
	}
}
