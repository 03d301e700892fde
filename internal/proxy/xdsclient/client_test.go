package xdsclient

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	mcorev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

const nodeID = "mesh/demo/virtualNode/greeter"

// ---- resources ----

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

func listener(t testing.TB, rds string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     "egress",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: rds, ConfigSource: ads()}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}},
	}
	return &listenerv3.Listener{
		Name: "lds_egress_0.0.0.0_15001",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15001},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)},
		}}}},
	}
}

// routes splits "/" between clusters a and b by weight; a non-empty
// regex adds a route matching it.
func routes(name string, wa, wb uint32, regex string) *routev3.RouteConfiguration {
	vh := &routev3.VirtualHost{Name: "svc", Domains: []string{"*"}}
	if regex != "" {
		vh.Routes = append(vh.Routes, &routev3.Route{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: regex}}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "a"}}},
		})
	}
	vh.Routes = append(vh.Routes, &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
			Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(wa)}, {Name: "b", Weight: wrapperspb.UInt32(wb)}},
		}}}},
	})
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{vh}}
}

func cluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name + "-svc"},
	}
}

func assignment(name string, ips ...string) *endpointv3.ClusterLoadAssignment {
	out := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	if len(ips) == 0 {
		return out
	}
	loc := &endpointv3.LocalityLbEndpoints{}
	for _, ip := range ips {
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080},
			}}},
		}}})
	}
	out.Endpoints = []*endpointv3.LocalityLbEndpoints{loc}
	return out
}

// view is one version of the node's configuration.
type view struct {
	version    string
	rds        string // the route configuration the listener names
	routes     []*routev3.RouteConfiguration
	wa, wb     uint32
	clusterB   bool
	extraRoute string
}

func (v view) snapshot(t testing.TB) *cachev3.Snapshot {
	t.Helper()
	rs := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {listener(t, v.rds)},
		resourcev3.ClusterType:  {cluster("a"), cluster("b")},
		// b's assignment is empty: it counts as received.
		resourcev3.EndpointType: {assignment("a-svc", "10.0.0.1", "10.0.0.2"), assignment("b-svc")},
	}
	for _, r := range v.routes {
		rs[resourcev3.RouteType] = append(rs[resourcev3.RouteType], r)
	}
	s, err := cachev3.NewSnapshot(v.version, rs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func goodView(version string, wa, wb uint32) view {
	return view{version: version, rds: "rds_egress_http_15001", routes: []*routev3.RouteConfiguration{routes("rds_egress_http_15001", wa, wb, "")}}
}

// ---- test control plane ----

// controlPlane is go-control-plane's own server and snapshot cache on a
// loopback port, recording every request it receives.
type controlPlane struct {
	cache cachev3.SnapshotCache
	addr  string

	mu   sync.Mutex
	reqs []seen
	srv  *grpc.Server
	gen  int
}

type seen struct {
	gen    int // which start of the server saw it
	stream int64
	req    *discoveryv3.DiscoveryRequest
}

func newControlPlane(t *testing.T) *controlPlane {
	cp := &controlPlane{cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)}
	cp.start(t, "127.0.0.1:0")
	return cp
}

func (cp *controlPlane) start(t *testing.T, addr string) {
	t.Helper()
	var lis net.Listener
	var err error
	// A restart reuses the port, which the old server may hold for a
	// moment while it shuts down.
	deadline := time.Now().Add(5 * time.Second)
	for {
		lis, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	cp.mu.Lock()
	cp.gen++
	gen := cp.gen
	cp.mu.Unlock()
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(id int64, r *discoveryv3.DiscoveryRequest) error {
		cp.mu.Lock()
		cp.reqs = append(cp.reqs, seen{gen, id, proto.Clone(r).(*discoveryv3.DiscoveryRequest)})
		cp.mu.Unlock()
		return nil
	}}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, cp.cache, cb))
	cp.mu.Lock()
	cp.srv = g
	cp.mu.Unlock()
	go g.Serve(lis)
	t.Cleanup(func() { cancel(); g.Stop() })
}

func (cp *controlPlane) stop() {
	cp.mu.Lock()
	g := cp.srv
	cp.mu.Unlock()
	g.Stop()
}

func (cp *controlPlane) set(t testing.TB, v view) {
	t.Helper()
	if err := cp.cache.SetSnapshot(context.Background(), nodeID, v.snapshot(t)); err != nil {
		t.Fatal(err)
	}
}

// requests returns the requests seen so far that pass keep.
func (cp *controlPlane) requests(keep func(seen) bool) []seen {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var out []seen
	for _, s := range cp.reqs {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// ---- client harness ----

type harness struct {
	client  *Client
	applied chan *table.Snapshot
	cancel  context.CancelFunc
	done    chan error
}

func startClient(t *testing.T, addr string, tweak func(*Config)) *harness {
	t.Helper()
	h := &harness{applied: make(chan *table.Snapshot, 32), done: make(chan error, 1)}
	cfg := Config{
		Server:  addr,
		Node:    NewNode(nodeID, "greeter", "test"),
		Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := New(cfg, func(s *table.Snapshot) error { h.applied <- s; return nil })
	if err != nil {
		t.Fatal(err)
	}
	h.client = c
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

const wait = 10 * time.Second

func (h *harness) next(t *testing.T) *table.Snapshot {
	t.Helper()
	select {
	case s := <-h.applied:
		return s
	case <-time.After(wait):
		t.Fatalf("no snapshot applied in %s (last error: %v)", wait, h.client.LastError())
		return nil
	}
}

func (h *harness) none(t *testing.T) {
	t.Helper()
	select {
	case s := <-h.applied:
		t.Fatalf("unexpected snapshot applied: versions %v", s.Versions)
	default:
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// weights reads the a/b split of the applied route.
func weights(t *testing.T, s *table.Snapshot) (a, b uint32) {
	t.Helper()
	rt := s.Routes["rds_egress_http_15001"]
	if rt == nil {
		t.Fatalf("no route table in %v", s.Routes)
	}
	r := rt.VirtualHosts[0].Routes[len(rt.VirtualHosts[0].Routes)-1]
	return r.Clusters[0].Weight, r.Clusters[1].Weight
}

func acked(typ, version string) func(seen) bool {
	return func(s seen) bool {
		return s.req.GetTypeUrl() == typ && s.req.GetVersionInfo() == version && s.req.GetResponseNonce() != "" && s.req.GetErrorDetail() == nil
	}
}

// ---- tests ----

func TestAppliesCompleteSnapshotAndUpdates(t *testing.T) {
	cp := newControlPlane(t)
	cp.set(t, goodView("1", 80, 20))
	h := startClient(t, cp.addr, nil)

	s := h.next(t)
	if a, b := weights(t, s); a != 80 || b != 20 {
		t.Errorf("weights %d/%d, want 80/20", a, b)
	}
	if n := len(s.Clusters["a"].Endpoints); n != 2 {
		t.Errorf("cluster a has %d endpoints, want 2", n)
	}
	if n := len(s.Clusters["b"].Endpoints); n != 0 {
		t.Errorf("cluster b has %d endpoints, want 0 (empty assignment)", n)
	}
	if len(s.Listeners) != 1 || s.Listeners[0].Chains[0].HTTP.Routes != s.Routes["rds_egress_http_15001"] {
		t.Errorf("listener not wired to its RDS table")
	}
	for _, typ := range subscribed {
		if s.Versions[typ] != "1" {
			t.Errorf("snapshot version of %s = %q, want 1", typ, s.Versions[typ])
		}
	}
	eventually(t, "ACKs of every type", func() bool {
		for _, typ := range subscribed {
			if len(cp.requests(acked(typ, "1"))) == 0 {
				return false
			}
		}
		return true
	})
	if !h.client.Connected() {
		t.Error("not Connected")
	}
	if v := h.client.Versions(); v[resourcev3.RouteType] != "1" {
		t.Errorf("Versions() = %v", v)
	}
	// The EDS subscription names the service names, not the clusters.
	eds := cp.requests(acked(resourcev3.EndpointType, "1"))
	if got := strings.Join(eds[len(eds)-1].req.GetResourceNames(), ","); got != "a-svc,b-svc" {
		t.Errorf("EDS subscription %q, want a-svc,b-svc", got)
	}
	// The node goes on the first request of the stream only.
	first := cp.requests(func(seen) bool { return true })
	if first[0].req.GetNode().GetId() != nodeID || first[0].req.GetNode().GetUserAgentName() != "meshlens-proxy" {
		t.Errorf("first request node %v", first[0].req.GetNode())
	}

	// (2) new weights: a new snapshot.
	cp.set(t, goodView("2", 50, 50))
	for {
		s = h.next(t)
		if s.Versions[resourcev3.RouteType] == "2" {
			break
		}
	}
	if a, b := weights(t, s); a != 50 || b != 50 {
		t.Errorf("weights %d/%d after the update, want 50/50", a, b)
	}
	if h.client.LastError() != nil {
		t.Errorf("LastError = %v", h.client.LastError())
	}
}

func TestNACKKeepsPreviousSnapshot(t *testing.T) {
	cp := newControlPlane(t)
	cp.set(t, goodView("1", 80, 20))
	h := startClient(t, cp.addr, nil)
	h.next(t)
	eventually(t, "RDS ACK of version 1", func() bool { return len(cp.requests(acked(resourcev3.RouteType, "1"))) > 0 })

	bad := goodView("2", 80, 20)
	bad.routes = []*routev3.RouteConfiguration{routes("rds_egress_http_15001", 80, 20, "/r/([0-9]+")}
	cp.set(t, bad)
	var nack seen
	eventually(t, "a NACK with the reason", func() bool {
		n := cp.requests(func(s seen) bool { return s.req.GetErrorDetail() != nil })
		if len(n) > 0 {
			nack = n[0]
		}
		return len(n) > 0
	})
	r := nack.req
	if r.GetTypeUrl() != resourcev3.RouteType || r.GetVersionInfo() != "1" || r.GetResponseNonce() == "" {
		t.Errorf("NACK %s version %q nonce %q, want RDS, version 1 and the response's nonce", r.GetTypeUrl(), r.GetVersionInfo(), r.GetResponseNonce())
	}
	if r.GetErrorDetail().GetCode() != 3 {
		t.Errorf("NACK code %d, want INVALID_ARGUMENT (3)", r.GetErrorDetail().GetCode())
	}
	want := "route config rds_egress_http_15001: virtual_hosts[0].routes[0].match.safe_regex: error parsing regexp: missing closing )"
	if !strings.Contains(r.GetErrorDetail().GetMessage(), want) {
		t.Errorf("NACK message %q, want it to contain %q", r.GetErrorDetail().GetMessage(), want)
	}
	if err := h.client.LastError(); err == nil || !strings.Contains(err.Error(), "error parsing regexp") {
		t.Errorf("LastError = %v", err)
	}
	// Compiling happens before the NACK is sent: nothing was applied.
	h.none(t)
	if v := h.client.Versions()[resourcev3.RouteType]; v != "1" {
		t.Errorf("accepted RDS version %q after the NACK, want 1", v)
	}

	// A fixed version is accepted again.
	cp.set(t, goodView("3", 10, 90))
	for {
		s := h.next(t)
		if s.Versions[resourcev3.RouteType] == "3" {
			if a, b := weights(t, s); a != 10 || b != 90 {
				t.Errorf("weights %d/%d, want 10/90", a, b)
			}
			break
		}
	}
}

func TestReconnects(t *testing.T) {
	cp := newControlPlane(t)
	cp.set(t, goodView("1", 80, 20))
	var mu sync.Mutex
	var changes []bool
	h := startClient(t, cp.addr, func(c *Config) {
		c.OnConnectionChange = func(up bool) { mu.Lock(); changes = append(changes, up); mu.Unlock() }
	})
	h.next(t)
	eventually(t, "ACKs of version 1", func() bool { return len(cp.requests(acked(resourcev3.RouteType, "1"))) > 0 })

	// (4) The server goes away: no apply, the client keeps trying.
	cp.stop()
	eventually(t, "Connected() to turn false", func() bool { return !h.client.Connected() })
	eventually(t, "LastError to report the stream", func() bool {
		err := h.client.LastError()
		return err != nil && strings.Contains(err.Error(), "ads stream")
	})
	h.none(t)

	// Restarted on the same address with a changed configuration.
	cp.set(t, goodView("2", 30, 70))
	cp.start(t, cp.addr)
	var s *table.Snapshot
	for {
		s = h.next(t)
		if s.Versions[resourcev3.RouteType] == "2" {
			break
		}
	}
	if a, b := weights(t, s); a != 30 || b != 70 {
		t.Errorf("weights %d/%d after reconnecting, want 30/70", a, b)
	}
	if !h.client.Connected() {
		t.Error("not Connected after reconnecting")
	}
	mu.Lock()
	if got := fmt.Sprint(changes); got != "[true false true]" {
		t.Errorf("connection changes %s, want [true false true]", got)
	}
	mu.Unlock()
	// The new stream resubscribed at once, to everything, with the
	// versions already accepted.
	got := map[string]string{}
	eventually(t, "the server to see the four subscriptions", func() bool {
		for _, r := range cp.requests(func(s seen) bool { return s.gen == 2 && s.req.GetResponseNonce() == "" }) {
			got[r.req.GetTypeUrl()] = r.req.GetVersionInfo() + " " + strings.Join(r.req.GetResourceNames(), ",")
		}
		return len(got) == len(subscribed)
	})
	want := map[string]string{
		resourcev3.ClusterType:  "1 ",
		resourcev3.ListenerType: "1 ",
		resourcev3.RouteType:    "1 rds_egress_http_15001",
		resourcev3.EndpointType: "1 a-svc,b-svc",
	}
	for typ, w := range want {
		if got[typ] != w {
			t.Errorf("resubscription to %s: %q, want %q", typ, got[typ], w)
		}
	}
}

func TestUnchangedResendIsNotReapplied(t *testing.T) {
	cp := newControlPlane(t)
	cp.set(t, goodView("1", 80, 20))
	h := startClient(t, cp.addr, nil)
	h.next(t)
	eventually(t, "ACKs of version 1", func() bool { return len(cp.requests(acked(resourcev3.EndpointType, "1"))) > 0 })
	cp.stop()
	eventually(t, "disconnect", func() bool { return !h.client.Connected() })
	before := len(cp.requests(func(seen) bool { return true }))
	cp.start(t, cp.addr)
	// The server resends version 1 on the new stream; the client ACKs
	// every type without building a snapshot.
	eventually(t, "ACKs on the new stream", func() bool {
		reqs := cp.requests(func(seen) bool { return true })[before:]
		n := 0
		for _, r := range reqs {
			if r.req.GetResponseNonce() != "" && r.req.GetVersionInfo() == "1" && r.req.GetErrorDetail() == nil {
				n++
			}
		}
		return n >= len(subscribed)
	})
	h.none(t)
}

func TestWarming(t *testing.T) {
	cp := newControlPlane(t)
	// (5) The listener names a route configuration the server does not
	// have yet.
	v := goodView("1", 80, 20)
	v.rds, v.routes = "rds_later", nil
	cp.set(t, v)
	h := startClient(t, cp.addr, nil)
	// The server has no such route configuration, so it never answers
	// that subscription.
	eventually(t, "the subscription to rds_later", func() bool {
		return len(cp.requests(func(s seen) bool {
			return s.req.GetTypeUrl() == resourcev3.RouteType && strings.Join(s.req.GetResourceNames(), ",") == "rds_later"
		})) > 0
	})
	eventually(t, "CDS, LDS and EDS ACKs", func() bool {
		return len(cp.requests(acked(resourcev3.ListenerType, "1"))) > 0 && len(cp.requests(acked(resourcev3.EndpointType, "1"))) > 0
	})
	h.none(t) // no half snapshot
	if h.client.LastError() != nil {
		t.Errorf("warming is not an error: %v", h.client.LastError())
	}

	v2 := v
	v2.version = "2"
	v2.routes = []*routev3.RouteConfiguration{routes("rds_later", 60, 40, "")}
	cp.set(t, v2)
	var s *table.Snapshot
	for {
		s = h.next(t)
		if s.Routes["rds_later"] != nil {
			break
		}
	}
	if r := s.Listeners[0].Chains[0].HTTP.Routes; r.Name != "rds_later" || len(r.VirtualHosts) != 1 {
		t.Errorf("listener routes %q with %d virtual hosts", r.Name, len(r.VirtualHosts))
	}
}

func TestWarmingTimeoutAppliesWhatThereIs(t *testing.T) {
	cp := newControlPlane(t)
	v := goodView("1", 80, 20)
	v.rds, v.routes = "rds_never", nil
	cp.set(t, v)
	h := startClient(t, cp.addr, func(c *Config) { c.WarmingTimeout = 50 * time.Millisecond })
	s := h.next(t)
	rt := s.Listeners[0].Chains[0].HTTP.Routes
	if rt.Name != "rds_never" || len(rt.VirtualHosts) != 0 {
		t.Errorf("route table %q with %d virtual hosts, want the empty stand-in", rt.Name, len(rt.VirtualHosts))
	}
	if len(s.Clusters["a"].Endpoints) != 2 {
		t.Errorf("cluster a: %d endpoints", len(s.Clusters["a"].Endpoints))
	}
}

func TestApplyErrorIsNACKed(t *testing.T) {
	cp := newControlPlane(t)
	cp.set(t, goodView("1", 80, 20))
	c, err := New(Config{Server: cp.addr, Node: NewNode(nodeID, "greeter", "test")}, func(*table.Snapshot) error {
		return errFull
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "a NACK carrying the apply error", func() bool {
		return len(cp.requests(func(s seen) bool {
			return strings.Contains(s.req.GetErrorDetail().GetMessage(), "apply: listener port taken")
		})) > 0
	})
}

var errFull = errorString("listener port taken")

type errorString string

func (e errorString) Error() string { return string(e) }

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	apply := func(*table.Snapshot) error { return nil }
	for _, cfg := range []Config{{}, {Server: "x"}, {Server: "x", Node: &mcorev3.Node{}}} {
		if _, err := New(cfg, apply); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{Server: "x", Node: NewNode("id", "c", "v")}, nil); err == nil {
		t.Error("New without apply accepted")
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2}
	for n, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		for range 20 {
			d := b.delay(n)
			if d < want*8/10 || d > want*12/10 {
				t.Fatalf("delay(%d) = %s, want %s ±20%%", n, d, want)
			}
		}
	}
	if d := b.delay(1000); d > 1200*time.Millisecond {
		t.Errorf("delay(1000) = %s", d)
	}
}

// TestFailsOverToAnotherReplica: given several control-plane replicas,
// the client holds one stream; when its replica dies it keeps the last
// good configuration, opens a stream on another replica at once,
// resubscribes with the versions it accepted (and no nonce, as on any
// new stream), and follows the new replica's changes.
func TestFailsOverToAnotherReplica(t *testing.T) {
	a := newControlPlane(t)
	b := &controlPlane{cache: a.cache} // two replicas serving one state
	b.start(t, "127.0.0.1:0")
	a.set(t, goodView("1", 80, 20))
	h := startClient(t, a.addr+","+b.addr, nil)
	h.next(t)
	on := func(cp *controlPlane) bool { return len(cp.requests(acked(resourcev3.RouteType, "1"))) > 0 }
	eventually(t, "ACKs of version 1", func() bool { return on(a) || on(b) })
	first, second := a, b
	if on(b) {
		first, second = b, a
	}
	if on(second) {
		t.Fatal("the client holds streams on both replicas")
	}

	first.stop()
	got := map[string]string{}
	eventually(t, "the other replica to see the four resubscriptions", func() bool {
		for _, r := range second.requests(func(s seen) bool { return s.req.GetResponseNonce() == "" }) {
			got[r.req.GetTypeUrl()] = r.req.GetVersionInfo()
		}
		return len(got) == len(subscribed)
	})
	for typ, v := range got {
		if v != "1" {
			t.Errorf("resubscription to %s on the new replica at version %q, want the accepted 1", typ, v)
		}
	}
	// The resent version 1 is not applied again: the data path kept it.
	time.Sleep(100 * time.Millisecond)
	h.none(t)

	a.set(t, goodView("2", 30, 70))
	s := h.next(t)
	if a, b := weights(t, s); s.Versions[resourcev3.RouteType] != "2" || a != 30 || b != 70 {
		t.Fatalf("after failing over: version %s weights %d/%d, want 2 and 30/70", s.Versions[resourcev3.RouteType], a, b)
	}
}
