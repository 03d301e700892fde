package stats

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var traceA = [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}

// exemplarFixture is the formats' fixture with exemplars on two
// histograms, one of them exposed in seconds.
func exemplarFixture(t testing.TB, opts Options) *Store {
	t.Helper()
	s := newTestStore(t, opts)
	cl := s.Scope("cluster.cds_egress_demo_greeting-v1_http_9080.")
	rq := cl.Histogram("upstream_rq_time", Milliseconds)
	cl.Counter("upstream_rq_total").Add(3)
	cl.Counter("upstream_rq_completed").Add(3)
	cl.Gauge("membership_total").Set(2)
	cl.TextReadout("version").Set("v1")
	rq.ObserveWithExemplar(3, traceA)
	rq.ObserveWithExemplar(4, [16]byte{}) // no exemplar
	rq.RecordDurationWithExemplar(7200*time.Millisecond, [16]byte{15: 1})
	rq.Record(12)
	s.Scope("http.ingress.").Histogram("downstream_rq_time", Milliseconds).Record(2)
	s.MergeHistograms()
	return s
}

func TestOpenMetricsExemplars(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := exemplarFixture(t, Options{}).WriteOpenMetrics(&b, nil, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[len(lines)-1] != "# EOF" {
		t.Errorf("does not end with # EOF: %q", lines[len(lines)-1])
	}
	want := []string{
		"# TYPE envoy_cluster_upstream_rq counter\n" + `envoy_cluster_upstream_rq_total{envoy_cluster_name="cds_egress_demo_greeting-v1_http_9080"} 3` + "\n",
		"# TYPE envoy_cluster_upstream_rq_completed unknown\n",
		"# TYPE envoy_cluster_membership_total gauge\n",
		"# TYPE envoy_cluster_upstream_rq_time histogram\n",
		`envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="cds_egress_demo_greeting-v1_http_9080",le="5"} 2 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 3 `,
		`envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="cds_egress_demo_greeting-v1_http_9080",le="10000"} 4 # {trace_id="00000000000000000000000000000001"} 7200 `,
		`envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="cds_egress_demo_greeting-v1_http_9080",le="10"} 2` + "\n",
		`envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="ingress",le="0.5"} 0` + "\n",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("missing %q in\n%s", w, out)
		}
	}
	// Every exemplar follows OpenMetrics's syntax: a label set of at
	// most 128 characters, a value, a timestamp in seconds.
	re := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*_bucket\{[^}]*\} [0-9]+ # \{trace_id="[0-9a-f]{32}"\} [0-9.]+ [0-9]+\.[0-9]{3}$`)
	n := 0
	for _, l := range lines {
		if strings.Contains(l, " # ") {
			n++
			if !re.MatchString(l) {
				t.Errorf("exemplar line %q", l)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d exemplars, want 2", n)
	}
	// In seconds, the exemplar value is in seconds too.
	b.Reset()
	if err := exemplarFixture(t, Options{PrometheusSeconds: true}).WriteOpenMetrics(&b, nil, false); err != nil {
		t.Fatal(err)
	}
	if w := `le="0.005"} 2 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.003 `; !strings.Contains(b.String(), w) {
		t.Errorf("seconds: missing %q in\n%s", w, b.String())
	}
}

// TestPrometheusTextHasNoExemplars: the Prometheus text format is what it
// was, exemplars or not.
func TestPrometheusTextHasNoExemplars(t *testing.T) {
	t.Parallel()
	with := exemplarFixture(t, Options{})
	without := newTestStore(t, Options{})
	cl := without.Scope("cluster.cds_egress_demo_greeting-v1_http_9080.")
	rq := cl.Histogram("upstream_rq_time", Milliseconds)
	cl.Counter("upstream_rq_total").Add(3)
	cl.Counter("upstream_rq_completed").Add(3)
	cl.Gauge("membership_total").Set(2)
	cl.TextReadout("version").Set("v1")
	for _, v := range []uint64{3, 4, 7200, 12} {
		rq.Record(v)
	}
	without.Scope("http.ingress.").Histogram("downstream_rq_time", Milliseconds).Record(2)
	without.MergeHistograms()
	var a, b bytes.Buffer
	with.WritePrometheus(&a, nil, false)
	without.WritePrometheus(&b, nil, false)
	if a.String() != b.String() {
		t.Errorf("exemplars changed the Prometheus text:\n%s\nvs\n%s", a.String(), b.String())
	}
}

// TestOpenMetricsPromtool parses the exposition with Prometheus's own
// OpenMetrics parser, through `promtool tsdb create-blocks-from
// openmetrics`. Backfilling needs a timestamp on every sample, so one is
// added after each sample's value; the exemplars are left as written.
func TestOpenMetricsPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	ts := fmt.Sprint(time.Now().Add(-time.Hour).Unix())
	// withTimestamps adds a timestamp after each sample's value.
	withTimestamps := func(om string) string {
		var in strings.Builder
		for l := range strings.Lines(om) {
			if !strings.HasPrefix(l, "#") {
				series, exemplar, hasEx := strings.Cut(strings.TrimSuffix(l, "\n"), " # ")
				l = series + " " + ts
				if hasEx {
					l += " # " + exemplar
				}
				l += "\n"
			}
			in.WriteString(l)
		}
		return in.String()
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "in.om")
	check := func(name, input string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(input), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", file, filepath.Join(dir, name)).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool rejected the OpenMetrics exposition of %s: %v\n%s\ninput:\n%s", name, err, out, input)
		}
	}
	// The formats' fixture (escaped label values, App Mesh's names,
	// gauges ending in _total) and the exemplar fixture, in milliseconds
	// and in seconds.
	for name, s := range map[string]*Store{
		"fixture": fixture(t), "exemplars": exemplarFixture(t, Options{}),
		"exemplars-seconds": exemplarFixture(t, Options{PrometheusSeconds: true}),
	} {
		var b bytes.Buffer
		if err := s.WriteOpenMetrics(&b, nil, false); err != nil {
			t.Fatal(err)
		}
		check(name, withTimestamps(b.String()))
	}
	var b bytes.Buffer
	if err := exemplarFixture(t, Options{}).WriteOpenMetrics(&b, nil, false); err != nil {
		t.Fatal(err)
	}
	in := withTimestamps(b.String())
	// The parser is strict: the same input with a broken exemplar fails,
	// so the check above is not vacuous.
	bad := strings.Replace(in, `# {trace_id="`, `# {trace_id=`, 1)
	if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", file, filepath.Join(dir, "blocks2")).CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted a malformed exemplar:\n%s", out)
	}
}

func TestAcceptsOpenMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		accept string
		want   bool
	}{
		{"application/openmetrics-text; version=1.0.0; charset=utf-8", true},
		{"application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", true},
		{"application/openmetrics-text;q=0", false},
		{"text/plain;version=0.0.4", false},
		{"", false},
		{"*/*", false},
	}
	for _, tt := range tests {
		if got := AcceptsOpenMetrics(tt.accept); got != tt.want {
			t.Errorf("AcceptsOpenMetrics(%q) = %v", tt.accept, got)
		}
	}
}

func TestObserveWithExemplarAllocs(t *testing.T) {
	s := newTestStore(t, Options{})
	h := s.Scope("x.").Histogram("t", Milliseconds)
	h.ObserveWithExemplar(3, traceA) // allocates the slots and the decade
	if n := testing.AllocsPerRun(1000, func() { h.ObserveWithExemplar(3, traceA) }); n != 0 {
		t.Fatalf("ObserveWithExemplar: %v allocs", n)
	}
}

// TestExemplarsNotTorn: concurrent writers and readers never see an
// exemplar whose trace id and value come from two different samples.
func TestExemplarsNotTorn(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	h := s.Scope("x.").Histogram("t", Milliseconds)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v := 1 + (i+uint64(g))%4 // all in the le=5 bucket
				var id [16]byte
				for j := range id {
					id[j] = byte(v)
				}
				h.ObserveWithExemplar(v, id)
			}
		}()
	}
	for range 2000 {
		ex, ok := h.Exemplars()
		for i := range ex {
			if !ok[i] {
				continue
			}
			for _, c := range ex[i].TraceID {
				if uint64(c) != ex[i].Value {
					close(stop)
					wg.Wait()
					t.Fatalf("torn exemplar: %+v", ex[i])
				}
			}
		}
	}
	close(stop)
	wg.Wait()
}
