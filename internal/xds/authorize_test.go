package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/meshlens/meshlens/internal/nodeid"
)

// onlyGreeter authorizes every stream for the greeter node only.
func onlyGreeter(_ context.Context, id nodeid.ID) error {
	if id.Mesh == "demo" && id.Name == "greeter" {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "meshlens: not allowed %s", id)
}

// TestServerAuthorizeRefusesAnotherNode: a stream Authorize refuses its
// node ends with PermissionDenied before any configuration is sent, and
// the node is not listed as connected.
func TestServerAuthorizeRefusesAnotherNode(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond, Authorize: onlyGreeter})
	s.Update(loadMesh(t, "testdata/mesh.yaml"), fixtureEndpoints())
	c := dialADS(t, addr, "mesh/demo/virtualGateway/ingress-gw")
	select {
	case err := <-c.errs:
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not allowed") {
			t.Fatalf("stream error = %v, want PermissionDenied", err)
		}
	case r := <-c.resps:
		t.Fatalf("a refused node got configuration: %v", r)
	case <-time.After(5 * time.Second):
		t.Fatal("the stream of a refused node was not closed")
	}
	if n := s.Nodes(); len(n) != 0 {
		t.Fatalf("Nodes() = %+v, want none", n)
	}
	// The node it does allow is served.
	ok := dialADS(t, addr, "mesh/demo/virtualNode/greeter")
	if _, got := ok.next(5 * time.Second); !got {
		t.Fatal("the allowed node got no configuration")
	}
}

// TestServerRefusesNodeChangeOnStream: a stream identified (and
// authorized) as one node that names another node in a later request is
// ended, instead of being answered from the other node's snapshot.
func TestServerRefusesNodeChangeOnStream(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond, Authorize: onlyGreeter})
	s.Update(loadMesh(t, "testdata/mesh.yaml"), fixtureEndpoints())
	c := dialADS(t, addr, "mesh/demo/virtualNode/greeter")
	if _, got := c.next(5 * time.Second); !got {
		t.Fatal("no configuration for the allowed node")
	}
	c.node.Id = "mesh/demo/virtualGateway/ingress-gw"
	c.send(resource.ListenerType, nil, "", "", nil)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "node id changed") {
				t.Fatalf("stream error = %v, want PermissionDenied naming the node change", err)
			}
			return
		case r := <-c.resps:
			for _, res := range r.Resources {
				if strings.Contains(string(res.Value), "ingress-gw") {
					t.Fatalf("the stream was served the other node's %s", r.TypeUrl)
				}
			}
		case <-deadline:
			t.Fatal("a stream that changed its node was not closed")
		}
	}
}

// TestServerAuthorizeDelta: a delta stream is bound the same way: one
// Authorize refuses gets PermissionDenied and nothing else.
func TestServerAuthorizeDelta(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond, Authorize: onlyGreeter})
	s.Update(loadMesh(t, "testdata/mesh.yaml"), fixtureEndpoints())
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "mesh/demo/virtualGateway/ingress-gw", UserAgentName: "envoy"}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if r != nil || status.Code(err) != codes.PermissionDenied {
		t.Fatalf("delta stream of a refused node: %v, %v; want PermissionDenied and nothing", r, err)
	}
}
