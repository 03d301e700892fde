package statsd

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/stats"
)

var fixedTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// snapshot is one flush of a small sidecar: 3 + 2 of one cluster's codes,
// a gauge, and a histogram with 4 samples of 12 ms and one of 250 ms.
func snapshot(t *testing.T) *stats.Snapshot {
	t.Helper()
	s, err := stats.NewStore(stats.Options{FixedTags: []stats.Tag{{Name: stats.TagAppMeshMesh, Value: "demo"}}})
	if err != nil {
		t.Fatal(err)
	}
	sc := s.Scope("cluster.cds_egress_demo_greeting-v1_http_9080.")
	codes := sc.CodeCounters("upstream_rq")
	for _, c := range []int{200, 200, 200, 503, 503} {
		codes.Inc(c)
	}
	sc.Counter("upstream_cx_connect_fail") // never used: not sent
	sc.Gauge("membership_healthy").Set(2)
	h := sc.Histogram("upstream_rq_time", stats.Milliseconds)
	for range 4 {
		h.Record(12)
	}
	h.Record(250)
	return s.Snapshot(fixedTime)
}

func TestLines(t *testing.T) {
	t.Parallel()
	snap := snapshot(t)
	plain := Lines(Config{}, snap)
	wantPlain := []string{
		"envoy.cluster.cds_egress_demo_greeting-v1_http_9080.upstream_rq_200:3|c",
		"envoy.cluster.cds_egress_demo_greeting-v1_http_9080.upstream_rq_2xx:3|c",
		"envoy.cluster.cds_egress_demo_greeting-v1_http_9080.upstream_rq_503:2|c",
		"envoy.cluster.cds_egress_demo_greeting-v1_http_9080.upstream_rq_5xx:2|c",
		"envoy.cluster.cds_egress_demo_greeting-v1_http_9080.membership_healthy:2|g",
		"envoy.cluster.cds_egress_demo_greeting-v1_http_9080.upstream_rq_time:12|ms|@0.25",
		"envoy.cluster.cds_egress_demo_greeting-v1_http_9080.upstream_rq_time:255|ms",
	}
	if !slices.Equal(plain, wantPlain) {
		t.Errorf("statsd lines:\n%s\nwant\n%s", strings.Join(plain, "\n"), strings.Join(wantPlain, "\n"))
	}
	dog := Lines(Config{Tagged: true, Prefix: "mesh"}, snap)
	cl := "envoy.cluster_name:cds_egress_demo_greeting-v1_http_9080,appmesh.mesh:demo"
	wantDog := []string{
		"mesh.cluster.upstream_rq:3|c|#envoy.response_code:200," + cl,
		"mesh.cluster.upstream_rq_xx:3|c|#envoy.response_code_class:2," + cl,
		"mesh.cluster.upstream_rq:2|c|#envoy.response_code:503," + cl,
		"mesh.cluster.upstream_rq_xx:2|c|#envoy.response_code_class:5," + cl,
		"mesh.cluster.membership_healthy:2|g|#" + cl,
		"mesh.cluster.upstream_rq_time:12|ms|@0.25|#" + cl,
		"mesh.cluster.upstream_rq_time:255|ms|#" + cl,
	}
	if !slices.Equal(dog, wantDog) {
		t.Errorf("dogstatsd lines:\n%s\nwant\n%s", strings.Join(dog, "\n"), strings.Join(wantDog, "\n"))
	}
}

func TestLinesSanitize(t *testing.T) {
	t.Parallel()
	m := &stats.Metric{Name: "a:b|c@d", TagExtractedName: "a:b", Tags: []stats.Tag{{Name: "k", Value: "v,w|x#y"}}}
	snap := &stats.Snapshot{Counters: []stats.CounterValue{{Metric: m, Delta: 1}}}
	if got := Lines(Config{}, snap)[0]; got != "envoy.a_b_c_d:1|c" {
		t.Errorf("plain: %q", got)
	}
	if got := Lines(Config{Tagged: true}, snap)[0]; got != "envoy.a_b:1|c|#k:v_w_x_y" {
		t.Errorf("tagged: %q", got)
	}
}

func TestPack(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 7))
	for _, max := range []int{1, 10, 64, 200, 1432} {
		var lines []string
		for i := range 500 {
			lines = append(lines, fmt.Sprintf("l%d:%s", i, strings.Repeat("x", r.IntN(120))))
		}
		var got []string
		pack(lines, max, func(d []byte) {
			parts := strings.Split(string(d), "\n")
			if len(d) > max && len(parts) != 1 {
				t.Fatalf("max %d: %d-byte datagram with %d lines", max, len(d), len(parts))
			}
			for _, p := range parts {
				if p == "" {
					t.Fatalf("max %d: empty line in %q", max, d)
				}
			}
			got = append(got, parts...)
		})
		if !slices.Equal(got, lines) {
			t.Fatalf("max %d: lines lost, split or reordered", max)
		}
	}
	// Lines that fit are packed, not sent one by one.
	n := 0
	pack([]string{"aaaa", "bbbb", "cccc"}, 9, func([]byte) { n++ })
	if n != 2 {
		t.Errorf("%d datagrams for 3 lines of 4 in 9 bytes, want 2", n)
	}
}

// receive reads datagrams until every wanted line has arrived.
func receive(t *testing.T, pc net.PacketConn, want []string, max int) {
	t.Helper()
	missing := map[string]int{}
	for _, l := range want {
		missing[l]++
	}
	buf := make([]byte, 65536)
	if err := pc.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for len(missing) > 0 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read: %v (still missing %d lines)", err, len(missing))
		}
		if n > max && strings.Contains(string(buf[:n]), "\n") {
			t.Errorf("%d-byte datagram over the %d limit", n, max)
		}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			if missing[l] == 0 {
				t.Fatalf("unexpected or duplicate line %q", l)
			}
			if missing[l]--; missing[l] == 0 {
				delete(missing, l)
			}
		}
	}
}

func TestUDP(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cfg := Config{Network: "udp", Address: pc.LocalAddr().String(), Tagged: true, MaxDatagramSize: 200}
	sink, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	snap := snapshot(t)
	if err := sink.Flush(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	receive(t, pc, Lines(cfg, snap), 200)
}

func TestUnixgram(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dsd.sock")
	cfg := Config{Network: "unixgram", Address: path, Tagged: true}
	sink, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	snap := snapshot(t)
	// The agent is not there yet: an error, and a retry next flush.
	if err := sink.Flush(context.Background(), snap); err == nil {
		t.Error("flush to a missing socket succeeded")
	}
	pc, err := net.ListenPacket("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := sink.Flush(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	receive(t, pc, Lines(cfg, snap), DefaultUnixgramDatagram)
}

func TestUDPAgentDownIsNotAnError(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nobody listens there now
	sink, err := New(Config{Network: "udp", Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	for range 3 {
		if err := sink.Flush(context.Background(), snapshot(t)); err != nil {
			t.Errorf("flush: %v", err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{Network: "tcp", Address: "127.0.0.1:1"}, {Network: "udp", Address: "no-port"}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env     map[string]string
		enabled bool
		want    Config
		err     bool
	}{
		{env: map[string]string{}},
		{env: map[string]string{EnvEnableDogStatsD: "0", EnvPort: "x"}},
		{env: map[string]string{EnvEnableDogStatsD: "1"}, enabled: true,
			want: Config{Network: "udp", Address: "127.0.0.1:8125", Tagged: true}},
		{env: map[string]string{EnvEnableDogStatsD: "1", EnvAddress: "10.0.0.1", EnvPort: "9125"}, enabled: true,
			want: Config{Network: "udp", Address: "10.0.0.1:9125", Tagged: true}},
		{env: map[string]string{EnvEnableDogStatsD: "true", EnvAddress: "::1"}, enabled: true,
			want: Config{Network: "udp", Address: "[::1]:8125", Tagged: true}},
		{env: map[string]string{EnvEnableDogStatsD: "1", EnvSocketPath: "/var/run/datadog/dsd.socket", EnvAddress: "10.0.0.1"}, enabled: true,
			want: Config{Network: "unixgram", Address: "/var/run/datadog/dsd.socket", Tagged: true}},
		{env: map[string]string{EnvEnableDogStatsD: "1", EnvPort: "99999"}, err: true},
		{env: map[string]string{EnvEnableDogStatsD: "sure"}, err: true},
		{env: map[string]string{EnvEnableDogStatsD: "1", EnvAddress: "[", EnvPort: "1"}, err: true},
		{env: map[string]string{EnvEnableDogStatsD: "1", EnvAddress: "agent host"}, err: true},
	} {
		got, enabled, err := ConfigFromEnv(func(k string) string { return tc.env[k] })
		if (err != nil) != tc.err || enabled != tc.enabled || got != tc.want {
			t.Errorf("%v: got %+v %v %v, want %+v %v (error %v)", tc.env, got, enabled, err, tc.want, tc.enabled, tc.err)
		}
	}
}

func FuzzConfigFromEnv(f *testing.F) {
	f.Add("1", "127.0.0.1", "8125", "")
	f.Add("true", "::1", "0", "")
	f.Add("1", "", "", "/tmp/x.sock")
	f.Fuzz(func(t *testing.T, enable, addr, port, sock string) {
		env := map[string]string{EnvEnableDogStatsD: enable, EnvAddress: addr, EnvPort: port, EnvSocketPath: sock}
		cfg, enabled, err := ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil || !enabled {
			return
		}
		switch cfg.Network {
		case "unixgram":
			if cfg.Address != sock {
				t.Fatalf("socket %q, want %q", cfg.Address, sock)
			}
		case "udp":
			h, p, err := net.SplitHostPort(cfg.Address)
			if err != nil || p == "" || (addr != "" && h != addr) {
				t.Fatalf("address %q from %q/%q: %v", cfg.Address, addr, port, err)
			}
		default:
			t.Fatalf("network %q", cfg.Network)
		}
	})
}

var update = flag.Bool("update", false, "rewrite golden files")

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

// TestGoldenDatagrams pins the datagrams of both flavours for the
// snapshot above, packed at 300 bytes.
func TestGoldenDatagrams(t *testing.T) {
	t.Parallel()
	snap := snapshot(t)
	for file, cfg := range map[string]Config{
		"statsd.golden":    {MaxDatagramSize: 300},
		"dogstatsd.golden": {Tagged: true, MaxDatagramSize: 300},
	} {
		var b bytes.Buffer
		pack(Lines(cfg, snap), cfg.MaxDatagramSize, func(d []byte) {
			fmt.Fprintf(&b, "--- datagram (%d bytes)\n%s\n", len(d), d)
		})
		golden(t, file, b.Bytes())
	}
}
