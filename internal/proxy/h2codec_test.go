package proxy

import (
	"errors"
	"io"
	"testing"
	"time"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/durationpb"
)

// An HTTP/2 connection with no stream for the connection manager's
// idle_timeout gets GOAWAY (NO_ERROR, naming its last stream) and is
// closed cleanly; it is counted as downstream_cx_idle_timeout.
func TestHTTP2IdleConnectionGetsGoAway(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	x := egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"}, xRoute("/", to("cds_app")))}, xCluster("cds_app", up.Addr()))
	x.listeners[0].FilterChains[0].Filters[0] = xHCM("egress", "rds_egress_http_15001", func(h *hcmv3.HttpConnectionManager) {
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(200 * time.Millisecond)}
	})
	p := startProxy(t, Config{})
	mustApply(t, p, x.snap(t))
	h := dialH2(t, addrOf(t, p, egressName, 0))
	if err := h.request(1, "GET", "x", true); err != nil {
		t.Fatal(err)
	}
	if status, err := h.response(1); err != nil || status != "200" {
		t.Fatalf("response %q %v", status, err)
	}
	start := time.Now()
	var goaway *http2.GoAwayFrame
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after GOAWAY: %v, want EOF", err)
			}
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goaway = g
		}
	}
	if goaway == nil || goaway.ErrCode != http2.ErrCodeNo || goaway.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v, want NO_ERROR with last stream 1", goaway)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("idle connection closed after %v", d)
	}
	if got := statValue(t, p, "http.egress.downstream_cx_idle_timeout"); got != 1 {
		t.Errorf("downstream_cx_idle_timeout = %d, want 1", got)
	}
}
