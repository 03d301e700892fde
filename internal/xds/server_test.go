package xds

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/store"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// testLogger sends the server's logs to the test log until the test ends
// (stream goroutines may still log while the server shuts down).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// startServer serves a Server on a loopback port.
func startServer(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := NewServer(ctx, testLogger(t), opts)
	g := grpc.NewServer()
	s.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(func() {
		g.Stop()
		cancel()
	})
	return s, lis.Addr().String()
}

// adsClient plays Envoy on one ADS stream: it subscribes to every
// listener and cluster, then to the routes and endpoints they name, and
// ACKs (or NACKs) what it receives.
type adsClient struct {
	t      testing.TB
	node   *corev3.Node
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	cancel context.CancelFunc
	resps  chan *discovery.DiscoveryResponse
	errs   chan error

	// state per type URL
	last  map[string]*discovery.DiscoveryResponse // last response received
	acked map[string]string                       // last version accepted
	names map[string][]string                     // names subscribed (EDS, RDS)
	// nack, when it returns a message for a response, rejects it.
	nack func(*discovery.DiscoveryResponse) string
}

func dialADS(t testing.TB, addr, nodeID string) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &adsClient{
		t: t, stream: stream, cancel: cancel,
		node:  &corev3.Node{Id: nodeID, Cluster: "test", UserAgentName: "envoy", UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "test"}},
		resps: make(chan *discovery.DiscoveryResponse, 64), errs: make(chan error, 1),
		last: map[string]*discovery.DiscoveryResponse{}, acked: map[string]string{}, names: map[string][]string{},
	}
	t.Cleanup(cancel)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				c.errs <- err
				return
			}
			c.resps <- r
		}
	}()
	// Envoy asks for clusters and listeners first, with no names.
	c.send(resource.ClusterType, nil, "", "", nil)
	c.send(resource.ListenerType, nil, "", "", nil)
	return c
}

func (c *adsClient) send(typeURL string, names []string, version, nonce string, errDetail *rpcstatus.Status) {
	c.t.Helper()
	err := c.stream.Send(&discovery.DiscoveryRequest{
		Node: c.node, TypeUrl: typeURL, ResourceNames: names,
		VersionInfo: version, ResponseNonce: nonce, ErrorDetail: errDetail,
	})
	if err != nil && err != io.EOF {
		c.t.Fatalf("send %s: %v", typeURL, err)
	}
}

// handle ACKs (or NACKs) one response and subscribes to what it names.
func (c *adsClient) handle(r *discovery.DiscoveryResponse) {
	c.last[r.TypeUrl] = r
	if c.nack != nil {
		if msg := c.nack(r); msg != "" {
			c.send(r.TypeUrl, c.names[r.TypeUrl], c.acked[r.TypeUrl], r.Nonce, &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: msg})
			return
		}
	}
	c.acked[r.TypeUrl] = r.VersionInfo
	c.send(r.TypeUrl, c.names[r.TypeUrl], r.VersionInfo, r.Nonce, nil)
	var dep string
	var want []string
	switch r.TypeUrl {
	case resource.ClusterType:
		dep = resource.EndpointType
		for _, cl := range clustersOf(c.t, r) {
			if cl.GetType() == clusterv3.Cluster_EDS {
				want = append(want, cl.Name)
			}
		}
	case resource.ListenerType:
		dep = resource.RouteType
		for _, l := range listenersOf(c.t, r) {
			want = append(want, routeNames(l)...)
		}
	default:
		return
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if slices.Equal(want, c.names[dep]) {
		return
	}
	c.names[dep] = want
	var nonce string
	if l := c.last[dep]; l != nil {
		nonce = l.Nonce
	}
	c.send(dep, want, c.acked[dep], nonce, nil)
}

// next waits for the next response and handles it.
func (c *adsClient) next(timeout time.Duration) (*discovery.DiscoveryResponse, bool) {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.handle(r)
		return r, true
	case err := <-c.errs:
		c.t.Fatalf("stream: %v", err)
	case <-time.After(timeout):
	}
	return nil, false
}

// until handles responses until cond holds, failing after timeout.
func (c *adsClient) until(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		c.next(left)
	}
}

// settle handles responses until none has come for 100ms, so that the
// server has seen every ACK before the test changes something.
func (c *adsClient) settle() {
	c.t.Helper()
	for {
		if _, ok := c.next(100 * time.Millisecond); !ok {
			return
		}
	}
}

// synced reports whether all four types were received.
func (c *adsClient) synced() bool {
	for _, t := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		if c.last[t] == nil {
			return false
		}
	}
	return true
}

func unpack[T proto.Message](t testing.TB, r *discovery.DiscoveryResponse, newT func() T) []T {
	t.Helper()
	var out []T
	for _, a := range r.GetResources() {
		m := newT()
		if err := a.UnmarshalTo(m); err != nil {
			t.Fatalf("unpack %s: %v", a.TypeUrl, err)
		}
		out = append(out, m)
	}
	return out
}

func clustersOf(t testing.TB, r *discovery.DiscoveryResponse) []*clusterv3.Cluster {
	return unpack(t, r, func() *clusterv3.Cluster { return &clusterv3.Cluster{} })
}

func listenersOf(t testing.TB, r *discovery.DiscoveryResponse) []*listenerv3.Listener {
	return unpack(t, r, func() *listenerv3.Listener { return &listenerv3.Listener{} })
}

func routesOf(t testing.TB, r *discovery.DiscoveryResponse) []*routev3.RouteConfiguration {
	return unpack(t, r, func() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} })
}

func claOf(t testing.TB, r *discovery.DiscoveryResponse, name string) *endpointv3.ClusterLoadAssignment {
	for _, cla := range unpack(t, r, func() *endpointv3.ClusterLoadAssignment { return &endpointv3.ClusterLoadAssignment{} }) {
		if cla.ClusterName == name {
			return cla
		}
	}
	return nil
}

func names[T interface{ GetName() string }](xs []T) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.GetName())
	}
	return out
}

// routeWeights returns the weights of the named route of a virtual host
// in an outbound route configuration.
func routeWeights(t testing.TB, r *discovery.DiscoveryResponse, vhost, route string) map[string]uint32 {
	t.Helper()
	for _, rc := range routesOf(t, r) {
		for _, vh := range rc.VirtualHosts {
			if vh.Name != vhost {
				continue
			}
			for _, rt := range vh.Routes {
				if rt.Name == route {
					out := map[string]uint32{}
					for _, w := range rt.GetRoute().GetWeightedClusters().GetClusters() {
						out[w.Name] = w.GetWeight().GetValue()
					}
					return out
				}
			}
		}
	}
	return nil
}

// withRoute returns the lookup with one route's weighted targets replaced.
func withRouteTargets(t testing.TB, l *store.Snapshot, router, route string, wts []v1alpha1.WeightedTarget) *store.Snapshot {
	t.Helper()
	old := l.Get(v1alpha1.Key{Kind: v1alpha1.KindRoute, Mesh: "demo", Parent: router, Name: route})
	if old == nil {
		t.Fatalf("no route %s/%s", router, route)
	}
	r := old.DeepCopy()
	switch {
	case r.RouteSpec.HTTPRoute != nil:
		r.RouteSpec.HTTPRoute.Action.WeightedTargets = wts
	case r.RouteSpec.GRPCRoute != nil:
		r.RouteSpec.GRPCRoute.Action.WeightedTargets = wts
	}
	return l.With(l.Revision()+1, []*v1alpha1.Resource{r}, nil)
}

// TestServerADS is not parallel: it asserts latencies (a route change
// within 1s), which CPU-heavy parallel tests would distort.
func TestServerADS(t *testing.T) {
	s, addr := startServer(t, Options{Debounce: 20 * time.Millisecond, ClusterGrace: 300 * time.Millisecond})
	lookup := loadMesh(t, "testdata/mesh.yaml")
	eps := fixtureEndpoints()
	s.Update(lookup, eps)

	c := dialADS(t, addr, "mesh/demo/virtualNode/greeter")
	c.until(10*time.Second, "the first configuration", c.synced)
	if got := sorted(names(listenersOf(t, c.last[resource.ListenerType]))); !slices.Equal(got, []string{xdsmeta.OutboundListenerName, xdsmeta.InboundListenerName}) {
		t.Fatalf("listeners = %v", got)
	}
	routes := names(routesOf(t, c.last[resource.RouteType]))
	for _, want := range []string{xdsmeta.OutboundRouteName, "rds_ingress_http_8080", "rds_ingress_grpc_9080"} {
		if !slices.Contains(routes, want) {
			t.Fatalf("routes %v lack %s", routes, want)
		}
	}
	if cla := claOf(t, c.last[resource.EndpointType], "cds_egress_demo_colors-red_http_8080"); cla == nil || countEndpoints(cla) != 3 {
		t.Fatalf("colors-red load assignment = %v, want 3 endpoints", cla)
	}
	c.settle()

	t.Run("route weights change reaches the client within 1s", func(t *testing.T) {
		c.t = t
		rdsBefore, ldsBefore, cdsBefore := c.acked[resource.RouteType], c.acked[resource.ListenerType], c.acked[resource.ClusterType]
		lookup = withRouteTargets(t, lookup, "colors", "default", []v1alpha1.WeightedTarget{
			{VirtualNode: "colors-red", Weight: 10}, {VirtualNode: "colors-blue", Weight: 90},
		})
		start := time.Now()
		s.Update(lookup, eps)
		c.until(time.Second, "a new RDS version", func() bool { return c.acked[resource.RouteType] != rdsBefore })
		t.Logf("route change took %v", time.Since(start))
		w := routeWeights(t, c.last[resource.RouteType], "colors.demo.local:8080", "default")
		if w["cds_egress_demo_colors-red_http_8080"] != 10 || w["cds_egress_demo_colors-blue_http_8080"] != 90 {
			t.Fatalf("weights = %v", w)
		}
		if c.acked[resource.ListenerType] != ldsBefore {
			t.Fatalf("unchanged listeners got a new version")
		}
		if c.acked[resource.ClusterType] != cdsBefore {
			t.Fatalf("unchanged clusters got a new version")
		}
	})

	t.Run("a removed endpoint leaves the load assignment", func(t *testing.T) {
		c.t = t
		next := staticEndpoints{}
		for k, v := range eps {
			next[k] = v
		}
		next["demo/colors-red"] = slices.DeleteFunc(slices.Clone(eps["demo/colors-red"]), func(e Endpoint) bool { return e.Address == "10.0.1.3" })
		eps = next
		edsBefore := c.acked[resource.EndpointType]
		s.Update(lookup, eps)
		c.until(5*time.Second, "a new EDS version", func() bool { return c.acked[resource.EndpointType] != edsBefore })
		cla := claOf(t, c.last[resource.EndpointType], "cds_egress_demo_colors-red_http_8080")
		if cla == nil || countEndpoints(cla) != 2 {
			t.Fatalf("colors-red load assignment = %v, want 2 endpoints", cla)
		}
		for _, lle := range cla.Endpoints {
			for _, e := range lle.LbEndpoints {
				if e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress() == "10.0.1.3" {
					t.Fatalf("removed endpoint still listed: %v", cla)
				}
			}
		}
	})

	t.Run("a NACK is recorded and not resent", func(t *testing.T) {
		c.t = t
		rdsBefore := c.acked[resource.RouteType]
		c.nack = func(r *discovery.DiscoveryResponse) string {
			if r.TypeUrl == resource.RouteType {
				return "route rejected by test"
			}
			return ""
		}
		lookup = withRouteTargets(t, lookup, "colors", "default", []v1alpha1.WeightedTarget{
			{VirtualNode: "colors-red", Weight: 30}, {VirtualNode: "colors-blue", Weight: 70},
		})
		s.Update(lookup, eps)
		var rds int
		c.until(5*time.Second, "the RDS response to reject", func() bool { return c.last[resource.RouteType].VersionInfo != rdsBefore })
		rds++
		// Nothing more may come for routes: the rejected version is not resent.
		deadline := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if r, ok := c.next(time.Until(deadline)); ok && r.TypeUrl == resource.RouteType {
				rds++
			}
		}
		if rds != 1 {
			t.Fatalf("got %d RDS responses after the NACK, want the rejected one only", rds)
		}
		st := findNode(t, s, "mesh/demo/virtualNode/greeter")
		if st.NACKs != 1 || st.LastNACK == nil || st.LastNACK.Error != "route rejected by test" || st.LastNACK.TypeURL != resource.RouteType {
			t.Fatalf("node status = %+v, want one NACK recorded", st)
		}
		if got := st.Streams[0].Acked[resource.RouteType]; got != rdsBefore {
			t.Fatalf("acked RDS = %s, want the version before the NACK %s", got, rdsBefore)
		}
		// A new version is still delivered after a NACK.
		c.nack = nil
		lookup = withRouteTargets(t, lookup, "colors", "default", []v1alpha1.WeightedTarget{
			{VirtualNode: "colors-red", Weight: 40}, {VirtualNode: "colors-blue", Weight: 60},
		})
		s.Update(lookup, eps)
		c.until(5*time.Second, "a new RDS version after the NACK", func() bool {
			w := routeWeights(t, c.last[resource.RouteType], "colors.demo.local:8080", "default")
			return w["cds_egress_demo_colors-red_http_8080"] == 40 && c.acked[resource.RouteType] == c.last[resource.RouteType].VersionInfo
		})
	})

	t.Run("new clusters arrive before the routes that name them; removed ones linger", func(t *testing.T) {
		c.t = t
		// Route default now also sends to a brand-new node, colors-white.
		extra := &v1alpha1.Resource{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "colors-white",
			VirtualNodeSpec: &v1alpha1.VirtualNodeSpec{Listeners: []v1alpha1.Listener{{PortMapping: &v1alpha1.PortMapping{Port: 8080, Protocol: "http"}}}}}
		lookup = lookup.With(lookup.Revision()+1, []*v1alpha1.Resource{extra}, nil)
		lookup = withRouteTargets(t, lookup, "colors", "default", []v1alpha1.WeightedTarget{
			{VirtualNode: "colors-red", Weight: 50}, {VirtualNode: "colors-white", Weight: 50},
		})
		white := "cds_egress_demo_colors-white_http_8080"
		s.Update(lookup, eps)
		sawCluster := false
		c.until(5*time.Second, "a route naming colors-white", func() bool {
			if cl := c.last[resource.ClusterType]; cl != nil && slices.Contains(names(clustersOf(t, cl)), white) {
				sawCluster = true
			}
			w := routeWeights(t, c.last[resource.RouteType], "colors.demo.local:8080", "default")
			if _, ok := w[white]; ok {
				if !sawCluster {
					t.Fatalf("the route named %s before the cluster was pushed", white)
				}
				return true
			}
			return false
		})
		// Drop colors-blue from every route: its cluster must outlive the
		// route change, then go.
		blue := "cds_egress_demo_colors-blue_http_8080"
		for _, r := range []string{"api-v2", "headers"} {
			lookup = withRouteTargets(t, lookup, "colors", r, []v1alpha1.WeightedTarget{{VirtualNode: "colors-red", Weight: 1}})
		}
		rdsBefore := c.acked[resource.RouteType]
		s.Update(lookup, eps)
		c.until(5*time.Second, "routes without colors-blue", func() bool { return c.acked[resource.RouteType] != rdsBefore })
		if !slices.Contains(names(clustersOf(t, c.last[resource.ClusterType])), blue) {
			t.Fatalf("cluster %s was removed together with the routes naming it", blue)
		}
		c.until(5*time.Second, "colors-blue cluster to go", func() bool {
			return !slices.Contains(names(clustersOf(t, c.last[resource.ClusterType])), blue)
		})
	})

	t.Run("a reconnecting client gets the current state", func(t *testing.T) {
		want := map[string]string{}
		for k, v := range c.acked {
			want[k] = v
		}
		c.cancel()
		c2 := dialADS(t, addr, "arn:aws:appmesh:meshlens:000000000000:mesh/demo/virtualNode/greeter")
		c2.until(10*time.Second, "the configuration after reconnecting", func() bool {
			return c2.synced() && c2.acked[resource.RouteType] == want[resource.RouteType] &&
				c2.acked[resource.ClusterType] == want[resource.ClusterType]
		})
		w := routeWeights(t, c2.last[resource.RouteType], "colors.demo.local:8080", "default")
		if w["cds_egress_demo_colors-white_http_8080"] != 50 {
			t.Fatalf("reconnected client got stale routes: %v", w)
		}
	})
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

func countEndpoints(cla *endpointv3.ClusterLoadAssignment) int {
	n := 0
	for _, l := range cla.Endpoints {
		n += len(l.LbEndpoints)
	}
	return n
}

func findNode(t testing.TB, s *Server, id string) NodeStatus {
	t.Helper()
	checkConnected(t, s)
	for _, n := range s.Nodes() {
		if n.ID == id || n.Key == id {
			return n
		}
	}
	t.Fatalf("node %s not in %+v", id, s.Nodes())
	return NodeStatus{}
}

// checkConnected: Connected counts what Nodes lists (when no stream
// opens or closes in between).
func checkConnected(t testing.TB, s *Server) {
	t.Helper()
	byFlavour, streams := s.Connected()
	want, wantStreams := map[string]int{"envoy": 0, "proxyless": 0}, 0
	for _, n := range s.Nodes() {
		want[n.Flavour]++
		wantStreams += len(n.Streams)
	}
	if !maps.Equal(byFlavour, want) || streams != wantStreams {
		t.Errorf("Connected() = %v, %d streams; Nodes() lists %v, %d streams", byFlavour, streams, want, wantStreams)
	}
}

func TestServerRejectsInvalidNodeID(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond})
	s.Update(loadMesh(t, "testdata/mesh.yaml"), fixtureEndpoints())
	c := dialADS(t, addr, "greeter")
	select {
	case err := <-c.errs:
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "invalid node id") {
			t.Fatalf("stream error = %v, want InvalidArgument naming the node id", err)
		}
	case r := <-c.resps:
		t.Fatalf("an invalid node got configuration: %v", r)
	case <-time.After(5 * time.Second):
		t.Fatal("the stream of an invalid node was not closed")
	}
	if n := s.Nodes(); len(n) != 0 {
		t.Fatalf("Nodes() = %+v, want none", n)
	}
}

func TestServerNodesAndGateway(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond})
	gw := dialADS(t, addr, "mesh/demo/virtualGateway/ingress-gw")
	// The node connected before any Update: it is configured by the first.
	s.Update(loadMesh(t, "testdata/mesh.yaml"), fixtureEndpoints())
	gw.until(10*time.Second, "the gateway configuration", gw.synced)
	if got := sorted(names(listenersOf(t, gw.last[resource.ListenerType]))); !slices.Equal(got, []string{"lds_ingress_0.0.0.0_8088", "lds_ingress_0.0.0.0_9090"}) {
		t.Fatalf("gateway listeners = %v", got)
	}
	gw.until(5*time.Second, "ACKs recorded", func() bool {
		st := findNode(t, s, "mesh/demo/virtualGateway/ingress-gw")
		return len(st.Streams) == 1 && st.Streams[0].Acked[resource.RouteType] == st.Versions[resource.RouteType] &&
			st.Streams[0].Acked[resource.ClusterType] == st.Versions[resource.ClusterType]
	})
	st := findNode(t, s, "mesh/demo/virtualGateway/ingress-gw")
	if st.Kind != "virtualGateway" || st.Flavour != "envoy" || st.Streams[0].UserAgent != "envoy/test" {
		t.Fatalf("status = %+v", st)
	}
	gw.cancel()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Nodes()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a disconnected node is still listed: %+v", s.Nodes())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerDelta(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond})
	lookup := loadMesh(t, "testdata/mesh.yaml")
	eps := fixtureEndpoints()
	s.Update(lookup, eps)

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "mesh/demo/virtualNode/greeter", UserAgentName: "envoy"}
	resps := make(chan *discovery.DeltaDiscoveryResponse, 16)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				close(resps)
				return
			}
			resps <- r
		}
	}()
	recv := func(typeURL string) *discovery.DeltaDiscoveryResponse {
		t.Helper()
		for {
			select {
			case r, ok := <-resps:
				if !ok {
					t.Fatal("delta stream closed")
				}
				if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce}); err != nil {
					t.Fatal(err)
				}
				if r.TypeUrl == typeURL {
					return r
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no delta response for %s", typeURL)
			}
		}
	}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	cds := recv(resource.ClusterType)
	var edsNames []string
	for _, r := range cds.Resources {
		c := &clusterv3.Cluster{}
		if err := r.Resource.UnmarshalTo(c); err != nil {
			t.Fatal(err)
		}
		if c.GetType() == clusterv3.Cluster_EDS {
			edsNames = append(edsNames, c.Name)
		}
	}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.EndpointType, ResourceNamesSubscribe: edsNames}); err != nil {
		t.Fatal(err)
	}
	if eds := recv(resource.EndpointType); len(eds.Resources) != len(edsNames) {
		t.Fatalf("first EDS response has %d resources, want %d", len(eds.Resources), len(edsNames))
	}

	// Move one endpoint: only that cluster's load assignment is sent.
	next := staticEndpoints{}
	for k, v := range eps {
		next[k] = v
	}
	next["demo/colors-blue"] = []Endpoint{{Address: "10.0.3.9", Healthy: true}}
	s.Update(lookup, next)
	eds := recv(resource.EndpointType)
	if len(eds.Resources) != 1 || eds.Resources[0].Name != "cds_egress_demo_colors-blue_http_8080" {
		t.Fatalf("delta EDS update = %v, want only colors-blue", names(eds.Resources))
	}
	st := findNode(t, s, "mesh/demo/virtualNode/greeter")
	if len(st.Streams) != 1 || !st.Streams[0].Delta {
		t.Fatalf("status = %+v, want one delta stream", st)
	}
}
