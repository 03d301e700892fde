package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tapMesh is a virtual node behind a virtual gateway.
var tapMesh = strings.ReplaceAll(connectMesh, "tun", "tapm")

// tapEvent is what `meshlens tap -o json` prints of one request.
type tapEvent struct {
	Method, Authority, Path, Route, Source, Destination, Proxy string
	Direction, ResponseFlags, UpstreamHost                     string
	Status                                                     int
	LatencyMs                                                  float64
	Headers                                                    map[string]string
}

// `meshlens tap` streams the live requests of a virtual node's sidecar
// (and of a gateway) with status, route and upstream, ends at --max or
// --duration, and redacts header values: all by default, credentials
// even with --show-headers.
func TestTapThroughCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, tapMesh, "apply", "-f", "-")
	app := startEchoApp(t, "web")
	web := startProxy(t, s, "mesh/tapm/virtualNode/web", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+app.addr, "--register=false")
	ingress := web.listenerAddr(t, "lds_ingress_*")
	_, port, _ := net.SplitHostPort(ingress)
	p, _ := strconv.Atoi(port)
	register(t, s, "tapm", "web", "web-1", "127.0.0.1", p)
	gw := startProxy(t, s, "mesh/tapm/virtualGateway/edge", true, "--listen", "8080=127.0.0.1:0")
	gwAddr := gw.listenerAddr(t, "lds_*")
	eventually(t, 20*time.Second, "the gateway routes to web", func() error {
		resp, err := http.Get("http://" + gwAddr + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return errStatus(resp.StatusCode)
		}
		return nil
	})

	// Traffic through the gateway and the sidecar for the whole test.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+gwAddr+"/hello?n="+strconv.Itoa(i), nil)
			req.Header.Set("Authorization", "Bearer s3cret")
			req.Header.Set("X-Request-Id", "req-"+strconv.Itoa(i))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// The table: one line per request, with status and route.
	out := s.mustCLI(t, "", "tap", "vn/web", "--mesh", "tapm", "--max", "3", "--path-prefix", "/hello")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("tap --max 3 printed %d lines:\n%s", len(lines), out)
	}
	for _, l := range lines {
		for _, want := range []string{" inbound GET ", "/hello?n=", ":status=200", "latency=", "route=", "upstream=" + app.addr, "proxy=mesh/tapm/virtualNode/web"} {
			if !strings.Contains(l, want) {
				t.Errorf("line lacks %q: %s", want, l)
			}
		}
		if strings.Contains(l, "s3cret") || strings.Contains(l, "req-") {
			t.Errorf("line shows a header value without --show-headers: %s", l)
		}
	}

	events := func(args ...string) []tapEvent {
		t.Helper()
		out := s.mustCLI(t, "", append([]string{"tap", "--mesh", "tapm", "-o", "json"}, args...)...)
		var evs []tapEvent
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev tapEvent
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("tap -o json: %v: %q", err, l)
			}
			evs = append(evs, ev)
		}
		return evs
	}
	// Header values: redacted by default; shown on request, except
	// credentials.
	for _, tc := range []struct {
		args          []string
		wantRequestID bool
	}{
		{[]string{"vn/web", "--max", "2", "--path-prefix", "/hello"}, false},
		{[]string{"vn/web", "--max", "2", "--path-prefix", "/hello", "--show-headers"}, true},
	} {
		evs := events(tc.args...)
		if len(evs) != 2 {
			t.Fatalf("%v: %d events", tc.args, len(evs))
		}
		for _, ev := range evs {
			if ev.Headers["authorization"] != "[redacted]" {
				t.Errorf("%v: authorization = %q, want [redacted]", tc.args, ev.Headers["authorization"])
			}
			id := ev.Headers["x-request-id"]
			if tc.wantRequestID != strings.HasPrefix(id, "req-") || !tc.wantRequestID && id != "[redacted]" {
				t.Errorf("%v: x-request-id = %q", tc.args, id)
			}
			if ev.Status != 200 || ev.Method != "GET" || ev.Route == "" || ev.Direction != "inbound" {
				t.Errorf("%v: %+v", tc.args, ev)
			}
		}
	}

	// The gateway: its gateway route and the virtual service.
	evs := events("vg/edge", "--max", "1", "--path-prefix", "/hello")
	if len(evs) != 1 || evs[0].Route == "" || evs[0].Destination != "web.tapm.local" || evs[0].Status != 200 ||
		evs[0].Direction != "gateway" || evs[0].Proxy != "mesh/tapm/virtualGateway/edge" {
		t.Errorf("vg/edge: %+v", evs)
	}

	// --duration ends a tap that sees nothing.
	start := time.Now()
	r := s.cli(t, "", "tap", "vn/web", "--mesh", "tapm", "--duration", "2s", "--path-prefix", "/nothing")
	if el := time.Since(start); r.code != 0 || r.stdout != "" || el < 2*time.Second || el > 20*time.Second {
		t.Errorf("tap --duration 2s: exit %d after %s\nstdout: %s\nstderr: %s", r.code, el, r.stdout, r.stderr)
	}

	// Bad input: a clear error naming what is wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tap", "web", "--mesh", "tapm"}, "want vn/NAME or vg/NAME"},
		{[]string{"tap", "vs/web", "--mesh", "tapm"}, "vn (virtualNode) or vg (virtualGateway)"},
		{[]string{"tap", "vn/nobody", "--mesh", "tapm", "--duration", "1s"}, "no proxy of virtualNode tapm/nobody is connected"},
		{[]string{"tap", "vn/web", "--mesh", "tapm", "--duration", "11m"}, "--duration"},
	} {
		if r := s.cli(t, "", tc.args...); r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
