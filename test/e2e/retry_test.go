package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

const retryMesh = `
kind: Mesh
name: retry
---
kind: VirtualNode
mesh: retry
name: client
spec:
  backends:
    - virtualService: {virtualServiceName: gsvc.retry.local}
    - virtualService: {virtualServiceName: hsvc.retry.local}
---
kind: VirtualNode
mesh: retry
name: g
spec:
  listeners: [{portMapping: {port: 9090, protocol: grpc}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: retry.local, serviceName: g}}
---
kind: VirtualNode
mesh: retry
name: h
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: retry.local, serviceName: h}}
---
kind: VirtualRouter
mesh: retry
name: gsvc
spec:
  listeners: [{portMapping: {port: 9090, protocol: grpc}}]
---
kind: VirtualRouter
mesh: retry
name: hsvc
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: VirtualService
mesh: retry
name: gsvc.retry.local
spec: {provider: {virtualRouter: {virtualRouterName: gsvc}}}
---
kind: VirtualService
mesh: retry
name: hsvc.retry.local
spec: {provider: {virtualRouter: {virtualRouterName: hsvc}}}
---
kind: Route
mesh: retry
virtualRouter: gsvc
name: all
spec:
  grpcRoute:
    match: {serviceName: grpc.testing.TestService}
    action: {weightedTargets: [{virtualNode: g, weight: 1}]}
---
kind: Route
mesh: retry
virtualRouter: hsvc
name: all
spec:
  httpRoute:
    match: {prefix: /}
    action: {weightedTargets: [{virtualNode: h, weight: 1}]}
    retryPolicy:
      maxRetries: 2
      perRetryTimeout: {unit: s, value: 5}
      httpRetryEvents: [server-error]
`

// flakyGRPC fails every odd-numbered unary call with UNAVAILABLE.
type flakyGRPC struct {
	testgrpc.UnimplementedTestServiceServer
	calls atomic.Int64
}

func (f *flakyGRPC) UnaryCall(_ context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if f.calls.Add(1)%2 == 1 {
		return nil, status.Error(codes.Unavailable, "first attempt fails")
	}
	return &testgrpc.SimpleResponse{Payload: in.GetPayload()}, nil
}

// Retries through a sidecar configured by the control plane: a gRPC
// unary call (no content-length) whose first attempt fails with
// UNAVAILABLE succeeds through App Mesh's default retry policy, and a
// chunked HTTP/1.1 upload whose first attempt gets a 503 is replayed
// whole under the route's retry policy.
func TestRetriesThroughSidecar(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, retryMesh, "apply", "-f", "-")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakyGRPC{}
	g := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(g, flaky)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	register(t, s, "retry", "g", "g-1", "127.0.0.1", ln.Addr().(*net.TCPAddr).Port)

	var uploads atomic.Int64
	bodies := make(chan string, 16)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
		if uploads.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "stored")
	})}
	go func() { _ = hs.Serve(hl) }()
	t.Cleanup(func() { _ = hs.Close() })
	register(t, s, "retry", "h", "h-1", "127.0.0.1", hl.Addr().(*net.TCPAddr).Port)

	sidecar := startProxy(t, s, "mesh/retry/virtualNode/client", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	egress := sidecar.listenerAddr(t, "lds_egress_*")

	conn, err := grpc.NewClient("passthrough:///"+egress,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("gsvc.retry.local:9090"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	// Endpoints arrive by EDS after the listener: wait until a call is
	// answered by the app (UNAVAILABLE from it counts).
	eventually(t, 10*time.Second, "gRPC route ready", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if flaky.calls.Load() == 0 {
			return fmt.Errorf("the app saw no call: %v", err)
		}
		return nil
	})
	if flaky.calls.Load()%2 == 1 {
		flaky.calls.Add(1) // the next call's first attempt fails
	}
	before := flaky.calls.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hello")}})
	if err != nil {
		t.Fatalf("unary call whose first attempt fails with UNAVAILABLE: %v", err)
	}
	if string(resp.GetPayload().GetBody()) != "hello" {
		t.Errorf("payload %q", resp.GetPayload().GetBody())
	}
	if n := flaky.calls.Load() - before; n != 2 {
		t.Errorf("the app saw %d attempts, want 2", n)
	}

	// A chunked upload: the client does not say its length.
	c := proxyClient(egress)
	payload := strings.Repeat("chunk ", 1000)
	eventually(t, 10*time.Second, "HTTP route ready", func() error {
		req, _ := http.NewRequest(http.MethodPost, "http://hsvc.retry.local:8080/upload", io.NopCloser(strings.NewReader(payload)))
		req.ContentLength = -1
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != "stored" {
			return fmt.Errorf("%s %q", resp.Status, got)
		}
		return nil
	})
	close(bodies)
	n := 0
	for b := range bodies {
		n++
		if b != payload {
			t.Errorf("attempt %d: the app got %d bytes, want the %d-byte body", n, len(b), len(payload))
		}
	}
	if n != 2 {
		t.Errorf("the app saw %d attempts of the upload, want 2 (a 503, then the retry)", n)
	}
}
