package xds

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// TestServerFreesDisconnectedViews connects and disconnects thousands of
// data planes, each its own virtual node, in waves against one unchanged
// input. Every wave builds a view per node; once the nodes are gone their
// views must be freed, not kept until the next input change, so the heap
// after the last wave stays near its level after the first.
//
// It is not parallel: it measures the heap of the whole test binary.
func TestServerFreesDisconnectedViews(t *testing.T) {
	if testing.Short() {
		t.Skip("connects thousands of streams")
	}
	const (
		nodes = 1000
		waves = 4
	)
	// The server logs nowhere: the test log would keep every line in
	// memory and be measured with the views.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := NewServer(ctx, slog.New(slog.DiscardHandler), Options{Debounce: 10 * time.Millisecond})
	g := grpc.NewServer()
	s.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	addr := lis.Addr().String()
	lookup := loadMesh(t, "testdata/mesh.yaml")
	greeter := lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "greeter"})
	var extra []*v1alpha1.Resource
	for i := range nodes {
		r := greeter.DeepCopy()
		r.Name = fmt.Sprintf("load-%d", i)
		extra = append(extra, r)
	}
	lookup = lookup.With(lookup.Revision()+1, extra, nil)
	s.Update(lookup, fixtureEndpoints())

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := discovery.NewAggregatedDiscoveryServiceClient(conn)

	// connect opens one stream for a node, waits for its listeners (so its
	// view was built and pushed) and closes the stream.
	connect := func(name string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		stream, err := client.StreamAggregatedResources(ctx)
		if err != nil {
			return err
		}
		node := &corev3.Node{Id: "mesh/demo/virtualNode/" + name, UserAgentName: "envoy"}
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
			return err
		}
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ListenerType}); err != nil {
			return err
		}
		for {
			r, err := stream.Recv()
			if err != nil {
				return fmt.Errorf("node %s: %w", name, err)
			}
			if r.TypeUrl == resource.ListenerType {
				return nil
			}
		}
	}
	wave := func() {
		t.Helper()
		work := make(chan int)
		errs := make(chan error, nodes)
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					if err := connect(fmt.Sprintf("load-%d", i)); err != nil {
						errs <- err
					}
				}
			}()
		}
		for i := range nodes {
			work <- i
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// Every node's state and cache entry goes once its stream closed.
		deadline := time.Now().Add(30 * time.Second)
		for {
			s.mu.Lock()
			left, streams := len(s.nodes), len(s.streams)
			s.mu.Unlock()
			ads, plain := len(s.ads.GetStatusKeys()), len(s.plain.GetStatusKeys())
			if left == 0 && streams == 0 && ads == 0 && plain == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after disconnecting: %d node states, %d streams, %d+%d cache entries remain", left, streams, ads, plain)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}

	wave()
	base := heap()
	var last uint64
	for i := 2; i <= waves; i++ {
		wave()
		last = heap()
		t.Logf("wave %d: heap %.1f MB (after wave 1: %.1f MB)", i, float64(last)/1e6, float64(base)/1e6)
	}
	// The hasher forgets the objects of views that are gone: what it
	// still holds is shared by every view of the input, far fewer than
	// one per node.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		h := s.hash
		s.mu.Unlock()
		if n := h.len(); n < nodes {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the hasher still remembers %d objects after every data plane left", n)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	// Views kept per wave grew the heap by several times its size after
	// the first wave, every wave; allow a quarter of that size for noise
	// (gRPC buffers, pools), and nothing that grows with the waves.
	perWave := float64(base) / 4
	if grown := float64(last) - float64(base); grown > perWave {
		t.Fatalf("heap grew by %.1f MB over %d waves of %d data planes (%.1f MB after the first): disconnected views are kept",
			grown/1e6, waves-1, nodes, float64(base)/1e6)
	}
}
