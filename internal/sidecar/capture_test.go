package sidecar

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

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
