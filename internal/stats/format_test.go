package stats

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixture is a sidecar's stats after some traffic, covering every kind
// of stat and tag the proxy produces.
func fixture(t testing.TB) *Store {
	t.Helper()
	s := newTestStore(t, Options{FixedTags: []Tag{{TagAppMeshMesh, "demo"}, {TagAppMeshVirtualNode, "greeter-v1"}}})

	server := s.Scope("server.")
	server.Gauge("live").Set(1)
	server.Gauge("state").Set(0)
	server.Gauge("uptime").Set(42)
	cp := s.Scope("control_plane.")
	cp.Gauge("connected_state").Set(1)
	cp.TextReadout("identifier").Set("meshlens-controlplane")

	cl := s.Scope("cluster.cds_egress_demo_greeting-v1_http_9080.")
	cl.Gauge("membership_total").Set(2)
	cl.Gauge("membership_healthy").Set(2)
	cl.Gauge("upstream_cx_active").Set(1)
	cl.Counter("upstream_cx_total").Add(3)
	cl.Counter("upstream_cx_rx_bytes_total").Add(123456)
	cl.Counter("upstream_cx_tx_bytes_total").Add(65432)
	cl.Counter("upstream_cx_connect_timeout")
	cl.Counter("upstream_rq_timeout").Inc()
	cl.Counter("upstream_rq_total").Add(8)
	codes := cl.CodeCounters("upstream_rq")
	for _, c := range []int{200, 200, 200, 200, 200, 404, 503, 503} {
		codes.Inc(c)
	}
	cl.Gauge("outlier_detection.ejections_active")
	cl.Counter("outlier_detection.ejections_enforced_total")
	cl.Counter("ssl.handshake").Add(3)
	cl.Counter("ssl.fail_verify_san")
	cl.Gauge("circuit_breakers.default.rq_open")
	rqTime := cl.Histogram("upstream_rq_time", Milliseconds)
	cl.Histogram("upstream_cx_connect_ms", Milliseconds)
	cl2 := s.Scope("cluster.cds_egress_demo_name_http_9080.")
	cl2.CodeCounters("upstream_rq").Inc(200)
	cl2.Histogram("upstream_rq_time", Milliseconds).Record(4)

	in := s.Scope("http.ingress.http.9080.")
	in.Gauge("downstream_cx_active").Set(1)
	in.CodeCounters("downstream_rq").Inc(200)
	in.Counter("rds.rds_ingress_http_9080.update_success").Inc()
	inTime := in.Histogram("downstream_rq_time", Milliseconds)
	eg := s.Scope("http.egress.")
	eg.CodeCounters("downstream_rq").Inc(503)
	s.Scope("listener.0.0.0.0_15000.").Counter("downstream_cx_total").Add(3)
	s.Scope("listener.0.0.0.0_15000.http.ingress.http.9080.").CodeCounters("downstream_rq").Inc(200)
	s.Scope("tcp.egress.").Counter("downstream_cx_total").Add(2)
	// A label value that needs escaping in Prometheus.
	s.Scope(`vhost.we"ird\host.vcluster.v.`).Counter("upstream_rq_200").Inc()

	ext := s.ScopeWithTags("appmesh.", []Tag{{TagExtTargetVirtualNode, "greeting-v1"}, {TagExtTargetVirtualService, "greeting.demo.local"}})
	ext.Counter("RequestCountPerTarget").Add(8)
	extTime := ext.Histogram("TargetResponseTime", Milliseconds)

	for _, v := range []uint64{1, 3, 12, 12, 250, 1200, 7} {
		rqTime.Record(v)
		extTime.Record(v)
	}
	inTime.Record(2)
	s.MergeHistograms()
	rqTime.Record(5)
	rqTime.Record(180)
	s.MergeHistograms()
	return s
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file (run with -update and review the diff)\n--- got ---\n%s", name, got)
	}
}

func TestGoldenOutputs(t *testing.T) {
	s := fixture(t)
	for _, tc := range []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"stats.txt", func(b *bytes.Buffer) error { return s.WriteText(b, nil, false) }},
		{"stats_usedonly_cluster.txt", func(b *bytes.Buffer) error {
			return s.WriteText(b, regexp.MustCompile(`^cluster\.`), true)
		}},
		{"stats.json", func(b *bytes.Buffer) error { return s.WriteJSON(b, nil, false) }},
		{"stats.prom", func(b *bytes.Buffer) error { return s.WritePrometheus(b, nil, false) }},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b.Bytes())
		})
	}
}

func TestJSONIsValid(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	var b bytes.Buffer
	if err := s.WriteJSON(&b, nil, false); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Stats []map[string]json.RawMessage `json:"stats"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, b.String())
	}
	last := doc.Stats[len(doc.Stats)-1]
	var h struct {
		Supported []float64 `json:"supported_quantiles"`
		Computed  []struct {
			Name   string `json:"name"`
			Values []struct {
				Cumulative *float64 `json:"cumulative"`
				Interval   *float64 `json:"interval"`
			} `json:"values"`
		} `json:"computed_quantiles"`
	}
	if err := json.Unmarshal(last["histograms"], &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Supported) != len(Quantiles) || h.Supported[7] != 99.5 || len(h.Computed) == 0 {
		t.Errorf("histograms element = %+v", h)
	}
	for _, c := range h.Computed {
		if len(c.Values) != len(Quantiles) {
			t.Errorf("%s has %d values", c.Name, len(c.Values))
		}
	}
	// Empty output is still the right shape.
	b.Reset()
	if err := newTestStore(t, Options{}).WriteJSON(&b, nil, false); err != nil || b.String() != `{"stats":[]}` {
		t.Errorf("empty store: %q %v", b.String(), err)
	}
}

// TestPrometheusStructure checks the exposition rules promtool checks,
// without promtool: valid names, one TYPE per family before its samples,
// families contiguous, and the dashboards' series present.
func TestPrometheusStructure(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	var b bytes.Buffer
	if err := s.WritePrometheus(&b, nil, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	nameRE := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelRE := regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)`)
	typed := map[string]string{}
	var current string
	closed := map[string]bool{}
	for l := range strings.Lines(out) {
		l = strings.TrimSuffix(l, "\n")
		if rest, ok := strings.CutPrefix(l, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if _, dup := typed[name]; dup {
				t.Fatalf("second TYPE for %s", name)
			}
			if current != "" {
				closed[current] = true
			}
			typed[name], current = typ, name
			continue
		}
		name, rest, ok := strings.Cut(l, "{")
		if !ok || !nameRE.MatchString(name) {
			t.Fatalf("bad sample line %q", l)
		}
		family := name
		if typed[current] == "histogram" {
			family = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		}
		if family != current || closed[family] {
			t.Fatalf("sample %q outside its family's group (current %q)", l, current)
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok || value == "" {
			t.Fatalf("bad sample line %q", l)
		}
		seen := map[string]bool{}
		for labels != "" {
			m := labelRE.FindStringSubmatch(labels)
			if m == nil {
				t.Fatalf("bad labels in %q at %q", l, labels)
			}
			if seen[m[1]] {
				t.Fatalf("label %s twice in %q", m[1], l)
			}
			seen[m[1]] = true
			labels = labels[len(m[0]):]
		}
	}
	for _, want := range []string{
		`envoy_server_live{appmesh_mesh="demo",appmesh_virtual_node="greeter-v1"} 1`,
		`envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="cds_egress_demo_greeting-v1_http_9080",appmesh_mesh="demo",appmesh_virtual_node="greeter-v1"} 5`,
		`envoy_cluster_membership_total{`, `envoy_cluster_membership_healthy{`, `envoy_http_downstream_cx_active{`,
		`envoy_cluster_upstream_cx_rx_bytes_total{`, `envoy_cluster_upstream_cx_tx_bytes_total{`,
		`envoy_cluster_upstream_cx_connect_timeout{`, `envoy_cluster_upstream_rq_timeout{`,
		`envoy_cluster_outlier_detection_ejections_enforced_total{`, `envoy_cluster_outlier_detection_ejections_active{`,
		`envoy_cluster_circuit_breakers_default_rq_open{`, `envoy_cluster_ssl_handshake{`,
		`envoy_http_downstream_rq_xx{envoy_response_code_class="2",appmesh_listener_protocol="http",appmesh_listener_port="9080",envoy_http_conn_manager_prefix="ingress",appmesh_mesh="demo",appmesh_virtual_node="greeter-v1"} 1`,
		`envoy_appmesh_RequestCountPerTarget{TargetVirtualNode="greeting-v1",TargetVirtualService="greeting.demo.local",appmesh_mesh="demo",appmesh_virtual_node="greeter-v1"} 8`,
		`# TYPE envoy_cluster_upstream_rq_time histogram`,
		`envoy_vhost_vcluster_upstream_rq{envoy_response_code="200",envoy_virtual_cluster="v",envoy_virtual_host="we\"ird\\host",`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
}

// TestPromtool runs `promtool check metrics` on the exposition. Envoy's
// names break some of promtool's naming lints (counters without _total,
// gauges ending in _total, no HELP, App Mesh's CamelCase names, _ms
// units); those are kept on purpose for compatibility and are the only
// problems allowed. A parse error fails the test.
func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	var b bytes.Buffer
	if err := fixture(t).WritePrometheus(&b, nil, false); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &b
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Fatalf("promtool: %v\n%s", err, out)
		}
	}
	allowed := []string{
		"no help text",
		`counter metrics should have "_total" suffix`,
		`non-counter metrics should not have "_total" suffix`,
		"metric names should be written in 'snake_case' not 'camelCase'",
		"label names should be written in 'snake_case' not 'camelCase'",
		"metric names should not contain abbreviated units",
	}
	for l := range strings.Lines(string(out)) {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || strings.HasSuffix(l, a)
		}
		if !ok {
			t.Errorf("promtool: %s", l)
		}
	}
}

func TestPrometheusFamilyCollision(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{TagRules: []TagRule{}})
	sc := s.Scope("")
	sc.Counter("x_count").Inc()
	sc.Gauge("x_count").Set(1) // same family name, other type: left out
	sc.Histogram("x", Milliseconds).Record(1)
	s.MergeHistograms()
	var b bytes.Buffer
	if err := s.WritePrometheus(&b, nil, false); err != nil {
		t.Fatal(err)
	}
	want := "# TYPE envoy_x_count counter\nenvoy_x_count{} 1\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
