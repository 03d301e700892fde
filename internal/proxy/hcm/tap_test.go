package hcm

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/allocstest"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tap"
)

// The tap point at a stream's end costs no allocation while nobody taps:
// it is the guard finish runs.
func TestTapPointIdleAllocatesNothing(t *testing.T) {
	if tap.Load() != nil {
		t.Fatal("a tap is open")
	}
	r := httptest.NewRequest(http.MethodGet, "http://greeter/hello", nil)
	ex := &Exchange{Status: 200}
	cc := &ChainConfig{Dir: table.Inbound}
	n := allocstest.Fewest(1000, func() {
		if ts := tap.Load(); ts != nil {
			tapRequest(ts, r, ex, cc, nil, time.Millisecond)
		}
	})
	if n != 0 {
		t.Errorf("idle tap point allocates %v times", n)
	}
}

// An open tap gets a finished request with its outcome, route and
// upstream, and its headers redacted.
func TestTapRequestEvent(t *testing.T) {
	tp, err := tap.Open(tap.Filter{PathPrefix: "/hello"})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	r := httptest.NewRequest(http.MethodGet, "http://greeter.demo.local/hello?x=1", nil)
	r.Header.Set("Authorization", "Bearer secret")
	ex := &Exchange{Status: 503, Flags: accesslog.UpstreamConnectionFailure, start: time.Now()}
	ex.Req.init(r, "http")
	ex.route = &table.Route{Name: "greeter-route"}
	ex.route.Meta.VirtualService = "greeter.demo.local"
	ex.view = &cluster.View{Cluster: &table.Cluster{Name: "cds_egress_demo_greeter_http_8080"}}
	ex.Endpoint = &cluster.Endpoint{Addr: "127.0.0.1:8080"}
	tapRequest(tap.Load(), r, ex, &ChainConfig{Dir: table.Outbound}, nil, 1500*time.Microsecond)

	// Another path is not this tap's.
	other := httptest.NewRequest(http.MethodGet, "http://greeter.demo.local/other", nil)
	ex2 := &Exchange{Status: 200}
	ex2.Req.init(other, "http")
	tapRequest(tap.Load(), other, ex2, &ChainConfig{Dir: table.Outbound}, nil, time.Millisecond)

	select {
	case ev := <-tp.C():
		want := tap.Event{
			Time: ex.start, Direction: "outbound", Method: "GET", Authority: "greeter.demo.local", Path: "/hello?x=1",
			Status: 503, LatencyMs: 1.5, Destination: "greeter.demo.local", Route: "greeter-route",
			ResponseFlags: "UF", UpstreamCluster: "cds_egress_demo_greeter_http_8080", UpstreamHost: "127.0.0.1:8080",
		}
		got := *ev
		if got.Headers["authorization"] != tap.Redacted {
			t.Errorf("authorization = %q, want redacted", got.Headers["authorization"])
		}
		got.Headers = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event\n got %+v\nwant %+v", got, want)
		}
	default:
		t.Fatal("no event")
	}
	if len(tp.C()) != 0 {
		t.Error("a request outside the path prefix was tapped")
	}
}
