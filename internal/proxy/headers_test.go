package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The proxy adds no header the client did not send but the ones it
// documents (x-forwarded-*, x-request-id, x-envoy-*): in particular no
// User-Agent of its HTTP clients, whatever the protocols either side.
func TestNoHeaderAddedUpstream(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	for _, stdlib := range []bool{false, true} {
		p := startProxy(t, Config{StdlibHTTP1Client: stdlib})
		mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"},
			xRoute("/h1", to("cds_h1")), xRoute("/h2", to("cds_h2")))},
			xCluster("cds_h1", up.Addr()), withHTTP2(xCluster("cds_h2", up.Addr()))).snap(t))
		addr := addrOf(t, p, egressName, 0)
		for _, tc := range []struct {
			name   string
			client *http.Client
			path   string
		}{
			{"h1 to h1", testClient(), "/h1"},
			{"h1 to h2", testClient(), "/h2"},
			{"h2 to h1", h2cClient(), "/h1"},
			{"h2 to h2", h2cClient(), "/h2"},
		} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+tc.path, nil)
			req.Host = "svc.local"
			// Present but empty: net/http's clients then send no
			// User-Agent of their own.
			req.Header["User-Agent"] = nil
			req.Header.Set("X-Client", "1")
			req.Header.Set("Accept-Encoding", "identity")
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			checkAdded(t, fmt.Sprintf("stdlib h1 client %v, %s", stdlib, tc.name), up)
		}
	}
	// An upgrade goes on its own connection, written by the proxy.
	_, addr := upgradeProxy(t, up.Addr(), "websocket")
	if _, _, resp := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: svc.local\r\nX-Client: 1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", nil); resp.StatusCode != 200 {
		t.Fatalf("upgrade answered 200 upstream: %s", resp.Status)
	}
	checkAdded(t, "upgrade", up, "Connection", "Upgrade")
}

// checkAdded fails the test when up's last request carries a header
// other than the client's (X-Client, Accept-Encoding and sent) and the
// ones the proxy documents.
func checkAdded(t *testing.T, what string, up *upstreamServer, sent ...string) {
	t.Helper()
	seen := up.Seen()
	got := seen[len(seen)-1]
	for k, v := range got.Header {
		switch {
		case k == "X-Client", k == "Accept-Encoding", slices.Contains(sent, k),
			k == "X-Forwarded-For", k == "X-Forwarded-Proto", k == "X-Request-Id",
			strings.HasPrefix(k, "X-Envoy-"),
			k == "X-Meshlens-Source": // the mesh metrics' caller (docs/stats.md)
		default:
			t.Errorf("%s (%s upstream): the proxy added %s: %q", what, got.Proto, k, v)
		}
	}
}

// A request with more header fields than max_headers_count (Envoy's 100
// by default, Host included) gets 431 and never reaches the upstream:
// HTTP/1.1 then closes the connection, HTTP/2 refuses that stream only.
func TestHeaderCountLimit(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	p := startProxy(t, Config{})
	mustApply(t, p, outbound(xCluster("cds_greeting", up.Addr())).snap(t))
	addr := addrOf(t, p, egressName, 0)
	head := func(fields int, sameName bool) string {
		var b strings.Builder
		b.WriteString("GET / HTTP/1.1\r\nHost: greeting.demo.local\r\n")
		for i := range fields - 1 { // Host is one
			if sameName {
				b.WriteString("X-A: 1\r\n")
			} else {
				fmt.Fprintf(&b, "X-H%d: %d\r\n", i, i)
			}
		}
		b.WriteString("\r\n")
		return b.String()
	}
	if _, _, resp := rawRequest(t, addr, head(100, false), nil); resp.StatusCode != 200 {
		t.Fatalf("100 header fields: %s, want 200", resp.Status)
	}
	for _, same := range []bool{false, true} {
		c, br, resp := rawRequest(t, addr, head(101, same)+head(1, false), nil)
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !resp.Close {
			t.Errorf("101 header fields (one name: %v): %s close %v, want 431 and close", same, resp.Status, resp.Close)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		// The pipelined request after it is not served.
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("after the 431: %v, want the connection closed", err)
		}
		c.Close()
	}
	if n := statValue(t, p, "http.egress.downstream_cx_protocol_error"); n != 2 {
		t.Errorf("downstream_cx_protocol_error %d, want 2", n)
	}

	h := dialH2(t, addr)
	var many, same []hpack.HeaderField
	for i := range 5000 {
		many = append(many, hpack.HeaderField{Name: fmt.Sprintf("x-h%d", i), Value: "v"})
	}
	for range 9662 {
		same = append(same, hpack.HeaderField{Name: "x-a", Value: "1"})
	}
	big := []hpack.HeaderField{{Name: "x-big", Value: strings.Repeat("b", DefaultMaxRequestHeaderBytes)}}
	for i, tc := range []struct {
		fields []hpack.HeaderField
		want   string
	}{
		{many[:99], "200"}, // and :authority
		{many[:100], "431"},
		{many, "431"}, // over the size limit too, in CONTINUATION frames
		{same, "431"}, // 9662 fields of a few bytes each
		{big, "431"},  // one field over the size limit
		{nil, "200"},
	} {
		id := uint32(2*i + 1)
		if err := h.request(id, "GET", "greeting.demo.local", true, tc.fields...); err != nil {
			t.Fatal(err)
		}
		if st, err := h.response(id); err != nil || st != tc.want {
			t.Errorf("HTTP/2 request with %d fields and :authority: %q %v, want %s on the same connection", len(tc.fields), st, err, tc.want)
		}
	}
	// Past 1 MiB in HPACK's measure, in CONTINUATION frames, the
	// connection ends (net/http's defence against CONTINUATION floods).
	flood := dialH2(t, addr)
	var huge []hpack.HeaderField
	// 1,536 * (6 + 1,000 + 32) bytes: fields of a kilobyte reach the
	// bound in as many frames as small ones, at a fraction of the
	// encoding and decoding work, which a loaded machine takes seconds
	// for at 40,000 fields.
	value := strings.Repeat("v", 1000)
	for i := range 1536 {
		huge = append(huge, hpack.HeaderField{Name: fmt.Sprintf("x-%04x", i), Value: value})
	}
	// Written while the connection is read, as a client does: the proxy
	// stops reading at the limit, so the write can block until the
	// connection ends, and a reader that waited for it would meet its own
	// deadline rather than the GOAWAY already received.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_ = flood.request(1, "GET", "greeting.demo.local", true, huge...) // the proxy may close while it writes
	}()
	if err := flood.ending(); !errors.Is(err, errGoAway) {
		t.Errorf("a 1.5 MiB HTTP/2 header list: %v, want GOAWAY", err)
	}
	flood.c.Close()
	<-wrote
	if n := statValue(t, p, "http2.header_overflow"); n != 4 {
		t.Errorf("http2.header_overflow %d, want 4", n)
	}
	if n := statValue(t, p, "http.egress.downstream_rq_4xx"); n != 6 {
		t.Errorf("downstream_rq_4xx %d, want 6", n)
	}
	if n := up.count.Load(); n != 3 {
		t.Errorf("the upstream saw %d requests, want 3", n)
	}

	// The connection manager's max_headers_count replaces the default.
	x := outbound(xCluster("cds_greeting", up.Addr()))
	x.listeners = []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001", xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001", func(h *hcmv3.HttpConnectionManager) {
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(10)}
	})))}
	p10 := startProxy(t, Config{})
	mustApply(t, p10, x.snap(t))
	addr = addrOf(t, p10, egressName, 0)
	if _, _, resp := rawRequest(t, addr, head(10, false), nil); resp.StatusCode != 200 {
		t.Errorf("10 header fields, max_headers_count 10: %s, want 200", resp.Status)
	}
	if _, _, resp := rawRequest(t, addr, head(11, false), nil); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("11 header fields, max_headers_count 10: %s, want 431", resp.Status)
	}
}
