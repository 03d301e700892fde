package sidecar

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/nodeid"
)

func TestParseSecondsOrDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"15", 15 * time.Second, false},
		{"0.5", 500 * time.Millisecond, false},
		{"15s", 15 * time.Second, false},
		{"2m", 2 * time.Minute, false},
		{"0", 0, false},
		{"-1", 0, true},
		{"-1s", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
		{"1e300", 0, true},
		{"soon", 0, true},
		{"", 0, true},
	} {
		got, err := parseSecondsOrDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q: %v %v, want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), "want") {
			t.Errorf("%q: error %q does not say what is wanted", tc.in, err)
		}
	}
}

func TestPortMap(t *testing.T) {
	m, err := portMap("listen", []string{"9080=0.0.0.0:9080", "8080=[::1]:18080"})
	if err != nil || m[9080] != "0.0.0.0:9080" || m[8080] != "[::1]:18080" {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"9080", "0=127.0.0.1:1", "70000=127.0.0.1:1", "x=127.0.0.1:1", "9080=nohostport"} {
		if _, err := portMap("listen", []string{bad}); err == nil || !strings.Contains(err.Error(), "--listen") {
			t.Errorf("%q: error %v should name --listen", bad, err)
		}
	}
}

// FuzzParseSecondsOrDuration: any value is a non-negative, finite
// duration or an error.
func FuzzParseSecondsOrDuration(f *testing.F) {
	for _, s := range []string{"15", "15s", "1e300", "NaN", "-0", "0x10", "1h2m3.5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := parseSecondsOrDuration(v)
		if err == nil && d < 0 {
			t.Fatalf("%q: negative %v", v, d)
		}
	})
}

// FuzzPortMap: a parsed mapping always has a port in 1..65535 and an
// address with a host and a port.
func FuzzPortMap(f *testing.F) {
	f.Add("9080=0.0.0.0:9080")
	f.Add("1=[::1]:0")
	f.Add("=:")
	f.Fuzz(func(t *testing.T, v string) {
		m, err := portMap("app", []string{v})
		if err != nil {
			if !strings.Contains(err.Error(), "--app") {
				t.Fatalf("error %q does not name the flag", err)
			}
			return
		}
		for p, a := range m {
			if p == 0 || p > 65535 || !strings.Contains(a, ":") {
				t.Fatalf("%q: %d=%q", v, p, a)
			}
		}
	})
}

// Run refuses a configuration it cannot use with a *ConfigError naming
// the flag or variable, before it binds anything.
func TestRunConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		env  map[string]string
		want string
	}{
		{"no identity", Config{}, nil, "node identity"},
		{"bad identity", Config{Node: "mesh/m"}, nil, "node identity"},
		{"identity from env", Config{Listen: []string{"x"}}, map[string]string{"APPMESH_RESOURCE_ARN": "mesh/m/virtualNode/n"}, "--listen"},
		{"app", Config{Node: "mesh/m/virtualNode/n", App: []string{"9080=nohostport"}}, nil, "--app"},
		{"egress port", Config{Node: "mesh/m/virtualNode/n", EgressPorts: []string{"0=127.0.0.1:1"}}, nil, "--egress-port"},
		{"concurrency", Config{Node: "mesh/m/virtualNode/n", Concurrency: -1, ConcurrencySet: true}, nil, "--concurrency -1"},
		{"envoy concurrency", Config{Node: "mesh/m/virtualNode/n"}, map[string]string{"ENVOY_CONCURRENCY": "two"}, `ENVOY_CONCURRENCY="two"`},
		{"log level", Config{Node: "mesh/m/virtualNode/n", LogLevel: "info"}, map[string]string{"ENVOY_LOG_LEVEL": "loud"}, "ENVOY_LOG_LEVEL"},
		{"flush interval", Config{Node: "mesh/m/virtualNode/n", LogLevel: "info"}, map[string]string{"ENVOY_STATS_FLUSH_INTERVAL": "0"}, "ENVOY_STATS_FLUSH_INTERVAL"},
		{"emf include", Config{Node: "mesh/m/virtualNode/n", LogLevel: "info", EMFPath: "-", EMFInclude: "("}, nil, "--emf-include"},
	} {
		cfg := tc.cfg
		if cfg.LogLevel == "" {
			cfg.LogLevel = "info"
		}
		cfg.Getenv = envOf(tc.env)
		cfg.Stderr, cfg.Stdout = io.Discard, io.Discard
		err := Run(context.Background(), cfg)
		if !IsConfigError(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a ConfigError naming %q", tc.name, err, tc.want)
		}
	}
}

// The registration advertises where the inbound listener binds.
func TestRegistrationBody(t *testing.T) {
	id := nodeid.ID{Kind: nodeid.VirtualNode, Mesh: "m", Name: "n"}
	for _, tc := range []struct {
		name     string
		cfg      Config
		addr     string
		port     int
		ttl      time.Duration
		instance string
	}{
		{"App Mesh's port", Config{}, "127.0.0.1", 15000, 3 * time.Second, ""},
		{"ingress addr", Config{IngressAddr: "10.0.0.5:15000", RegistrationTTL: 15 * time.Second, InstanceID: "i-1"}, "10.0.0.5", 15000, 15 * time.Second, "i-1"},
		{"first listen mapping", Config{IngressAddr: "none", Listen: []string{"9080=127.0.0.2:19080", "8080=127.0.0.3:1"}}, "127.0.0.2", 19080, 3 * time.Second, ""},
		{"advertised", Config{IngressAddr: "0.0.0.0:0", Advertise: "192.0.2.1"}, "192.0.2.1", 0, 3 * time.Second, ""},
	} {
		cfg := tc.cfg
		cfg.Server = "http://127.0.0.1:7070"
		r, err := newRegistration(cfg, id, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.body.Address != tc.addr || r.body.Port != tc.port || r.ttl != tc.ttl || r.body.TTLSeconds != int(tc.ttl/time.Second) || r.body.HealthStatus != "HEALTHY" {
			t.Errorf("%s: %+v ttl %v, want %s:%d ttl %v", tc.name, r.body, r.ttl, tc.addr, tc.port, tc.ttl)
		}
		if tc.instance != "" && r.instance != tc.instance || r.instance == "" {
			t.Errorf("%s: instance %q, want %q", tc.name, r.instance, tc.instance)
		}
	}
	for _, bad := range []Config{{Server: "ftp://x"}, {Server: "http://127.0.0.1:7070", IngressAddr: "noport"}} {
		if _, err := newRegistration(bad, id, nil); !IsConfigError(err) {
			t.Errorf("%+v: %v, want a ConfigError", bad, err)
		}
	}
}
