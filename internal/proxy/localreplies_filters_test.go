package proxy

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshlens/meshlens/internal/proxy/filters/grpcweb"
)

// TestLocalRepliesThroughFilters: the proxy's own local replies made
// after the HTTP filters ran go through the filters' response phase, as
// Envoy encodes them through its filter chain: a browser's 503 (no
// healthy upstream, a cluster CDS did not send) and a direct response
// carry the CORS headers; a direct-response route's fault aborts it; a
// gRPC-Web call whose upstream timed out gets a gRPC-Web trailers-only
// response (HTTP 200, grpc-status 14, Envoy's mapping of 504) that a
// gRPC-Web client reads as the call's status.
func TestLocalRepliesThroughFilters(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	direct := func(prefix string) *routev3.Route {
		return &routev3.Route{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}},
		}
	}
	cors := func(r *routev3.Route) *routev3.Route {
		return withPerFilter(r, "envoy.filters.http.cors", corsPolicy("https://app.example"))
	}
	slowRPC := xRoute("/slow.Slow/", to("cds_slow"))
	slowRPC.GetRoute().Timeout = durationpb.New(100 * time.Millisecond)
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := xds{
		listeners: []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001",
			xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001", withFileLog(logPath, logFormat), withHTTPFilters())))},
		routes: []*routev3.RouteConfiguration{xRouteConfig("rds_egress_http_15001", xVHost("v", []string{"*"},
			cors(xRoute("/empty", to("cds_empty"))),
			cors(xRoute("/nocluster", to("cds_not_configured"))),
			cors(direct("/direct")),
			withPerFilter(direct("/faulted"), "envoy.filters.http.fault", faultAbort(503)),
			slowRPC,
		))},
		clusters: []*clusterv3.Cluster{xCluster("cds_empty"), xCluster("cds_slow", slow.Addr())},
	}
	p := startProxy(t, Config{})
	mustApply(t, p, cfg.snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)

	for i, tc := range []struct {
		path, flag string
		status     int
		body       string
	}{
		{"/empty", "UH", 503, "no healthy upstream"},
		{"/nocluster", "NC", 503, "no healthy upstream"},
		{"/direct", "-", 418, "teapot"},
		{"/faulted", "FI", 503, "fault filter abort"},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+tc.path, nil)
		req.Host = "x"
		req.Header.Set("Origin", "https://app.example")
		resp, err := testClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(b) != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.path, resp.StatusCode, b, tc.status, tc.body)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); tc.path != "/faulted" && got != "https://app.example" {
			t.Errorf("%s: access-control-allow-origin %q, want the CORS filter's", tc.path, got)
		}
		if f := strings.Fields(logLine(t, logPath, i+1)); len(f) != 3 || f[1] != tc.path || f[2] != tc.flag {
			t.Errorf("%s: access log line %v, want flag %s", tc.path, f, tc.flag)
		}
	}

	// A gRPC-Web call (HTTP/1.1, as from a browser) past its route timeout.
	body := grpcweb.AppendFrame(nil, 0, []byte("hello"))
	req, _ := http.NewRequest(http.MethodPost, base+"/slow.Slow/Hang", bytes.NewReader(body))
	req.Host = "x"
	req.Header.Set("Content-Type", grpcweb.ContentTypeGRPCWebProto)
	req.Header.Set("X-Grpc-Web", "1")
	resp, err := testClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != grpcweb.ContentTypeGRPCWebProto || len(b) != 0 {
		t.Errorf("gRPC-Web call timed out: %d %q, body %q; want a trailers-only gRPC-Web response", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if s, m := resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"); s != "14" || m != "upstream request timeout" {
		t.Errorf("gRPC-Web call timed out: grpc-status %q, grpc-message %q; want 14, the timeout's reply", s, m)
	}
	if f := strings.Fields(logLine(t, logPath, 5)); len(f) != 3 || f[0] != "200" || f[2] != "UT" {
		t.Errorf("gRPC-Web timeout's access log line %v, want 200 with flag UT", f)
	}
}
