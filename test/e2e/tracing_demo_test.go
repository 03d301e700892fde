package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestDemoTraceNests: a request through the demo's gateway → greeter →
// greeting and name, arriving with a B3 header, continues that trace and
// yields one trace in the control plane's built-in store, found through
// its Jaeger API, whose tree and timings nest: the gateway's server span,
// the greeter's server span, its two client spans (egress), each with the
// called service's server span under it. The demo prints how to open it.
func TestDemoTraceNests(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	api, gateway := fmt.Sprintf("http://127.0.0.1:%d", d.api), fmt.Sprintf("http://127.0.0.1:%d", d.gateway)
	hint := "curl '" + api + "/api/traces?service=demo/ingress&limit=1'"
	eventually(t, 5*time.Second, "the demo prints how to open a trace", func() error {
		if !strings.Contains(d.out.String(), hint) {
			return fmt.Errorf("no %s in:\n%s", hint, d.out.String())
		}
		return nil
	})

	const trace, parent = "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1"
	req, _ := http.NewRequest(http.MethodGet, gateway+"/", nil)
	req.Header.Set("b3", trace+"-"+parent+"-1")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "From greeter-1:") {
		t.Fatalf("gateway: %s %q", resp.Status, body)
	}

	var spans []CollectorSpan
	eventually(t, 30*time.Second, "the built-in store has the trace's 6 spans", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tr, err := JaegerTrace(ctx, api, trace)
		if err != nil {
			return err
		}
		if tr == nil {
			return fmt.Errorf("not stored yet")
		}
		spans = tr.Common()
		if len(spans) < 6 {
			return fmt.Errorf("%d spans so far:\n%s", len(spans), Outline(BuildTree(spans)))
		}
		return nil
	})
	roots := BuildTree(spans)
	outline := Outline(roots)
	t.Logf("trace %s:\n%s", trace, outline)
	if len(spans) != 6 || len(roots) != 1 {
		t.Fatalf("want one tree of 6 spans:\n%s", outline)
	}
	gw := roots[0]
	if gw.Span.Service != "demo/ingress" || gw.Span.Kind != "server" || gw.Span.ParentID != parent || len(gw.Children) != 1 {
		t.Fatalf("root %+v, want the gateway's server span, child of the caller's %s, with one child:\n%s", gw.Span, parent, outline)
	}
	greeter := gw.Children[0]
	if greeter.Span.Service != "demo/greeter" || greeter.Span.Kind != "server" || len(greeter.Children) != 2 {
		t.Fatalf("under the gateway %+v, want the greeter's server span with two children:\n%s", greeter.Span, outline)
	}
	called := map[string]bool{}
	for _, c := range greeter.Children {
		if c.Span.Service != "demo/greeter" || c.Span.Kind != "client" || len(c.Children) != 1 || c.Children[0].Span.Kind != "server" {
			t.Fatalf("greeter child %+v, want a client span with the called service's server span under it:\n%s", c.Span, outline)
		}
		called[strings.TrimSuffix(strings.TrimSuffix(c.Children[0].Span.Service, "-v1"), "-v2")] = true
	}
	if !called["demo/greeting"] || !called["demo/name"] {
		t.Errorf("the greeter called %v, want demo/greeting and demo/name:\n%s", called, outline)
	}
	var nest func(n *TraceTree)
	nest = func(n *TraceTree) {
		// Stores keep microseconds: allow their rounding.
		const slack = 2 * time.Microsecond
		end := n.Span.Start.Add(n.Span.Duration + slack)
		for _, c := range n.Children {
			if c.Span.Start.Before(n.Span.Start.Add(-slack)) || c.Span.Start.Add(c.Span.Duration).After(end) {
				t.Errorf("%s %s [%s +%s] is not within its parent %s %s [%s +%s]", c.Span.Service, c.Span.Kind, c.Span.Start.Format(time.StampMicro), c.Span.Duration,
					n.Span.Service, n.Span.Kind, n.Span.Start.Format(time.StampMicro), n.Span.Duration)
			}
			nest(c)
		}
	}
	nest(gw)
}

// TestDemoXRayFromEnv: with App Mesh's ENABLE_ENVOY_XRAY_TRACING and
// XRAY_DAEMON_PORT, every proxy of the demo sends X-Ray segments to the
// daemon instead of the mesh's provider; a request arriving with an
// X-Amzn-Trace-Id continues that trace, and every segment is valid, with
// parent ids that join them into one tree under the caller's.
func TestDemoXRayFromEnv(t *testing.T) {
	t.Parallel()
	daemon := StartXRayDaemon(t)
	_, port, _ := strings.Cut(daemon.Addr, ":")
	d := startDemo(t, "ENABLE_ENVOY_XRAY_TRACING=1", "XRAY_DAEMON_PORT="+port, "XRAY_SAMPLING_RATE=0")
	const root, parent = "1-5759e988-bd862e3fe1be46a994272793", "53995c3f42cd8ad8"
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", d.gateway), nil)
	req.Header.Set("X-Amzn-Trace-Id", "Root="+root+";Parent="+parent+";Sampled=1")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("gateway: %s", resp.Status)
	}
	docs := daemon.Wait(t, root, 6, 30*time.Second)
	ids := map[string]bool{parent: true}
	for _, doc := range docs {
		ids[fmt.Sprint(doc["id"])] = true
	}
	names := map[string]int{}
	for _, doc := range docs {
		if p := fmt.Sprint(doc["parent_id"]); !ids[p] {
			t.Errorf("segment %v has parent %s, which is neither the caller's nor another segment", doc["id"], p)
		}
		names[fmt.Sprint(doc["name"])]++
	}
	if names["demo/ingress"] != 1 || names["demo/greeter"] < 1 {
		t.Errorf("segments by name %v, want the gateway's and the greeter's", names)
	}
	// Killed outright, the demo leaves nothing running.
	d.killOutright(t)
}

// canonicalOutline is Outline with siblings in a fixed order (the
// greeter calls greeting and name at once, so their start order varies)
// and greeting-v1 and -v2 named alike (the route splits between them).
func canonicalOutline(roots []*TraceTree) string {
	var draw func(n *TraceTree, depth int) string
	draw = func(n *TraceTree, depth int) string {
		svc := strings.TrimSuffix(strings.TrimSuffix(n.Span.Service, "-v1"), "-v2")
		var kids []string
		for _, c := range n.Children {
			kids = append(kids, draw(c, depth+1))
		}
		sort.Strings(kids)
		return fmt.Sprintf("%s%s %s %s\n", strings.Repeat("  ", depth), svc, n.Span.Kind, n.Span.Name) + strings.Join(kids, "")
	}
	var out []string
	for _, r := range roots {
		out = append(out, draw(r, 0))
	}
	sort.Strings(out)
	return strings.Join(out, "")
}

// demoTrace sends one request through the demo's gateway continuing a
// new B3 trace and returns that trace's id.
func demoTrace(t *testing.T, gateway string) string {
	t.Helper()
	trace := fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
	req, _ := http.NewRequest(http.MethodGet, gateway+"/", nil)
	req.Header.Set("b3", trace+"-"+fmt.Sprintf("%016x", rand.Uint64()|1)+"-1")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("gateway: %s", resp.Status)
	}
	return trace
}

// TestDemoTraceInRealCollectors: with the mesh's tracing provider set to
// otlp at a real Jaeger v2, then at a real OpenTelemetry Collector, the
// proxies send the same request's spans there, and each one stores the
// same tree (service, kind, name by depth) as the built-in store.
func TestDemoTraceInRealCollectors(t *testing.T) {
	t.Parallel()
	jaeger := StartJaeger(t)
	otelcol := StartOtelcol(t)
	d := startDemo(t)
	api, gateway := fmt.Sprintf("http://127.0.0.1:%d", d.api), fmt.Sprintf("http://127.0.0.1:%d", d.gateway)
	s := &server{api: fmt.Sprintf("127.0.0.1:%d", d.api)}

	builtin := demoTrace(t, gateway)
	var want string
	eventually(t, 30*time.Second, "the built-in store has the trace's 6 spans", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tr, err := JaegerTrace(ctx, api, builtin)
		if err != nil || tr == nil {
			return fmt.Errorf("not yet: %v", err)
		}
		if spans := tr.Common(); len(spans) >= 6 {
			want = canonicalOutline(BuildTree(spans))
			return nil
		}
		return fmt.Errorf("%d spans", len(tr.Spans))
	})

	for _, c := range []*Collector{jaeger, otelcol} {
		s.mustCLI(t, fmt.Sprintf(`kind: Mesh
name: demo
spec:
  egressFilter: {type: DROP_ALL}
  meshlens:
    tracing: {provider: otlp, endpoint: %q, samplingPercentage: 100}
`, c.OTLPGRPC), "apply", "-f", "-")
		// The proxies take the new provider when xDS reaches them: a
		// trace that reaches the collector whole says it did.
		var got string
		eventually(t, 60*time.Second, c.Name+" stores a whole trace of the demo", func() error {
			trace := demoTrace(t, gateway)
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				spans, err := c.Read(ctx, trace)
				cancel()
				if err == nil && len(spans) >= 6 {
					got = canonicalOutline(BuildTree(spans))
					return nil
				}
				time.Sleep(200 * time.Millisecond)
			}
			return fmt.Errorf("trace %s not whole in %s", trace, c.Name)
		})
		if got != want {
			t.Errorf("%s stored the tree\n%s\nthe built-in store\n%s", c.Name, got, want)
		}
	}
}
