package controlplane

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshlens/meshlens/internal/tapwire"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// connectNode opens an ADS stream as nodeID, reporting admin (if not
// empty) as its admin address, and keeps it open for the test.
func connectNode(t *testing.T, cp *runningCP, nodeID, admin string) {
	t.Helper()
	conn, err := grpc.NewClient(cp.s.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: nodeID, Cluster: "test", UserAgentName: "meshlens-proxy"}
	if admin != "" {
		node.Metadata = xdsmeta.SetAdminAddress(node.Metadata, admin)
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				return
			}
		}
	}()
	eventually(t, 10*time.Second, func() string {
		for _, n := range cp.s.xds.Nodes() {
			if n.ID == nodeID {
				return ""
			}
		}
		return nodeID + " not connected"
	})
}

// fakeAdmin serves a proxy admin's GET /tap: n events, then it holds the
// stream open until the client leaves (hold) or ends it.
func fakeAdmin(t *testing.T, n int, hold bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tap" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		for i := range n {
			fmt.Fprintf(w, `{"time":"2026-01-01T00:00:00Z","direction":"inbound","method":"GET","path":"/p%d","status":200,"route":"r"}`+"\n", i)
		}
		w.(http.Flusher).Flush()
		if hold {
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func tapGet(t *testing.T, cp *runningCP, query, accept string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+cp.s.APIAddr()+"/v1/tap?"+query, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// GET /v1/tap merges the taps of a node's proxies, reports a proxy it
// cannot tap and goes on, speaks server-sent events on request, and
// refuses bad parameters, unknown nodes, nodes without an admin address
// and taps beyond its limit.
func TestTapAPI(t *testing.T) {
	cp := startCP(t, Config{})
	good := fakeAdmin(t, 3, false)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "tap: too many taps open on this proxy (at most 4)", http.StatusTooManyRequests)
	}))
	defer broken.Close()
	connectNode(t, cp, "mesh/demo/virtualNode/greeter", strings.TrimPrefix(good.URL, "http://"))
	connectNode(t, cp, "mesh/demo/virtualNode/greeter", strings.TrimPrefix(broken.URL, "http://"))
	connectNode(t, cp, "mesh/demo/virtualNode/blind", "")

	code, body := tapGet(t, cp, "mesh=demo&kind=vn&name=greeter&duration=10s", "")
	if code != 200 {
		t.Fatalf("tap: %d %s", code, body)
	}
	var events, errs int
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		var ev tapwire.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		switch {
		case ev.Error != "":
			errs++
			if ev.Proxy != "mesh/demo/virtualNode/greeter" || !strings.Contains(ev.Error, "too many taps") {
				t.Errorf("error line: %+v", ev)
			}
		case ev.Status == 200 && ev.Route == "r" && ev.Proxy == "mesh/demo/virtualNode/greeter":
			events++
		default:
			t.Errorf("event: %+v", ev)
		}
	}
	if events != 3 || errs != 1 {
		t.Errorf("%d events and %d error lines, want 3 and 1:\n%s", events, errs, body)
	}

	code, body = tapGet(t, cp, "mesh=demo&kind=virtualNode&name=greeter&max=2", "text/event-stream")
	if code != 200 || strings.Count(body, "data: {") < 2 || strings.Count(body, `"status":200`) != 2 || !strings.HasSuffix(body, "event: end\ndata: {}\n\n") {
		t.Errorf("SSE with max=2: %d\n%s", code, body)
	}

	for _, tc := range []struct {
		query string
		code  int
		want  string
	}{
		{"mesh=demo&kind=vs&name=greeter", 400, "kind"},
		{"kind=vn&name=greeter", 400, "mesh and name"},
		{"mesh=demo&kind=vn&name=greeter&duration=11m", 400, "duration"},
		{"mesh=demo&kind=vn&name=nobody", 404, "no proxy of virtualNode demo/nobody is connected"},
		{"mesh=demo&kind=vn&name=blind", 503, "reports an admin address"},
	} {
		if code, body := tapGet(t, cp, tc.query, ""); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d naming %q", tc.query, code, body, tc.code, tc.want)
		}
	}

	// At most maxAPITaps at once.
	holding := fakeAdmin(t, 0, true)
	connectNode(t, cp, "mesh/demo/virtualNode/slow", strings.TrimPrefix(holding.URL, "http://"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range maxAPITaps {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cp.s.APIAddr()+"/v1/tap?mesh=demo&kind=vn&name=slow", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("tap %d: %v %v", i, resp, err)
		}
		defer resp.Body.Close()
		go io.Copy(io.Discard, bufio.NewReader(resp.Body))
	}
	if code, body := tapGet(t, cp, "mesh=demo&kind=vn&name=slow", ""); code != http.StatusTooManyRequests || !strings.Contains(body, "taps are open") {
		t.Errorf("tap %d: %d %s, want 429", maxAPITaps+1, code, body)
	}
}
