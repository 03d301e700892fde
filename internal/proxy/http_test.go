package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	egressName  = "lds_egress_0.0.0.0_15001"
	ingressName = "lds_ingress_0.0.0.0_15000"
)

// outbound is a sidecar's egress listener routing greeting.demo.local
// (port 9080 or none) to cluster, with more clusters if given.
func outbound(cluster *clusterv3.Cluster, extra ...*clusterv3.Cluster) xds {
	return xds{
		listeners: []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001", xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001")))},
		routes: []*routev3.RouteConfiguration{xRouteConfig("rds_egress_http_15001",
			xVHost("greeting.demo.local:9080", []string{"greeting.demo.local", "greeting.demo.local:9080"}, xRoute("/", to(cluster.Name))))},
		clusters: append([]*clusterv3.Cluster{cluster}, extra...),
	}
}

// egressRoutes is an egress listener with the given virtual hosts.
func egressRoutes(vhs []*routev3.VirtualHost, clusters ...*clusterv3.Cluster) xds {
	return xds{
		listeners: []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001", xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001")))},
		routes:    []*routev3.RouteConfiguration{xRouteConfig("rds_egress_http_15001", vhs...)},
		clusters:  clusters,
	}
}

func TestHTTP1ForwardProxyKeepAlive(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "greeting", nil)
	p := startProxy(t, Config{})
	mustApply(t, p, outbound(xCluster("cds_greeting", up.Addr())).snap(t))
	proxyURL, _ := url.Parse("http://" + addrOf(t, p, egressName, 0))

	// As HTTP_PROXY: absolute-URI requests on one kept-alive connection.
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	reused := 0
	for i := range 5 {
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://greeting.demo.local:9080/hello/%d?x=1", i), strings.NewReader("ping"))
		req.Header.Set("Connection", "X-Private")
		req.Header.Set("X-Private", "drop me")
		req.Header.Set("Keep-Alive", "timeout=5")
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) {
				if ci.Reused {
					reused++
				}
			},
		}))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "greeting" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
		if resp.Header.Get("X-Upstream") != "greeting" {
			t.Errorf("response header X-Upstream missing: %v", resp.Header)
		}
	}
	if reused != 4 {
		t.Errorf("downstream connection reused %d times, want 4 (keep-alive)", reused)
	}
	seen := up.Seen()
	if len(seen) != 5 {
		t.Fatalf("upstream saw %d requests, want 5", len(seen))
	}
	s := seen[0]
	if s.Host != "greeting.demo.local:9080" || s.Path != "/hello/0" || s.RawQuery != "x=1" || s.Body != "ping" || s.Method != "POST" {
		t.Errorf("upstream saw %+v", s)
	}
	for _, h := range []string{"X-Private", "Keep-Alive", "Proxy-Connection"} {
		if v := s.Header.Get(h); v != "" {
			t.Errorf("hop-by-hop header %s forwarded: %q", h, v)
		}
	}
	if s.Header.Get("X-Forwarded-For") != "127.0.0.1" || s.Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("x-forwarded-*: %v", s.Header)
	}
	if id := s.Header.Get("X-Request-Id"); len(id) != 36 || id[14] != '4' {
		t.Errorf("x-request-id %q is not a v4 UUID", id)
	}
	if seen[0].Header.Get("X-Request-Id") == seen[1].Header.Get("X-Request-Id") {
		t.Error("x-request-id repeated")
	}

	// By Host header (origin-form), and an unknown host gets Envoy's 404.
	direct := testClient()
	resp, body := get(t, direct, "http://"+addrOf(t, p, egressName, 0)+"/x", "greeting.demo.local", map[string]string{"X-Request-Id": "keep-me"})
	if resp.StatusCode != 200 || body != "greeting" {
		t.Fatalf("by Host: %d %q", resp.StatusCode, body)
	}
	if got := up.Seen()[5].Header.Get("X-Request-Id"); got != "keep-me" {
		t.Errorf("x-request-id replaced: %q", got)
	}
	resp, body = get(t, direct, "http://"+addrOf(t, p, egressName, 0)+"/x", "unknown.local", nil)
	if resp.StatusCode != 404 || body != "" {
		t.Errorf("unknown host: %d %q, want 404 with empty body", resp.StatusCode, body)
	}

	// A GET in absolute form (the codec's own parse, not net/http's) is
	// routed by the target's authority, whatever its Host field says.
	_, _, ar := rawRequest(t, addrOf(t, p, egressName, 0), "GET http://greeting.demo.local:9080/abs?q=1 HTTP/1.1\r\nHost: unknown.local\r\n\r\n", nil)
	ab, _ := io.ReadAll(ar.Body)
	if ar.StatusCode != 200 || string(ab) != "greeting" {
		t.Fatalf("absolute-form GET: %d %q", ar.StatusCode, ab)
	}
	if all := up.Seen(); len(all) != 7 {
		t.Errorf("upstream saw %d requests, want 7", len(all))
	} else if s := all[6]; s.Host != "greeting.demo.local:9080" || s.Path != "/abs" || s.RawQuery != "q=1" || s.Method != "GET" {
		t.Errorf("absolute-form GET: upstream saw %+v", s)
	}

	// CONNECT is routed by its authority: an unknown one gets 404.
	if _, _, r := rawRequest(t, addrOf(t, p, egressName, 0), "CONNECT unknown.local:443 HTTP/1.1\r\nHost: unknown.local:443\r\n\r\n", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("CONNECT to an unknown authority: %d, want 404", r.StatusCode)
	}
}

func TestH2CThrough(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "h2", nil)
	p := startProxy(t, Config{})
	mustApply(t, p, outbound(withHTTP2(xCluster("cds_h2", up.Addr()))).snap(t))
	resp, body := get(t, h2cClient(), "http://"+addrOf(t, p, egressName, 0)+"/h2", "greeting.demo.local", nil)
	if resp.StatusCode != 200 || body != "h2" || resp.ProtoMajor != 2 {
		t.Fatalf("h2c: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if s := up.Seen(); len(s) != 1 || s[0].Proto != "HTTP/2.0" {
		t.Fatalf("upstream saw %+v, want one HTTP/2 request", s)
	}
	// HTTP/1.1 downstream to an HTTP/2 upstream works too.
	resp, body = get(t, testClient(), "http://"+addrOf(t, p, egressName, 0)+"/h1", "greeting.demo.local", nil)
	if resp.StatusCode != 200 || body != "h2" || resp.ProtoMajor != 1 {
		t.Fatalf("h1 to h2 upstream: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
}

// TestLargeStreamedBodies moves 10 MB each way and proves neither side is
// buffered: the upstream sees the first bytes of the upload while the
// client still holds the rest back, and the client sees the first bytes of
// the download while the upstream still holds the rest back.
func TestLargeStreamedBodies(t *testing.T) {
	t.Parallel()
	const size = 10 << 20
	firstIn := make(chan struct{})
	firstOut := make(chan struct{})
	up := startUpstream(t, "stream", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			h := sha256.New()
			buf := make([]byte, 64<<10)
			n, err := io.ReadAtLeast(r.Body, buf, 1)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			close(firstIn)
			h.Write(buf[:n])
			m, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			fmt.Fprintf(w, "%d %x", int64(n)+m, h.Sum(nil))
		case "/download":
			w.Header().Set("Content-Type", "application/octet-stream")
			chunk := bytes.Repeat([]byte("d"), 64<<10)
			_, _ = w.Write(chunk)
			w.(http.Flusher).Flush()
			select {
			case <-firstOut:
			case <-time.After(10 * time.Second):
				return // the proxy buffered: the client never saw the first chunk
			}
			for sent := len(chunk); sent < size; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	})
	p := startProxy(t, Config{})
	mustApply(t, p, outbound(xCluster("cds_stream", up.Addr())).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)

	// Upload.
	pr, pw := io.Pipe()
	sum := sha256.New()
	go func() {
		first := bytes.Repeat([]byte("u"), 64<<10)
		sum.Write(first)
		if _, err := pw.Write(first); err != nil {
			return
		}
		select {
		case <-firstIn:
		case <-time.After(10 * time.Second):
			pw.CloseWithError(fmt.Errorf("upstream never saw the first bytes: the proxy buffers uploads"))
			return
		}
		chunk := bytes.Repeat([]byte("v"), 64<<10)
		for sent := len(first); sent < size; sent += len(chunk) {
			sum.Write(chunk)
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, base+"/upload", pr)
	req.Host = "greeting.demo.local"
	resp, err := testClient().Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %x", size, sum.Sum(nil)); string(b) != want {
		t.Fatalf("upload: got %q, want %q", b, want)
	}

	// Download.
	req, _ = http.NewRequest(http.MethodGet, base+"/download", nil)
	req.Host = "greeting.demo.local"
	resp, err = testClient().Do(req)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("download: first bytes: %v", err)
	}
	close(firstOut)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n+int64(len(buf)) != size {
		t.Fatalf("download: %d bytes, err %v; want %d", n+int64(len(buf)), err, size)
	}
}

func TestWeightedClusters(t *testing.T) {
	t.Parallel()
	a := startUpstream(t, "a", nil)
	b := startUpstream(t, "b", nil)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{
		xVHost("split", []string{"split.local"}, xRoute("/", xwc{"cds_a", 3}, xwc{"cds_b", 1})),
		xVHost("all-b", []string{"allb.local"}, xRoute("/", xwc{"cds_a", 0}, xwc{"cds_b", 5})),
	}, xCluster("cds_a", a.Addr()), xCluster("cds_b", b.Addr())).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)
	c := testClient()
	counts := map[string]int{}
	const n = 400
	for range n {
		_, body := get(t, c, base+"/", "split.local", nil)
		counts[body]++
	}
	// 3:1 split: a gets ~300. The bound is loose: the test must not flake.
	if counts["a"] < 220 || counts["b"] < 40 || counts["a"]+counts["b"] != n {
		t.Errorf("3:1 split gave %v", counts)
	}
	for range 20 {
		if _, body := get(t, c, base+"/", "allb.local", nil); body != "b" {
			t.Fatalf("weight 0 cluster got traffic: %q", body)
		}
	}
}

func TestRouteByHeader(t *testing.T) {
	t.Parallel()
	a := startUpstream(t, "stable", nil)
	b := startUpstream(t, "canary", nil)
	canary := xRoute("/", to("cds_canary"))
	canary.Match.Headers = []*routev3.HeaderMatcher{{
		Name: "x-canary",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "1"},
		}},
	}}
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("svc", []string{"*"}, canary, xRoute("/", to("cds_stable")))},
		xCluster("cds_stable", a.Addr()), xCluster("cds_canary", b.Addr())).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)
	c := testClient()
	for _, tc := range []struct {
		hdr  map[string]string
		want string
	}{
		{map[string]string{"X-Canary": "1"}, "canary"},
		{map[string]string{"X-Canary": "0"}, "stable"},
		{nil, "stable"},
	} {
		if _, body := get(t, c, base+"/", "svc.local", tc.hdr); body != tc.want {
			t.Errorf("headers %v: routed to %q, want %q", tc.hdr, body, tc.want)
		}
	}
}

func TestInboundAppOverride(t *testing.T) {
	t.Parallel()
	app := startUpstream(t, "app", nil)
	other := startUpstream(t, "other", nil)
	// The inbound cluster points at 127.0.0.1:1 as xDS would point at
	// 127.0.0.1:9080; App[9080] sends it to the test app instead.
	x := xds{
		listeners: []*listenerv3.Listener{xListener(ingressName, "0.0.0.0:15000",
			xChain("ingress_http_9080", 9080, xHCM("ingress.http.9080", "rds_ingress_http_9080")),
			xChain("ingress_http_9090", 9090, xHCM("ingress.http.9090", "rds_ingress_http_9090")))},
		routes: []*routev3.RouteConfiguration{
			xRouteConfig("rds_ingress_http_9080", xVHost("in", []string{"*"}, xRoute("/", to("cds_ingress_demo_greeting_http_9080")))),
			xRouteConfig("rds_ingress_http_9090", xVHost("in", []string{"*"}, xRoute("/", to("cds_ingress_demo_greeting_http_9090")))),
		},
		clusters: []*clusterv3.Cluster{
			xCluster("cds_ingress_demo_greeting_http_9080", "127.0.0.1:1"),
			xCluster("cds_ingress_demo_greeting_http_9090", other.Addr()),
		},
	}
	p := startProxy(t, Config{
		Listen: map[uint32]string{9080: "127.0.0.1:0", 9090: "127.0.0.1:0"},
		App:    map[uint32]string{9080: app.Addr()},
	})
	mustApply(t, p, x.snap(t))
	c := testClient()
	if resp, body := get(t, c, "http://"+addrOf(t, p, ingressName, 9080)+"/in", "whatever.example:1234", nil); resp.StatusCode != 200 || body != "app" {
		t.Fatalf("inbound 9080: %d %q", resp.StatusCode, body)
	}
	if s := app.Seen(); len(s) != 1 || s[0].Host != "whatever.example:1234" {
		t.Errorf("app saw %+v; the Host must be what the caller sent", s)
	}
	if _, body := get(t, c, "http://"+addrOf(t, p, ingressName, 9090)+"/in", "x", nil); body != "other" {
		t.Fatalf("inbound 9090: %q", body)
	}
	// The shared ingress socket has two chains and no interception: no
	// chain matches, the connection is closed.
	if _, err := c.Get("http://" + addrOf(t, p, ingressName, 0) + "/"); err == nil {
		t.Error("shared ingress socket with two chains served a non-intercepted connection")
	}
}

func TestGatewayRewrites(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "backend", nil)
	api := xRoute("/api/", to("cds_backend"))
	api.GetRoute().PrefixRewrite = "/"
	api.GetRoute().HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "backend.internal"}
	gwName := "lds_ingress_0.0.0.0_8080"
	p := startProxy(t, Config{Gateway: true, Listen: map[uint32]string{8080: "127.0.0.1:0"}})
	mustApply(t, p, xds{
		gateway:   true,
		listeners: []*listenerv3.Listener{xListener(gwName, "0.0.0.0:8080", xChain("ingress_http_8080", 0, xHCM("ingress.http.8080", "rds_ingress_http_8080")))},
		routes:    []*routev3.RouteConfiguration{xRouteConfig("rds_ingress_http_8080", xVHost("gw", []string{"*"}, api))},
		clusters:  []*clusterv3.Cluster{xCluster("cds_backend", up.Addr())},
	}.snap(t))
	resp, body := get(t, testClient(), "http://"+addrOf(t, p, gwName, 0)+"/api/users?id=7", "gw.example.com", nil)
	if resp.StatusCode != 200 || body != "backend" {
		t.Fatalf("gateway: %d %q", resp.StatusCode, body)
	}
	s := up.Seen()[0]
	if s.Path != "/users" || s.RawQuery != "id=7" || s.Host != "backend.internal" || s.Header.Get("X-Envoy-Original-Path") != "/api/users?id=7" {
		t.Errorf("upstream saw path %q query %q host %q original %q", s.Path, s.RawQuery, s.Host, s.Header.Get("X-Envoy-Original-Path"))
	}
	if resp, _ := get(t, testClient(), "http://"+addrOf(t, p, gwName, 0)+"/other", "gw.example.com", nil); resp.StatusCode != 404 {
		t.Errorf("unmatched path: %d, want 404", resp.StatusCode)
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	deadAddr := closedAddr(t)

	sick := xCluster("cds_sick", slow.Addr())
	sick.LoadAssignment.Endpoints[0].LbEndpoints[0].HealthStatus = corev3.HealthStatus_UNHEALTHY
	sick.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}}
	slowRoute := xRoute("/slow", to("cds_slow"))
	slowRoute.GetRoute().Timeout = durationpb.New(200 * time.Millisecond)
	direct := &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/direct"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}},
	}
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"},
		slowRoute, direct,
		xRoute("/dead", to("cds_dead")),
		xRoute("/empty", to("cds_empty")),
		xRoute("/sick", to("cds_sick")),
		xRoute("/missing", to("cds_never_delivered")),
	)}, xCluster("cds_slow", slow.Addr()), xCluster("cds_dead", deadAddr), xCluster("cds_empty"), sick).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)
	c := testClient()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/slow", 504, "upstream request timeout"},
		{"/dead", 503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure"},
		{"/empty", 503, "no healthy upstream"},
		{"/sick", 503, "no healthy upstream"},
		{"/missing", 503, "no healthy upstream"},
		{"/direct", 418, "teapot"},
	} {
		resp, body := get(t, c, base+tc.path, "x", nil)
		if resp.StatusCode != tc.code || body != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
	}
	// The timeout is counted.
	if got := p.state.Load().byName["cds_slow"].Up.Stats.RqTimeout.Value(); got != 1 {
		t.Errorf("rq_timeout = %d, want 1", got)
	}
}

// TestRouteTimeoutStartsAfterRequest: Envoy's route timeout runs from the
// end of the downstream request, so a slow upload longer than the timeout
// is not cut.
func TestRouteTimeoutStartsAfterRequest(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	})
	r := xRoute("/", to("cds_echo"))
	r.GetRoute().Timeout = durationpb.New(150 * time.Millisecond)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, r)}, xCluster("cds_echo", up.Addr())).snap(t))
	pr, pw := io.Pipe()
	go func() {
		for range 4 {
			_, _ = pw.Write([]byte("abcd"))
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addrOf(t, p, egressName, 0)+"/", pr)
	resp, err := testClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "16" {
		t.Fatalf("slow upload: %d %q", resp.StatusCode, b)
	}
}

// TestStreamIdleTimeout: a request on which nothing moves for the
// connection manager's stream_idle_timeout ends with Envoy's 408, whether
// the upstream or the client stalls, even on a route without a timeout.
func TestStreamIdleTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	up := startUpstream(t, "stall", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	r := xRoute("/", to("cds_stall"))
	r.GetRoute().Timeout = durationpb.New(0)
	x := egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, r)}, xCluster("cds_stall", up.Addr()))
	x.listeners[0].FilterChains[0].Filters[0] = xHCM("egress", "rds_egress_http_15001", func(h *hcmv3.HttpConnectionManager) {
		h.StreamIdleTimeout = durationpb.New(200 * time.Millisecond)
	})
	p := startProxy(t, Config{})
	mustApply(t, p, x.snap(t))
	addr := addrOf(t, p, egressName, 0)

	start := time.Now()
	resp, body := get(t, testClient(), "http://"+addr+"/", "x", nil)
	if resp.StatusCode != 408 || body != "stream timeout" {
		t.Errorf("stalled upstream: %d %q", resp.StatusCode, body)
	}
	// A client that announces 10 bytes and sends 2.
	resp2, _ := rawExchange(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
	if resp2.StatusCode != 408 {
		t.Errorf("stalled client body: %d", resp2.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("idle streams ended after %s", d)
	}
}

// TestPassthroughForwardProxy: with ALLOW_ALL, unknown hosts go to the
// ORIGINAL_DST passthrough cluster; through a non-intercepted egress
// listener (HTTP_PROXY) that means the request's authority. A request
// for the listener itself is refused rather than looped.
func TestPassthroughForwardProxy(t *testing.T) {
	t.Parallel()
	outside := startUpstream(t, "outside", nil)
	passthrough := &clusterv3.Cluster{
		Name:                 "cds_egress_passthrough",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(time.Second),
	}
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("passthrough", []string{"*"}, xRoute("/", to("cds_egress_passthrough")))}, passthrough).snap(t))
	egress := addrOf(t, p, egressName, 0)
	proxyURL, _ := url.Parse("http://" + egress)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := c.Get("http://" + outside.Addr() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "outside" {
		t.Errorf("passthrough: %d %q", resp.StatusCode, b)
	}
	resp, err = c.Get("http://" + egress + "/loop")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("request for the listener itself: %d, want 503", resp.StatusCode)
	}
	// Destinations are not kept: a sidecar reaching many outside hosts
	// does not grow.
	up := p.state.Load().byName["cds_egress_passthrough"].Up
	kept, _ := up.KnownEndpoints("")
	if kept != 0 {
		t.Errorf("the passthrough cluster keeps %d destinations, want none", kept)
	}
}
