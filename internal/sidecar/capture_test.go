package sidecar

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/capture"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

func TestCaptureListeners(t *testing.T) {
	t.Parallel()
	cc, err := capture.FromEnv(func(k string) string {
		return map[string]string{capture.EnvAppPorts: "8080,9090", capture.EnvEgressPort: "16001"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := captureListeners(&cfg, cc); err != nil {
		t.Fatal(err)
	}
	if cfg.IngressAddr != "0.0.0.0:15000" || cfg.EgressAddr != "127.0.0.1:16001" || cfg.DNSAddr != "127.0.0.1:15053" || cfg.registerPort != 8080 {
		t.Fatalf("got ingress %s egress %s dns %s register %d", cfg.IngressAddr, cfg.EgressAddr, cfg.DNSAddr, cfg.registerPort)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{EgressAddr: "127.0.0.1:15001"}, "--egress-addr 127.0.0.1:15001: capture sends traffic to port 16001 (APPMESH_ENVOY_EGRESS_PORT)"},
		{Config{IngressAddr: "0.0.0.0:9000"}, "--ingress-addr 0.0.0.0:9000: capture sends traffic to port 15000"},
		{Config{DNSAddr: "127.0.0.1:53"}, "--dns-addr 127.0.0.1:53: capture sends traffic to port 15053 (MESHLENS_DNS_PORT)"},
		{Config{EgressAddr: "nonsense"}, "--egress-addr \"nonsense\""},
	} {
		cfg := tc.cfg
		if err := captureListeners(&cfg, cc); err == nil || !strings.Contains(err.Error(), tc.want) || !IsConfigError(err) {
			t.Errorf("%+v: %v, want a config error containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestMeshNames(t *testing.T) {
	t.Parallel()
	routes := &table.RouteTable{VirtualHosts: []*table.VirtualHost{
		{Domains: []string{"greeting.demo.local", "greeting.demo.local:8080"}},
		{Domains: []string{"colors.demo.local:9080", "10.0.0.7:9080", "*.wild.local"}},
		{Domains: []string{"*"}},
	}}
	s := &table.Snapshot{Listeners: []*table.Listener{
		{Direction: table.Outbound, Chains: []*table.FilterChain{
			{TCP: &table.TCPProxy{}, Meta: table.MeshMetadata{VirtualService: "db.demo.local"}},
			{HTTP: &table.HTTPManager{Routes: routes}},
		}},
		{Direction: table.Inbound, Chains: []*table.FilterChain{
			{HTTP: &table.HTTPManager{Routes: &table.RouteTable{VirtualHosts: []*table.VirtualHost{{Domains: []string{"inbound.demo.local"}}}}}},
		}},
	}}
	got := meshNames(s)
	slices.Sort(got)
	got = slices.Compact(got)
	if want := []string{"colors.demo.local", "db.demo.local", "greeting.demo.local"}; !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
}

// --capture refuses what it cannot serve before it touches the network.
func TestCaptureConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		node string
		env  map[string]string
		want string
	}{
		{"mesh/demo/virtualGateway/edge", nil, "--capture is for a virtual node's sidecar"},
		{"nonsense", nil, "node identity"},
		{"mesh/demo/virtualNode/greeting", map[string]string{capture.EnvAppPorts: "http"}, `--capture: APPMESH_APP_PORTS: "http"`},
	} {
		env := tc.env
		cfg := Config{Node: tc.node, Capture: true, LogLevel: "info", Getenv: func(k string) string { return env[k] }, Stderr: io.Discard, Stdout: io.Discard}
		err := Run(context.Background(), cfg)
		if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: %v, want a config error containing %q", tc.node, tc.env, err, tc.want)
		}
	}
}

// The proxy a --capture supervisor started stops when the supervisor's
// end of the lifeline pipe closes (the supervisor exited, however it
// ended), and not before.
func TestWatchSupervisorStopsAtTheLifelinesEnd(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The descriptor is the watcher's from here on (it closes it).
	fd, err := syscall.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	stopped := make(chan struct{})
	getenv := func(k string) string {
		if k == envCaptureLifeline {
			return strconv.Itoa(fd)
		}
		return ""
	}
	if err := watchSupervisor(getenv, slog.New(slog.DiscardHandler), func() { close(stopped) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
		t.Fatal("stopped while the supervisor's end is open")
	case <-time.After(200 * time.Millisecond):
	}
	w.Close()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("not stopped 10s after the supervisor's end closed")
	}
}

// Started otherwise (no lifeline named), nothing is watched; a malformed
// value is refused, naming the variable.
func TestWatchSupervisorEnv(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if err := watchSupervisor(func(string) string { return "" }, log, func() { t.Error("stop called") }); err != nil {
		t.Fatalf("no lifeline: %v", err)
	}
	for _, v := range []string{"x", "1", "-3"} {
		err := watchSupervisor(func(string) string { return v }, log, func() { t.Error("stop called") })
		if err == nil || !strings.Contains(err.Error(), envCaptureLifeline) {
			t.Errorf("%s=%q: %v, want an error naming the variable", envCaptureLifeline, v, err)
		}
	}
}
