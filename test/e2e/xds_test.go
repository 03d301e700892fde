package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// register registers an instance of a virtual node through the REST API.
func register(t testing.TB, s *server, mesh, node, id, addr string, port int) {
	t.Helper()
	body := fmt.Sprintf(`{"address": %q, "port": %d, "ttlSeconds": 30}`, addr, port)
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v1/meshes/%s/virtualNodes/%s/instances/%s", s.URL(), mesh, node, id), strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		t.Fatalf("register %s/%s/%s: %s %s", mesh, node, id, resp.Status, b.String())
	}
}

func deregister(t testing.TB, s *server, mesh, node, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("%s/v1/meshes/%s/virtualNodes/%s/instances/%s", s.URL(), mesh, node, id), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("deregister: %s", resp.Status)
	}
}

func weightsRoute(v1, v2 int) string {
	return fmt.Sprintf(`kind: Route
mesh: demo
virtualRouter: greeting
name: split
spec:
  httpRoute:
    match: {prefix: /}
    action:
      weightedTargets:
        - {virtualNode: greeting-v1, weight: %d}
        - {virtualNode: greeting-v2, weight: %d}
`, v1, v2)
}

// A route change reaches a connected xDS client within a second; an
// instance that goes away leaves its cluster's endpoints; a client that
// reconnects after a control-plane restart gets the current state.
func TestXDSPushesChanges(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, "", "apply", "-f", "../../examples/greeter.yaml")
	register(t, s, "demo", "greeting-v1", "v1-a", "127.0.0.1", 19081)
	register(t, s, "demo", "greeting-v1", "v1-b", "127.0.0.1", 19082)
	register(t, s, "demo", "greeting-v2", "v2-a", "127.0.0.1", 19083)

	c := dialADS(t, s.xds, "mesh/demo/virtualNode/greeter")
	v1cluster := ""
	c.waitFor(10*time.Second, "initial weights 90/10", func(c *adsClient) error {
		w := c.clusterWeights("greeting-v1")
		for name, weight := range w {
			if strings.Contains(name, "greeting-v1") && weight == 90 {
				v1cluster = name
				return nil
			}
		}
		return fmt.Errorf("weights %v", w)
	})
	c.waitFor(10*time.Second, "endpoints of greeting-v1", func(c *adsClient) error {
		eps, err := c.endpoints(v1cluster)
		if err != nil || len(eps) != 2 {
			return fmt.Errorf("endpoints %v %v", eps, err)
		}
		return nil
	})

	start := time.Now()
	s.mustCLI(t, weightsRoute(50, 50), "apply", "-f", "-")
	applied := time.Since(start)
	took := c.waitFor(time.Second+applied, "weights 50/50 pushed", func(c *adsClient) error {
		if w := c.clusterWeights("greeting-v1"); w[v1cluster] != 50 {
			return fmt.Errorf("weights %v", w)
		}
		return nil
	})
	t.Logf("weight change reached the client %s after the apply returned", took)

	deregister(t, s, "demo", "greeting-v1", "v1-a")
	c.waitFor(2*time.Second, "deregistered instance leaves the endpoints", func(c *adsClient) error {
		eps, err := c.endpoints(v1cluster)
		if err != nil || len(eps) != 1 || eps[0] != "127.0.0.1:19082" {
			return fmt.Errorf("endpoints %v %v", eps, err)
		}
		return nil
	})

	// Restart: registrations are renewed by live instances, resources
	// come back from the store, and a reconnecting client gets them.
	s.stop()
	s.restart()
	register(t, s, "demo", "greeting-v1", "v1-b", "127.0.0.1", 19082)
	s.mustCLI(t, weightsRoute(30, 70), "apply", "-f", "-")
	c2 := dialADS(t, s.xds, "mesh/demo/virtualNode/greeter")
	c2.waitFor(10*time.Second, "reconnected client gets current weights", func(c *adsClient) error {
		if w := c.clusterWeights("greeting-v1"); w[v1cluster] != 30 {
			return fmt.Errorf("weights %v", w)
		}
		return nil
	})
}

// An instance killed without deregistering disappears when its
// registration expires.
func TestRegistrationExpires(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, "", "apply", "-f", "../../examples/greeter.yaml")
	body := `{"address": "127.0.0.1", "port": 19090, "ttlSeconds": 1}`
	req, _ := http.NewRequest(http.MethodPut, s.URL()+"/v1/meshes/demo/virtualNodes/name/instances/short", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if out := s.mustCLI(t, "", "describe", "vn", "name", "--mesh", "demo"); !strings.Contains(out, "127.0.0.1:19090") {
		t.Fatalf("registered instance not shown:\n%s", out)
	}
	eventually(t, 5*time.Second, "registration expires", func() error {
		out := s.mustCLI(t, "", "describe", "vn", "name", "--mesh", "demo")
		if strings.Contains(out, "19090") {
			return fmt.Errorf("still registered")
		}
		return nil
	})
	// Bad registrations name the field.
	req, _ = http.NewRequest(http.MethodPut, s.URL()+"/v1/meshes/demo/virtualNodes/name/instances/x", strings.NewReader(`{"address": "not-an-ip", "port": 1}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var apiErr struct{ Code, Message string }
	json.NewDecoder(resp.Body).Decode(&apiErr)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(apiErr.Message, "address: must be an IPv4 or IPv6 address") {
		t.Fatalf("bad address: %s %+v", resp.Status, apiErr)
	}
}

// testServer is a grpc.testing.TestService backend that answers with its id.
type testServer struct {
	testgrpc.UnimplementedTestServiceServer
	id string
}

func (s *testServer) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: s.id}, nil
}

func startGRPCBackend(t *testing.T, id string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(g, &testServer{id: id})
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return ln.Addr().(*net.TCPAddr).Port
}

var xdsClientBinary string

// setupProxyless builds the proxyless client program once.
func setupProxyless() {
	xdsClientBinary = filepath.Join(filepath.Dir(binary), "xdsclient")
	cmd := exec.Command("go", "build", "-o", xdsClientBinary, "github.com/meshlens/meshlens/test/e2e/xdsclient")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build xdsclient:", err)
		xdsClientBinary = ""
	}
}

const grpcMesh = `
kind: Mesh
name: grpcdemo
---
kind: VirtualNode
mesh: grpcdemo
name: client
spec:
  backends:
    - virtualService: {virtualServiceName: greeting.grpc.local}
---
kind: VirtualNode
mesh: grpcdemo
name: greeting-v1
spec:
  listeners: [{portMapping: {port: 9080, protocol: grpc}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: grpc.local, serviceName: greeting-v1}}
---
kind: VirtualNode
mesh: grpcdemo
name: greeting-v2
spec:
  listeners: [{portMapping: {port: 9080, protocol: grpc}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: grpc.local, serviceName: greeting-v2}}
---
kind: VirtualRouter
mesh: grpcdemo
name: greeting
spec:
  listeners: [{portMapping: {port: 9080, protocol: grpc}}]
---
kind: VirtualService
mesh: grpcdemo
name: greeting.grpc.local
spec:
  provider: {virtualRouter: {virtualRouterName: greeting}}
`

func grpcRoute(v1, v2 int) string {
	return fmt.Sprintf(`kind: Route
mesh: grpcdemo
virtualRouter: greeting
name: split
spec:
  grpcRoute:
    match: {serviceName: grpc.testing.TestService}
    action:
      weightedTargets:
        - {virtualNode: greeting-v1, weight: %d}
        - {virtualNode: greeting-v2, weight: %d}
`, v1, v2)
}

// runProxyless runs the proxyless client process for n calls and returns
// the answers per server id.
func runProxyless(t *testing.T, s *server, n int) map[string]int {
	t.Helper()
	if xdsClientBinary == "" {
		t.Fatal("the proxyless client did not build")
	}
	bootstrap := fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": "mesh/grpcdemo/virtualNode/client", "cluster": "client", "locality": {"zone": "local"}}
}`, s.xds)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, xdsClientBinary, "-target", "xds:///greeting.grpc.local:9080", "-n", fmt.Sprint(n))
	cmd.Env = append(os.Environ(), "GRPC_XDS_BOOTSTRAP_CONFIG="+bootstrap)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("proxyless client: %v\n%s\nserver log:\n%s", err, errb.String(), s.logs.String())
	}
	counts := map[string]int{}
	if err := json.Unmarshal(out.Bytes(), &counts); err != nil {
		t.Fatalf("proxyless client output %q: %v", out.String(), err)
	}
	return counts
}

// A grpc-go client with the xds:/// resolver, bootstrapped at meshlens as
// a virtual node, follows the weights of the route to its backend.
func TestProxylessGRPCFollowsWeights(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, grpcMesh+"---\n"+grpcRoute(80, 20), "apply", "-f", "-")
	register(t, s, "grpcdemo", "greeting-v1", "v1", "127.0.0.1", startGRPCBackend(t, "v1"))
	register(t, s, "grpcdemo", "greeting-v2", "v2", "127.0.0.1", startGRPCBackend(t, "v2"))

	const n = 1000
	counts := runProxyless(t, s, n)
	share := float64(counts["v1"]) / n * 100
	t.Logf("80/20 route: v1 %d, v2 %d of %d calls (v1 %.1f%%)", counts["v1"], counts["v2"], n, share)
	if counts["v1"]+counts["v2"] != n || share < 75 || share > 85 {
		t.Fatalf("v1 share %.1f%%, want 80 ± 5 (counts %v)", share, counts)
	}

	// The change is pushed asynchronously (debounced): a client started
	// right after the apply may still begin on the old weights, so poll.
	s.mustCLI(t, grpcRoute(0, 100), "apply", "-f", "-")
	eventually(t, 10*time.Second, "all calls go to v2", func() error {
		if counts := runProxyless(t, s, 100); counts["v2"] != 100 {
			return fmt.Errorf("counts %v", counts)
		}
		return nil
	})
}

// The control plane's own metrics on its API address: connected proxies,
// pushes, ACKs and their latency, store operations; promtool accepts them.
func TestControlPlaneMetrics(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, "", "apply", "-f", "../../examples/greeter.yaml")
	s.cli(t, "", "delete", "vn", "greeting-v1", "--mesh", "demo") // refused: in use
	c := dialADS(t, s.xds, "mesh/demo/virtualNode/greeter")
	c.waitFor(10*time.Second, "routes", func(c *adsClient) error {
		if len(c.routeConfigs()) == 0 {
			return fmt.Errorf("no routes yet")
		}
		return nil
	})
	s.mustCLI(t, weightsRoute(50, 50), "apply", "-f", "-")
	var text string
	eventually(t, 10*time.Second, "metrics", func() error {
		resp, err := http.Get(s.URL() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		text = b.String()
		for _, want := range []string{
			`meshlens_controlplane_proxies_connected{flavour="envoy"} 1`,
			`meshlens_controlplane_store_operations_total{op="apply",result="ok"} 2`,
			`meshlens_controlplane_store_operations_total{op="delete",result="rejected"} 1`,
			`meshlens_controlplane_xds_acks_total{type="rds"}`,
			`meshlens_controlplane_xds_push_latency_seconds_count{type="rds"}`,
			`meshlens_controlplane_resources{kind="VirtualNode"} 4`,
			`meshlens_controlplane_xds_rebuild_seconds_count`,
		} {
			if !strings.Contains(text, want) {
				return fmt.Errorf("missing %q", want)
			}
		}
		return nil
	})
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool is not installed (make test-deps installs it)")
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
