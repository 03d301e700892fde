package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	endpointv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/endpoint/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	routerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/router/v3"
	httpinspectorv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/http_inspector/v3"
	originaldstv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/tcp_proxy/v3"
	httpv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

// ---- xDS builders: tests feed the runtime what the xDS client would,
// resources compiled by package table ----

func sockAddr(hostport string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		panic(err)
	}
	pv, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		panic(err)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(pv)},
	}}}
}

func mustAny(m xdsproto.Message) *anypb.Any {
	a, err := xdsproto.NewAny(m)
	if err != nil {
		panic(err)
	}
	return a
}

// xCluster is a STATIC cluster of healthy endpoints.
func xCluster(name string, addrs ...string) *clusterv3.Cluster {
	lle := &endpointv3.LocalityLbEndpoints{}
	for _, a := range addrs {
		lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(a)}},
		})
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment:       &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{lle}},
	}
}

// withHTTP2 makes a cluster speak HTTP/2 (h2c) upstream.
func withHTTP2(c *clusterv3.Cluster) *clusterv3.Cluster {
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		}),
	}
	return c
}

// xwc is a weighted cluster of a route or TCP proxy.
type xwc struct {
	name   string
	weight uint32
}

// xRoute forwards a path prefix to one cluster or weighted clusters.
func xRoute(prefix string, cs ...xwc) *routev3.Route {
	ra := &routev3.RouteAction{}
	if len(cs) == 1 {
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: cs[0].name}
	} else {
		w := &routev3.WeightedCluster{}
		for _, c := range cs {
			w.Clusters = append(w.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: c.name, Weight: wrapperspb.UInt32(c.weight)})
		}
		ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: w}
	}
	return &routev3.Route{
		Name:   "r" + prefix,
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: ra},
	}
}

func to(name string) xwc { return xwc{name, 1} }

func xVHost(name string, domains []string, routes ...*routev3.Route) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: routes}
}

func xRouteConfig(name string, vhs ...*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhs, ValidateClusters: wrapperspb.Bool(false)}
}

// xHCM is an HTTP connection manager taking its routes from RDS.
func xHCM(statPrefix, routeConfig string, mods ...func(*hcmv3.HttpConnectionManager)) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeConfig,
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}},
	}
	for _, m := range mods {
		m(hcm)
	}
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}
}

// xTCP is a tcp_proxy to weighted clusters; idle 0 leaves it unset.
func xTCP(statPrefix string, idle time.Duration, cs ...xwc) *listenerv3.Filter {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: statPrefix}
	if idle > 0 {
		tp.IdleTimeout = durationpb.New(idle)
	}
	if len(cs) == 1 {
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: cs[0].name}
	} else {
		w := &tcpproxyv3.TcpProxy_WeightedCluster{}
		for _, c := range cs {
			w.Clusters = append(w.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: c.name, Weight: c.weight})
		}
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: w}
	}
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
}

// xChain is a filter chain for a destination port (0: any).
func xChain(name string, port uint32, f *listenerv3.Filter) *listenerv3.FilterChain {
	fc := &listenerv3.FilterChain{Name: name, Filters: []*listenerv3.Filter{f}}
	if port != 0 {
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port)}
	}
	return fc
}

// xListener is a listener; sidecar listeners (lds_ingress_/lds_egress_
// with port 15000/15001) get the original_dst listener filter, as the
// control plane sends them.
func xListener(name, addr string, chains ...*listenerv3.FilterChain) *listenerv3.Listener {
	l := &listenerv3.Listener{Name: name, Address: sockAddr(addr), FilterChains: chains}
	if strings.HasSuffix(addr, ":15000") || strings.HasSuffix(addr, ":15001") {
		l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{
			Name: "envoy.filters.listener.original_dst", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originaldstv3.OriginalDst{})},
		})
	}
	return l
}

// withHTTPInspector adds the HTTP inspector listener filter.
func withHTTPInspector(l *listenerv3.Listener) *listenerv3.Listener {
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{
		Name: "envoy.filters.listener.http_inspector", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&httpinspectorv3.HttpInspector{})},
	})
	return l
}

// xds is one set of resources for a test.
type xds struct {
	gateway   bool
	listeners []*listenerv3.Listener
	routes    []*routev3.RouteConfiguration
	clusters  []*clusterv3.Cluster
}

// snap compiles the resources as the xDS client would.
func (x xds) snap(t testing.TB) *table.Snapshot {
	t.Helper()
	s, err := table.Compile(table.Resources{
		Listeners: x.listeners, Routes: x.routes, Clusters: x.clusters,
		Versions: map[string]string{typeListener: "1", typeCluster: "1", typeRoute: "1"},
	}, table.CompileOptions{Gateway: x.gateway})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

// ---- proxy under test ----

func quietLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startProxy runs a proxy with loopback, port-0 defaults and shuts it down
// at the end of the test.
func startProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = "127.0.0.1:0"
	}
	if cfg.EgressAddr == "" {
		cfg.EgressAddr = "127.0.0.1:0"
	}
	if cfg.IngressAddr == "" {
		cfg.IngressAddr = "127.0.0.1:0"
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "mesh/demo/virtualNode/test"
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = quietLog(t)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return p
}

func mustApply(t testing.TB, p *Proxy, s *table.Snapshot) {
	t.Helper()
	if err := p.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// addrOf is the bound address of a listener's socket (port 0: its own).
func addrOf(t testing.TB, p *Proxy, listener string, port uint32) string {
	t.Helper()
	for _, b := range p.Listeners() {
		if b.Listener == listener && b.Port == port {
			return b.Addr.String()
		}
	}
	t.Fatalf("listener %s (port %d) is not bound; have %+v", listener, port, p.Listeners())
	return ""
}

// ---- upstream test servers ----

// seenRequest is what a test upstream recorded of a request.
type seenRequest struct {
	Method, Host, Path, RawQuery, Proto string
	Header                              http.Header
	Body                                string
}

// upstreamServer is an HTTP server on loopback that records requests and
// answers with its name, unless handler is set.
type upstreamServer struct {
	name    string
	ln      net.Listener
	srv     *http.Server
	mu      sync.Mutex
	seen    []seenRequest
	count   atomic.Int64
	handler http.HandlerFunc
}

func (u *upstreamServer) Addr() string { return u.ln.Addr().String() }

func (u *upstreamServer) Seen() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

func (u *upstreamServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.count.Add(1)
	if u.handler != nil {
		u.handler(w, r)
		return
	}
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.seen = append(u.seen, seenRequest{Method: r.Method, Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Proto: r.Proto, Header: r.Header.Clone(), Body: string(b)})
	u.mu.Unlock()
	w.Header().Set("X-Upstream", u.name)
	_, _ = io.WriteString(w, u.name)
}

// startUpstream serves HTTP/1.1 and h2c on a loopback port.
func startUpstream(t testing.TB, name string, handler http.HandlerFunc) *upstreamServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstreamServer{name: name, ln: ln, handler: handler}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	u.srv = &http.Server{Handler: u, Protocols: protos, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = u.srv.Serve(ln) }()
	t.Cleanup(func() { _ = u.srv.Close() })
	return u
}

// testClient is an HTTP/1.1 client with keep-alive that never uses the
// environment's proxy settings.
func testClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}, Timeout: 20 * time.Second}
}

// h2cClient speaks HTTP/2 with prior knowledge.
func h2cClient() *http.Client {
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Proxy: nil, Protocols: protos}, Timeout: 20 * time.Second}
}

func get(t testing.TB, c *http.Client, url, host string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp, string(b)
}

// closedAddr is a loopback address that nothing listens on: connecting
// fails at once. The port stays bound, not listening, until the test
// ends, so no other test's listener can be given it (as a port merely
// closed again could be).
func closedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
