// Package xdsgrpctest proves that meshlens's xDS is standard: a real
// grpc-go client with the xds:/// resolver, bootstrapped the way users
// bootstrap it, routes by what the control plane serves. It lives in its
// own package so that grpc's xds packages (and their global registries)
// stay out of the main xds test binary.
package xdsgrpctest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	_ "google.golang.org/grpc/xds" // the xds:/// resolver and balancers

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/store"
	"github.com/meshlens/meshlens/internal/xds"
)

// helperEnv marks the child process that plays the proxyless client.
const helperEnv = "MESHLENS_XDSGRPCTEST_CLIENT"

// countingHealth is a backend: it answers health checks and counts them.
type countingHealth struct {
	healthpb.UnimplementedHealthServer
	calls atomic.Int64
}

func (h *countingHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.calls.Add(1)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func serveBackend(t *testing.T) (*countingHealth, uint32) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &countingHealth{}
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, h)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return h, uint32(lis.Addr().(*net.TCPAddr).Port)
}

type endpoints map[string][]xds.Endpoint

func (e endpoints) Endpoints(mesh, node string) []xds.Endpoint { return e[mesh+"/"+node] }

func intp(i int) *int { return &i }

// mesh builds the test mesh: virtual node client calls greeting.demo.local,
// provided by router greeting (grpc 9080), whose route splits calls
// between greeting-v1 and greeting-v2.
func mesh(rev uint64, v1, v2 int) *store.Snapshot {
	grpcListener := []v1alpha1.Listener{{PortMapping: &v1alpha1.PortMapping{Port: 9080, Protocol: "grpc"}}}
	return store.NewSnapshot(rev, []*v1alpha1.Resource{
		{Kind: v1alpha1.KindMesh, Name: "demo", MeshSpec: &v1alpha1.MeshSpec{}},
		{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "client", VirtualNodeSpec: &v1alpha1.VirtualNodeSpec{
			Backends: []v1alpha1.Backend{{VirtualService: &v1alpha1.VirtualServiceBackend{VirtualServiceName: "greeting.demo.local"}}},
		}},
		{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "greeting-v1", VirtualNodeSpec: &v1alpha1.VirtualNodeSpec{Listeners: grpcListener}},
		{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "greeting-v2", VirtualNodeSpec: &v1alpha1.VirtualNodeSpec{Listeners: grpcListener}},
		{Kind: v1alpha1.KindVirtualRouter, Mesh: "demo", Name: "greeting", VirtualRouterSpec: &v1alpha1.VirtualRouterSpec{
			Listeners: []v1alpha1.VirtualRouterListener{{PortMapping: &v1alpha1.PortMapping{Port: 9080, Protocol: "grpc"}}},
		}},
		{Kind: v1alpha1.KindRoute, Mesh: "demo", VirtualRouter: "greeting", Name: "split", RouteSpec: &v1alpha1.RouteSpec{
			Priority: intp(10),
			GRPCRoute: &v1alpha1.GRPCRoute{
				Match: &v1alpha1.GRPCRouteMatch{ServiceName: "grpc.health.v1.Health"},
				Action: &v1alpha1.GRPCRouteAction{WeightedTargets: []v1alpha1.WeightedTarget{
					{VirtualNode: "greeting-v1", Weight: v1},
					{VirtualNode: "greeting-v2", Weight: v2},
				}},
			},
		}},
		{Kind: v1alpha1.KindVirtualService, Mesh: "demo", Name: "greeting.demo.local", VirtualServiceSpec: &v1alpha1.VirtualServiceSpec{
			Provider: &v1alpha1.VirtualServiceProvider{VirtualRouter: &v1alpha1.VirtualRouterServiceProvider{VirtualRouterName: "greeting"}},
		}},
	})
}

// client drives the child process that plays the proxyless client.
type client struct {
	t   *testing.T
	in  io.Writer
	out *bufio.Scanner
}

// call asks the child for n calls and waits for them to finish.
func (c *client) call(n int) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.in, "call %d\n", n); err != nil {
		c.t.Fatalf("write to client: %v", err)
	}
	done := make(chan string, 1)
	go func() {
		if c.out.Scan() {
			done <- c.out.Text()
		} else {
			done <- "eof: " + fmt.Sprint(c.out.Err())
		}
	}()
	select {
	case line := <-done:
		if line != "done" {
			c.t.Fatalf("client: %s", line)
		}
	case <-time.After(60 * time.Second):
		c.t.Fatal("client did not finish its calls in 60s")
	}
}

func TestProxylessGRPCWeightedRouting(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("in the client process")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := xds.NewServer(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), xds.Options{Debounce: 10 * time.Millisecond})
	g := grpc.NewServer()
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()

	v1, p1 := serveBackend(t)
	v2, p2 := serveBackend(t)
	eps := endpoints{
		"demo/greeting-v1": {{Address: "127.0.0.1", Port: p1, Healthy: true}},
		"demo/greeting-v2": {{Address: "127.0.0.1", Port: p2, Healthy: true}},
	}
	srv.Update(mesh(1, 80, 20), eps)

	bootstrap, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      lis.Addr().String(),
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": "mesh/demo/virtualNode/client", "cluster": "client"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// grpc-go reads its bootstrap from the environment once, when its
	// packages initialise, so the client runs in a child process started
	// with the variable set: exactly how a user bootstraps it.
	cmd := exec.Command(os.Args[0], "-test.run=^TestProxylessClientProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GRPC_XDS_BOOTSTRAP_CONFIG="+string(bootstrap))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	c := &client{t: t, in: stdin, out: bufio.NewScanner(stdout)}

	share := func(n int) float64 {
		t.Helper()
		v1.calls.Store(0)
		v2.calls.Store(0)
		c.call(n)
		a, b := v1.calls.Load(), v2.calls.Load()
		if a+b != int64(n) {
			t.Fatalf("backends saw %d+%d calls, want %d", a, b, n)
		}
		return float64(a) / float64(n)
	}

	if s := share(1000); s < 0.75 || s > 0.85 {
		t.Fatalf("greeting-v1 got %.1f%% of 1000 calls, want 80%% ± 5", 100*s)
	} else {
		t.Logf("80/20: greeting-v1 got %.1f%%", 100*s)
	}

	st := srv.Nodes()
	if len(st) != 1 || st[0].Flavour != "proxyless" || !strings.HasPrefix(st[0].Streams[0].UserAgent, "gRPC Go") {
		t.Fatalf("Nodes() = %+v, want one proxyless gRPC Go client", st)
	}

	srv.Update(mesh(2, 50, 50), eps)
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := share(200)
		if s > 0.35 && s < 0.65 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the split did not move to 50/50: greeting-v1 still gets %.1f%%", 100*s)
		}
	}
	if s := share(1000); s < 0.40 || s > 0.60 {
		t.Fatalf("after 50/50, greeting-v1 got %.1f%% of 1000 calls", 100*s)
	} else {
		t.Logf("50/50: greeting-v1 got %.1f%%", 100*s)
	}
}

// TestProxylessClientProcess is the child process of
// TestProxylessGRPCWeightedRouting: a proxyless grpc-go client that reads
// "call N" lines and answers "done" once N health checks succeeded.
func TestProxylessClientProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("run by TestProxylessGRPCWeightedRouting in a child process")
	}
	conn, err := grpc.NewClient("xds:///greeting.demo.local:9080", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println("dial: " + err.Error())
		os.Exit(1)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	var mu sync.Mutex
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 2 || f[0] != "call" {
			fmt.Println("bad command " + in.Text())
			os.Exit(1)
		}
		n, _ := strconv.Atoi(f[1])
		mu.Lock()
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
			cancel()
			if err != nil {
				fmt.Printf("call %d: %v\n", i, err)
				os.Exit(1)
			}
		}
		mu.Unlock()
		fmt.Println("done")
	}
	os.Exit(0)
}
