package proxy

import (
	"bufio"
	"context"
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

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// localReplyRow is one row of docs/proxy.md's local-replies table.
type localReplyRow struct {
	situation, status, body, flag, stat string
}

// localRepliesTable reads the local-replies table of docs/proxy.md.
func localRepliesTable(t *testing.T) []localReplyRow {
	t.Helper()
	b, err := os.ReadFile("../../docs/proxy.md")
	if err != nil {
		t.Fatal(err)
	}
	const head = "| situation | status | body | flag | stat |"
	_, rest, ok := strings.Cut(string(b), head)
	if !ok {
		t.Fatalf("docs/proxy.md has no table headed %q", head)
	}
	var rows []localReplyRow
	for i, line := range strings.Split(rest, "\n")[1:] {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			break
		}
		if i == 0 {
			continue // |---|
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 5 {
			t.Fatalf("docs/proxy.md local replies: row %q has %d cells, want 5", line, len(cells))
		}
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, localReplyRow{cells[0], cells[1], cells[2], strings.Trim(cells[3], "`"), strings.Trim(cells[4], "`")})
	}
	if len(rows) == 0 {
		t.Fatal("docs/proxy.md local replies: no rows")
	}
	return rows
}

// localReplySkipped are the rows of the table that TestLocalRepliesTable
// does not provoke, and why.
var localReplySkipped = map[string]string{
	"the proxy's handler returned without answering (a bug; logged as an error)": "no request reaches it; TestEnsureAnswered covers it",
	"`CONNECT` to a virtual gateway":                                             "this test runs an egress listener; TestConnectRefusedOffTheEgress and the end-to-end TestConnectRefusedByGatewayAndInbound provoke it on a gateway",
}

// localReplyUnreachable are rows no request can provoke: they guard
// against a race inside the proxy, and a unit test covers each.
var localReplyUnreachable = map[string]string{
	"a retry needed more of the request body than the retry buffer kept (a transport read the body for two attempts at once)": "an abandoned attempt's read is kept for the next; TestReplayBody covers the reader",
}

// replyOutcome is what a provoked situation got.
type replyOutcome struct {
	status int
	body   string
}

// TestLocalRepliesTable walks docs/proxy.md's local-replies table: each
// row's situation is provoked on an egress listener and its status,
// body, access log flag and stat are checked. A row without a provoker,
// or a provoker without a row, fails the test.
func TestLocalRepliesTable(t *testing.T) {
	t.Parallel()
	rows := localRepliesTable(t)

	// Upstreams.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	resetter := startUpstream(t, "reset", func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	app := startUpstream(t, "app", nil)

	timeoutRoute := xRoute("/timeout", to("cds_slow"))
	timeoutRoute.GetRoute().Timeout = durationpb.New(50 * time.Millisecond)
	perTry := withRetry(xRoute("/pertry", to("cds_slow2")), "gateway-error", 1, 50*time.Millisecond)
	idle := xRoute("/idle", to("cds_slow3"))
	idle.GetRoute().Timeout = durationpb.New(0)
	idle.GetRoute().IdleTimeout = durationpb.New(50 * time.Millisecond)
	direct := &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/direct"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}},
	}
	// The HTTP filters' local replies: routes with typed_per_filter_config.
	faulted := withPerFilter(xRoute("/fault", to("cds_app")), "envoy.filters.http.fault", faultAbort(503))
	limited := withPerFilter(xRoute("/limited", to("cds_app")), "envoy.filters.http.local_ratelimit", rateLimit("rl", 1))
	corsRoute := withPerFilter(xRoute("/cors", to("cds_app")), "envoy.filters.http.cors", corsPolicy("https://app.example"))
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := xds{
		listeners: []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001",
			xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001", withFileLog(logPath, logFormat), withHTTPFilters())))},
	}
	cfg.routes = []*routev3.RouteConfiguration{xRouteConfig("rds_egress_http_15001", xVHost("v", []string{"*"},
		direct, timeoutRoute, perTry, idle, faulted, limited, corsRoute,
		xRoute("/nocluster", to("cds_not_configured")),
		xRoute("/empty", to("cds_empty")),
		xRoute("/overflow", to("cds_one")),
		xRoute("/dead", to("cds_dead")),
		xRoute("/reset", to("cds_reset")),
		xRoute("/app", to("cds_app")),
	))}
	cfg.clusters = append(cfg.clusters,
		xCluster("cds_slow", slow.Addr()), xCluster("cds_slow2", slow.Addr()), xCluster("cds_slow3", slow.Addr()),
		xCluster("cds_empty"), withBreakers(xCluster("cds_one", slow.Addr()), 0, 0, 1, 0),
		xCluster("cds_dead", closedAddr(t)), xCluster("cds_reset", resetter.Addr()), xCluster("cds_app", app.Addr()))
	p := startProxy(t, Config{})
	snap := cfg.snap(t)
	delete(snap.Clusters, "cds_not_configured") // a route to a cluster CDS did not send
	mustApply(t, p, snap)
	addr := addrOf(t, p, egressName, 0)
	base := "http://" + addr
	c := testClient()

	lines := 0 // access log lines so far
	// after is how many access log lines the row being provoked writes
	// after its own (a request it held open and ended).
	after := 0
	do := func(method, path string, hdr map[string]string, body io.Reader) replyOutcome {
		req, _ := http.NewRequest(method, base+path, body)
		req.Host = "x"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return replyOutcome{resp.StatusCode, string(b)}
	}
	raw := func(req string) replyOutcome {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("response to %.50q: %v", req, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return replyOutcome{resp.StatusCode, string(b)}
	}

	provoke := map[string]struct {
		cluster string // for cluster.<c>. stats
		run     func() replyOutcome
	}{
		"no virtual host or route matches":                {"", func() replyOutcome { return do("GET", "/nothing", nil, nil) }},
		"direct response route":                           {"", func() replyOutcome { return do("GET", "/direct", nil, nil) }},
		"the route's cluster is not in the configuration": {"", func() replyOutcome { return do("GET", "/nocluster", nil, nil) }},
		"no endpoint, no healthy endpoint, or an original destination that is the listener itself": {"cds_empty", func() replyOutcome { return do("GET", "/empty", nil, nil) }},
		"circuit breaker overflow (with `x-envoy-overflow: true`)": {"cds_one", func() replyOutcome {
			// One request holds the cluster's only place until it is
			// cancelled.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				req, _ := http.NewRequestWithContext(ctx, "GET", base+"/overflow/hold", nil)
				if resp, err := testClient().Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			waitFor(t, "a request in progress on cds_one", func() bool { return statValue(t, p, "cluster.cds_one.upstream_rq_active") == 1 })
			out := do("GET", "/overflow", nil, nil)
			// The held request ends now, and its access log line (DC)
			// follows the overflow's before the next row is provoked.
			cancel()
			logLine(t, logPath, lines+2)
			after = 1
			return out
		}},
		"fault abort (`envoy.filters.http.fault`)": {"", func() replyOutcome { return do("GET", "/fault", nil, nil) }},
		"rate limited (`envoy.filters.http.local_ratelimit`: the bucket is empty), with `x-envoy-ratelimited: true` and `retry-after`": {"", func() replyOutcome {
			if out := do("GET", "/limited", nil, nil); out.status != http.StatusOK {
				t.Fatalf("first request through a bucket of 1: %d %q", out.status, out.body)
			}
			lines++
			req, _ := http.NewRequest("GET", base+"/limited", nil)
			req.Host = "x"
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.Header.Get("X-Envoy-Ratelimited") != "true" || resp.Header.Get("Retry-After") == "" {
				t.Errorf("rate limited reply headers %v, want x-envoy-ratelimited and retry-after", resp.Header)
			}
			return replyOutcome{resp.StatusCode, string(b)}
		}},
		"CORS preflight from an allowed origin (`envoy.filters.http.cors`), with the `access-control-allow-*` headers": {"", func() replyOutcome {
			req, _ := http.NewRequest("OPTIONS", base+"/cors", nil)
			req.Host = "x"
			req.Header.Set("Origin", "https://app.example")
			req.Header.Set("Access-Control-Request-Method", "POST")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Allow-Methods") != "GET,POST" || resp.Header.Get("Access-Control-Max-Age") != "600" {
				t.Errorf("preflight reply headers %v", resp.Header)
			}
			return replyOutcome{resp.StatusCode, string(b)}
		}},
		"upstream connect failure":               {"cds_dead", func() replyOutcome { return do("GET", "/dead", nil, nil) }},
		"upstream reset before response headers": {"cds_reset", func() replyOutcome { return do("GET", "/reset", nil, nil) }},
		"route timeout":                          {"cds_slow", func() replyOutcome { return do("GET", "/timeout", nil, nil) }},
		"per-try timeout of the last attempt":    {"cds_slow2", func() replyOutcome { return do("GET", "/pertry", nil, nil) }},
		"stream idle timeout":                    {"cds_slow3", func() replyOutcome { return do("GET", "/idle", nil, nil) }},
		"request body malformed or cut short (a bad chunk, fewer bytes than `Content-Length`, an HTTP/2 stream ended short of its `content-length`); an HTTP/1.1 connection is closed": {"cds_app", func() replyOutcome {
			return raw("POST /app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
		}},
		"upgrade type the connection manager does not allow": {"", func() replyOutcome {
			return raw("GET /app HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		}},
		"`CONNECT` to an inbound listener, or over HTTP/2": {"", func() replyOutcome {
			status, body, _ := h2Request(t, addr, [][2]string{{":method", "CONNECT"}, {":authority", "example.com:443"}}, "")
			return replyOutcome{status, body}
		}},
		"`CONNECT` on the egress with an authority that is not `host:port`": {"", func() replyOutcome {
			return raw("CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n")
		}},
		"HTTP/1.1 request head malformed (request line, a field, `Host`) or framed ambiguously (`Content-Length` with `Transfer-Encoding`, `Transfer-Encoding` on HTTP/1.0, a framing field in a folded line); the connection is closed": {"", func() replyOutcome {
			return raw("POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		}},
		"HTTP/1.1 request head over the header size limit; the connection is closed": {"", func() replyOutcome {
			return raw("GET /app HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 100<<10) + "\r\n\r\n")
		}},
		"HTTP/1.1 request with more header fields than the limit (100); the connection is closed": {"", func() replyOutcome {
			var b strings.Builder
			b.WriteString("GET /app HTTP/1.1\r\nHost: x\r\n")
			for i := range 100 {
				fmt.Fprintf(&b, "X-H%d: v\r\n", i)
			}
			b.WriteString("\r\n")
			return raw(b.String())
		}},
		"HTTP/2 request with more header fields than the limit (100), or over the header size limit; only that stream is answered, the connection goes on": {"", func() replyOutcome {
			hdrs := [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/app"}}
			for i := range 101 {
				hdrs = append(hdrs, [2]string{fmt.Sprintf("x-h%d", i), "v"})
			}
			status, body, _ := h2Request(t, addr, hdrs, "")
			return replyOutcome{status, body}
		}},
		"HTTP/1.1 request with a `Transfer-Encoding` other than `chunked`; the connection is closed": {"", func() replyOutcome {
			return raw("POST /app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
		}},
		"HTTP/1.1 request with an `Expect` other than `100-continue`; the connection is closed": {"", func() replyOutcome {
			return raw("POST /app HTTP/1.1\r\nHost: x\r\nExpect: coffee\r\nContent-Length: 0\r\n\r\n")
		}},
		"a request line of another HTTP version on an HTTP/1.1 connection; the connection is closed": {"", func() replyOutcome {
			return raw("GET /app HTTP/3.0\r\nHost: x\r\n\r\n")
		}},
	}

	seen := map[string]bool{}
	for _, row := range rows {
		seen[row.situation] = true
		if why, ok := localReplySkipped[row.situation]; ok {
			t.Logf("not provoked: %q: %s", row.situation, why)
			continue
		}
		if why, ok := localReplyUnreachable[row.situation]; ok {
			t.Logf("not provoked: %q: %s", row.situation, why)
			continue
		}
		pr, ok := provoke[row.situation]
		if !ok {
			t.Errorf("docs/proxy.md local reply %q: no provoker in TestLocalRepliesTable", row.situation)
			continue
		}
		stat := strings.NewReplacer("<prefix>", "egress", "<c>", pr.cluster, "<stat_prefix>", "rl").Replace(row.stat)
		before := max(statValue(t, p, stat), 0)
		out := pr.run()
		lines++

		// Status.
		switch row.status {
		case "its status":
			if out.status != 418 {
				t.Errorf("%q: status %d, want the route's 418", row.situation, out.status)
			}
		case "the configured status":
			if out.status != 503 {
				t.Errorf("%q: status %d, want the fault's 503", row.situation, out.status)
			}
		default:
			if want, _ := strconv.Atoi(row.status); out.status != want {
				t.Errorf("%q: status %d, want %s", row.situation, out.status, row.status)
			}
		}
		// Body.
		switch body := row.body; {
		case body == "empty":
			if out.body != "" {
				t.Errorf("%q: body %q, want none", row.situation, out.body)
			}
		case body == "its body":
			if out.body != "teapot" {
				t.Errorf("%q: body %q, want the route's", row.situation, out.body)
			}
		case strings.HasSuffix(body, " and the reason"):
			prefix := strings.Trim(strings.TrimSuffix(body, " and the reason"), "`")
			if !strings.HasPrefix(out.body, prefix) || len(out.body) <= len(prefix) {
				t.Errorf("%q: body %q, want %q and a reason", row.situation, out.body, prefix)
			}
		default:
			if want := strings.Trim(body, "`"); out.body != want {
				t.Errorf("%q: body %q, want %q", row.situation, out.body, want)
			}
		}
		// Access log flag.
		line := logLine(t, logPath, lines)
		if f := strings.Fields(line); len(f) != 3 || f[0] != strconv.Itoa(out.status) || f[2] != row.flag {
			t.Errorf("%q: access log line %q, want status %d and flag %s", row.situation, line, out.status, row.flag)
		}
		// Stat: counted once.
		waitFor(t, stat+" counted once", func() bool { return statValue(t, p, stat) == before+1 })
		lines += after
		after = 0
	}
	for s := range provoke {
		if !seen[s] {
			t.Errorf("TestLocalRepliesTable provokes %q, which docs/proxy.md's table does not list", s)
		}
	}
	for s := range localReplySkipped {
		if !seen[s] {
			t.Errorf("skipped row %q is not in docs/proxy.md's table", s)
		}
	}
	for s := range localReplyUnreachable {
		if !seen[s] {
			t.Errorf("unreachable row %q is not in docs/proxy.md's table", s)
		}
	}
}
