package xds

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestDeltaAndSotwStreamsAreTrackedApart: go-control-plane numbers its
// state-of-the-world and delta streams each from 1, so the first stream
// of each kind has the same id; both data planes must still be tracked,
// closing one must not forget the other, and closing both forgets both.
func TestDeltaAndSotwStreamsAreTrackedApart(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond})
	s.Update(loadMesh(t, "testdata/mesh.yaml"), fixtureEndpoints())
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ads := discovery.NewAggregatedDiscoveryServiceClient(conn)

	sctx, scancel := context.WithCancel(ctx)
	sotw, err := ads.StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	gw := &corev3.Node{Id: "mesh/demo/virtualGateway/ingress-gw", UserAgentName: "envoy"}
	if err := sotw.Send(&discovery.DiscoveryRequest{Node: gw, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if _, err := sotw.Recv(); err != nil {
		t.Fatal(err)
	}

	dctx, dcancel := context.WithCancel(ctx)
	delta, err := ads.DeltaAggregatedResources(dctx)
	if err != nil {
		t.Fatal(err)
	}
	vn := &corev3.Node{Id: "mesh/demo/virtualNode/greeter", UserAgentName: "envoy"}
	if err := delta.Send(&discovery.DeltaDiscoveryRequest{Node: vn, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if _, err := delta.Recv(); err != nil {
		t.Fatal(err)
	}

	waitNodes := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		var got []string
		for time.Now().Before(deadline) {
			got = got[:0]
			for _, n := range s.Nodes() {
				got = append(got, n.ID)
			}
			if len(got) == len(want) {
				ok := true
				for _, w := range want {
					found := false
					for _, g := range got {
						found = found || g == w
					}
					ok = ok && found
				}
				if ok {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("connected data planes %v, want %v", got, want)
	}
	waitNodes(gw.Id, vn.Id)

	// Closing the delta stream leaves the state-of-the-world one, and
	// closing that forgets its data plane too.
	dcancel()
	waitNodes(gw.Id)
	scancel()
	waitNodes()
}
