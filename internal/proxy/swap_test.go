package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

// TestConfigSwapInFlight: a request started before Apply finishes on the
// old configuration; new requests use the new one; a listener that left
// the snapshot stops accepting but its in-flight request completes.
func TestConfigSwapInFlight(t *testing.T) {
	t.Parallel()
	entered := make(chan string, 4)
	release := make(chan struct{})
	slowHandler := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				entered <- name
				<-release
			}
			_, _ = io.WriteString(w, name)
		}
	}
	v1 := startUpstream(t, "v1", slowHandler("v1"))
	v2 := startUpstream(t, "v2", slowHandler("v2"))
	clusters := []*clusterv3.Cluster{xCluster("cds_v1", v1.Addr()), xCluster("cds_v2", v2.Addr())}
	gw := func(port string, cluster string) ([]*listenerv3.Listener, []*routev3.RouteConfiguration) {
		name := "lds_ingress_0.0.0.0_" + port
		return []*listenerv3.Listener{xListener(name, "0.0.0.0:"+port, xChain("ingress_http_"+port, 0, xHCM("ingress.http."+port, "rds_"+port)))},
			[]*routev3.RouteConfiguration{xRouteConfig("rds_"+port, xVHost("gw", []string{"*"}, xRoute("/", to(cluster))))}
	}
	config := func(ports map[string]string) *table.Snapshot {
		x := xds{gateway: true, clusters: clusters}
		for port, cluster := range ports {
			ls, rs := gw(port, cluster)
			x.listeners = append(x.listeners, ls...)
			x.routes = append(x.routes, rs...)
		}
		return x.snap(t)
	}
	const nameA, nameB = "lds_ingress_0.0.0.0_8080", "lds_ingress_0.0.0.0_8081"
	p := startProxy(t, Config{Gateway: true, Listen: map[uint32]string{8080: "127.0.0.1:0", 8081: "127.0.0.1:0"}})
	mustApply(t, p, config(map[string]string{"8080": "cds_v1", "8081": "cds_v1"}))
	addrA, addrB := addrOf(t, p, nameA, 0), addrOf(t, p, nameB, 0)

	type result struct {
		body string
		err  error
	}
	slow := func(addr string) chan result {
		ch := make(chan result, 1)
		go func() {
			resp, err := testClient().Get("http://" + addr + "/slow")
			if err != nil {
				ch <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			ch <- result{string(b), err}
		}()
		return ch
	}
	inA, inB := slow(addrA), slow(addrB)
	<-entered
	<-entered

	// New snapshot: 8080 now routes to v2, 8081 is gone.
	mustApply(t, p, config(map[string]string{"8080": "cds_v2"}))
	if got := addrOf(t, p, nameA, 0); got != addrA {
		t.Errorf("unchanged listener address moved from %s to %s: its socket must be kept", addrA, got)
	}
	if _, body := get(t, testClient(), "http://"+addrA+"/fast", "", nil); body != "v2" {
		t.Errorf("new request after Apply went to %q, want v2", body)
	}
	if _, err := net.Dial("tcp", addrB); err == nil {
		t.Error("removed listener still accepts connections")
	}
	close(release)
	for name, ch := range map[string]chan result{"kept listener": inA, "removed listener": inB} {
		r := <-ch
		if r.err != nil || r.body != "v1" {
			t.Errorf("%s: in-flight request got %q, %v; want v1 (the config it started with)", name, r.body, r.err)
		}
	}
}

// TestApplyBindFailureKeepsOldConfig: a snapshot whose listener cannot
// bind is refused whole.
func TestApplyBindFailureKeepsOldConfig(t *testing.T) {
	t.Parallel()
	v1 := startUpstream(t, "v1", nil)
	v2 := startUpstream(t, "v2", nil)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	p := startProxy(t, Config{Listen: map[uint32]string{9999: busy.Addr().String()}})
	mustApply(t, p, outbound(xCluster("cds_greeting", v1.Addr())).snap(t))
	// The new config moves the route to v2 and adds an inbound listener
	// whose port 9999 maps to the busy address.
	next := outbound(xCluster("cds_greeting", v2.Addr()))
	next.listeners = append(next.listeners, xListener(ingressName, "0.0.0.0:15000", xChain("ingress_http_9999", 9999, xHCM("ingress", "rds_egress_http_15001"))))
	err = p.Apply(next.snap(t))
	if err == nil || !strings.Contains(err.Error(), "bind") {
		t.Fatalf("Apply with a busy port: %v, want a bind error", err)
	}
	if _, body := get(t, testClient(), "http://"+addrOf(t, p, egressName, 0)+"/", "greeting.demo.local", nil); body != "v1" {
		t.Errorf("after a refused Apply the proxy routes to %q, want v1 (old config)", body)
	}
	for _, b := range p.Listeners() {
		if b.Listener == ingressName {
			t.Errorf("refused listener is bound: %+v", b)
		}
	}
}
