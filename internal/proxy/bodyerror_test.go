package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/hcm"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// logFormat is the access log format of the proxy-level tests that check
// response flags.
const logFormat = "%RESPONSE_CODE% %REQ(:PATH)% %RESPONSE_FLAGS%\n"

// loggedEgress is an egress listener (stat prefix "egress") whose access
// log goes to the returned path.
func loggedEgress(t *testing.T, vhs []*routev3.VirtualHost, clusters ...*clusterv3.Cluster) (xds, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "access.log")
	return xds{
		listeners: []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001",
			xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001", withFileLog(logPath, logFormat))))},
		routes:   []*routev3.RouteConfiguration{xRouteConfig("rds_egress_http_15001", vhs...)},
		clusters: clusters,
	}, logPath
}

// logLine waits for the access log to hold n lines and returns line n
// (1-based).
func logLine(t *testing.T, logPath string, n int) string {
	t.Helper()
	var lines []string
	waitFor(t, "access log line "+strconv.Itoa(n), func() bool {
		b, _ := os.ReadFile(logPath)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		return len(b) > 0 && len(lines) >= n
	})
	return lines[n-1]
}

// halfClosed sends raw on a new connection, shuts the write side down and
// reads the response; it reports whether the proxy then closed the
// connection.
func halfClosed(t *testing.T, addr, raw string) (*http.Response, string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response to %.60q: %v", raw, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	return resp, string(body), err == io.EOF
}

// A request whose body fails (shorter than its Content-Length, then a
// half-close; a malformed chunk) is answered 400, with response flag DPE,
// a downstream protocol error, and the connection closed: never an empty
// 200 (the request was not forwarded whole) and never a 503 blamed on
// the upstream. Routes with and without a retry policy alike.
func TestBrokenRequestBodyIs400(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	cfg, logPath := loggedEgress(t, []*routev3.VirtualHost{xVHost("v", []string{"*"},
		withRetry(xRoute("/retry", to("cds_app")), "5xx,reset,connect-failure", 2, 0),
		xRoute("/", to("cds_app")),
	)}, xCluster("cds_app", up.Addr()))
	p := startProxy(t, Config{})
	mustApply(t, p, cfg.snap(t))
	addr := addrOf(t, p, egressName, 0)

	cases := []struct{ name, raw string }{
		{"short body, retry route", "POST /retry HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"},
		{"short body", "POST /plain HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"},
		{"malformed chunk, retry route", "POST /retry HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"},
		{"malformed chunk", "POST /plain HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"},
		{"chunked body cut short, retry route", "POST /retry HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"},
	}
	for i, tc := range cases {
		resp, body, closed := halfClosed(t, addr, tc.raw)
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(body, hcm.BodyBadRequestBody) {
			t.Errorf("%s: %d %q, want 400 %q", tc.name, resp.StatusCode, body, hcm.BodyBadRequestBody)
		}
		if !closed || !resp.Close {
			t.Errorf("%s: connection kept (Connection: close %v, closed %v)", tc.name, resp.Close, closed)
		}
		if line := logLine(t, logPath, i+1); !strings.HasSuffix(line, " DPE") || !strings.HasPrefix(line, "400 ") {
			t.Errorf("%s: access log %q, want 400 ... DPE", tc.name, line)
		}
	}
	n := int64(len(cases))
	for _, s := range []struct {
		name string
		want int64
	}{
		{"http.egress.downstream_rq_4xx", n},
		{"http.egress.downstream_rq_2xx", 0},
		{"http.egress.downstream_cx_protocol_error", n},
		{"cluster.cds_app.upstream_rq_5xx", 0},
		{"cluster.cds_app.upstream_rq_rx_reset", 0},
		{"cluster.cds_app.upstream_rq_retry", 0},
	} {
		if got := statValue(t, p, s.name); got != s.want && !(s.want == 0 && got == -1) {
			t.Errorf("%s = %d, want %d", s.name, got, s.want)
		}
	}
}

// Malformed request bodies never feed outlier detection, retries or the
// cluster's failure stats: after more of them than the consecutive-5xx
// threshold every endpoint is still in. Over HTTP/1.1 and HTTP/2 upstream
// transports, from HTTP/1.1 (a bad chunk) and HTTP/2 (a stream ended
// short of its content-length) clients, on routes with retries (the body
// is kept for a replay) and without (an HTTP/2 upstream takes a body that
// came with its head before the stream starts, stream.ReadyReader).
func TestBrokenRequestBodyDoesNotEject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ h2up, retry bool }{{false, true}, {true, true}, {false, false}, {true, false}} {
		h2up := tc.h2up
		t.Run(fmt.Sprintf("http2 upstream %v retries %v", h2up, tc.retry), func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, "app", nil)
			spare := startUpstream(t, "spare", nil)
			cl := withOutlier(xCluster("cds_app", up.Addr(), spare.Addr()), 3, time.Hour, time.Hour, 100)
			if h2up {
				cl = withHTTP2(cl)
			}
			route := xRoute("/", to("cds_app"))
			if tc.retry {
				route = withRetry(route, "5xx,reset", 2, 0)
			}
			cfg, _ := loggedEgress(t, []*routev3.VirtualHost{xVHost("v", []string{"*"}, route)}, cl)
			p := startProxy(t, Config{})
			mustApply(t, p, cfg.snap(t))
			addr := addrOf(t, p, egressName, 0)
			for range 6 {
				resp, _, _ := halfClosed(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("malformed chunk: %d, want 400", resp.StatusCode)
				}
				status, _, rst := h2Request(t, addr, [][2]string{
					{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}, {"content-length", "100"},
				}, "0123456789")
				if status != http.StatusBadRequest {
					t.Errorf("HTTP/2 body short of its content-length: %d (reset %v), want 400", status, rst)
				}
			}
			for _, name := range []string{
				"cluster.cds_app.outlier_detection.ejections_total",
				"cluster.cds_app.outlier_detection.ejections_active",
				"cluster.cds_app.upstream_rq_5xx",
				"cluster.cds_app.upstream_rq_rx_reset",
				"cluster.cds_app.upstream_rq_retry",
			} {
				if got := statValue(t, p, name); got > 0 {
					t.Errorf("%s = %d after malformed request bodies, want 0", name, got)
				}
			}
			if got := statValue(t, p, "http.egress.downstream_cx_protocol_error"); got != 12 {
				t.Errorf("downstream_cx_protocol_error = %d, want 12", got)
			}
			_, clusters := adminGet(t, p, "/clusters")
			for _, a := range []string{up.Addr(), spare.Addr()} {
				if !strings.Contains(clusters, "cds_app::"+a+"::health_flags::healthy") || !strings.Contains(clusters, "cds_app::"+a+"::rq_error::0") {
					t.Errorf("endpoint %s blamed for the clients' bodies:\n%s", a, clusters)
				}
			}
		})
	}
}

// h2Request sends one HTTP/2 request with prior knowledge on a raw
// connection: headers (lower-case names, pseudo-headers first), then
// body in one DATA frame with END_STREAM, both in one write as a gRPC
// client sends a unary call (so the proxy reads the body with the head).
// It returns the response status and body, or the RST_STREAM error code
// with status 0.
func h2Request(t *testing.T, addr string, hdrs [][2]string, body string) (int, string, http2.ErrCode) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(c)
	fr := http2.NewFramer(bw, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, h := range hdrs {
		_ = enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteData(1, true, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	status := 0
	var out bytes.Buffer
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			status, _ = strconv.Atoi(f.Value)
		}
	})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("HTTP/2 response: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
				_ = bw.Flush()
			}
		case *http2.HeadersFrame:
			if _, err := dec.Write(f.HeaderBlockFragment()); err != nil {
				t.Fatal(err)
			}
			if f.StreamEnded() {
				return status, out.String(), 0
			}
		case *http2.DataFrame:
			out.Write(f.Data())
			if f.StreamEnded() {
				return status, out.String(), 0
			}
		case *http2.RSTStreamFrame:
			return 0, "", f.ErrCode
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
}

// An HTTP/2 request that ends (END_STREAM) short of its content-length
// is answered 400 with flag DPE: Go's HTTP/2 server hands the handler an
// error reading the body (it resets only a body longer than declared),
// so a local reply is what can be sent.
func TestHTTP2ShortBodyIs400(t *testing.T) {
	t.Parallel()
	// Over an HTTP/1.1 upstream the body is pumped; over an HTTP/2 one
	// the whole body that came with the head is read ahead (ReadReady,
	// through the retry policy's kept copy) to go in the head's write.
	for _, up2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2 upstream=%v", up2), func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, "app", nil)
			cl := xCluster("cds_app", up.Addr())
			if up2 {
				cl = withHTTP2(cl)
			}
			cfg, logPath := loggedEgress(t, []*routev3.VirtualHost{xVHost("v", []string{"*"},
				withRetry(xRoute("/", to("cds_app")), "5xx,reset", 2, 0))}, cl)
			p := startProxy(t, Config{})
			mustApply(t, p, cfg.snap(t))
			status, body, rst := h2Request(t, addrOf(t, p, egressName, 0), [][2]string{
				{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/upload"}, {"content-length", "100"},
			}, "0123456789")
			if status != http.StatusBadRequest || !strings.HasPrefix(body, hcm.BodyBadRequestBody) {
				t.Errorf("HTTP/2 body short of its content-length: status %d %q (reset %v), want 400", status, body, rst)
			}
			if line := logLine(t, logPath, 1); line != "400 /upload DPE" {
				t.Errorf("access log %q, want %q", line, "400 /upload DPE")
			}
			if got := statValue(t, p, "http.egress.downstream_rq_2xx"); got > 0 {
				t.Errorf("downstream_rq_2xx = %d", got)
			}
			if got := statValue(t, p, "cluster.cds_app.upstream_rq_5xx"); got > 0 {
				t.Errorf("upstream_rq_5xx = %d", got)
			}
			if got := statValue(t, p, "cluster.cds_app.upstream_rq_retry"); got > 0 {
				t.Errorf("upstream_rq_retry = %d: a client's short body retried", got)
			}
		})
	}
}
