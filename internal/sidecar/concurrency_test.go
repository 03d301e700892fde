package sidecar

import (
	"strings"
	"testing"
)

func TestConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		env     map[string]string
		gateway bool
		want    int
		from    string
		err     string
	}{
		{name: "sidecar", want: 1, from: concurrencySidecar},
		{name: "gateway", gateway: true, want: 0, from: concurrencyGateway},
		{name: "flag", cfg: Config{Concurrency: 3, ConcurrencySet: true}, env: map[string]string{"ENVOY_CONCURRENCY": "2", "GOMAXPROCS": "4"}, want: 3, from: concurrencyFlag},
		{name: "flag every core", cfg: Config{Concurrency: 0, ConcurrencySet: true}, env: map[string]string{"ENVOY_CONCURRENCY": "2"}, want: 0, from: concurrencyFlag},
		{name: "flag on a gateway", cfg: Config{Concurrency: 1, ConcurrencySet: true}, gateway: true, want: 1, from: concurrencyFlag},
		{name: "flag negative", cfg: Config{Concurrency: -2, ConcurrencySet: true}, err: "--concurrency -2"},
		{name: "flag at the bound", cfg: Config{Concurrency: 1024, ConcurrencySet: true}, want: 1024, from: concurrencyFlag},
		{name: "flag over the bound", cfg: Config{Concurrency: 1025, ConcurrencySet: true}, err: "--concurrency 1025"},
		{name: "envoy over the bound", env: map[string]string{"ENVOY_CONCURRENCY": "1000000"}, err: `ENVOY_CONCURRENCY="1000000"`},
		{name: "envoy", env: map[string]string{"ENVOY_CONCURRENCY": " 2 ", "GOMAXPROCS": "4"}, want: 2, from: concurrencyEnvoy},
		{name: "envoy every core", env: map[string]string{"ENVOY_CONCURRENCY": "0"}, want: 0, from: concurrencyEnvoy},
		{name: "envoy on a gateway", env: map[string]string{"ENVOY_CONCURRENCY": "1"}, gateway: true, want: 1, from: concurrencyEnvoy},
		{name: "envoy not a number", env: map[string]string{"ENVOY_CONCURRENCY": "2.5"}, err: `ENVOY_CONCURRENCY="2.5"`},
		{name: "envoy negative", env: map[string]string{"ENVOY_CONCURRENCY": "-1"}, err: `ENVOY_CONCURRENCY="-1"`},
		{name: "go", env: map[string]string{"GOMAXPROCS": "2"}, want: 0, from: concurrencyGo},
		{name: "go on a gateway", env: map[string]string{"GOMAXPROCS": "1"}, gateway: true, want: 0, from: concurrencyGo},
		{name: "empty variables", env: map[string]string{"ENVOY_CONCURRENCY": " ", "GOMAXPROCS": ""}, want: 1, from: concurrencySidecar},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Getenv = envOf(tc.env)
			n, from, err := concurrency(cfg, tc.gateway)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !IsConfigError(err) {
					t.Fatalf("err = %v, want a configuration error naming %s", err, tc.err)
				}
				return
			}
			if err != nil || n != tc.want || from != tc.from {
				t.Fatalf("concurrency = %d, %q, %v; want %d, %q", n, from, err, tc.want, tc.from)
			}
		})
	}
}

// ENVOY_CONCURRENCY, whatever it holds: a core count of 0 or more from
// the variable, or a configuration error that names it; never a panic.
func FuzzConcurrencyEnv(f *testing.F) {
	for _, s := range []string{"", "0", "1", " 2 ", "-1", "2.5", "many", "99999999999999999999", "+3", "0x2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		cfg := Config{Getenv: envOf(map[string]string{"ENVOY_CONCURRENCY": v})}
		n, from, err := concurrency(cfg, false)
		switch {
		case err != nil:
			if !IsConfigError(err) || !strings.Contains(err.Error(), "ENVOY_CONCURRENCY") {
				t.Fatalf("%q: error %v does not name ENVOY_CONCURRENCY", v, err)
			}
		case strings.TrimSpace(v) == "":
			if n != 1 || from != concurrencySidecar {
				t.Fatalf("%q (unset): %d from %s, want the sidecar default", v, n, from)
			}
		case n < 0 || n > maxConcurrency || from != concurrencyEnvoy:
			t.Fatalf("%q: %d from %s", v, n, from)
		}
	})
}
