package cli

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/sidecar"
)

// The proxy command only parses flags into a sidecar.Config: every flag
// lands in its field, and the root's --server and --log-level and the
// environment come along.
func TestProxyFlagsToConfig(t *testing.T) {
	var got *sidecar.Config
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
		getenv:     func(k string) string { return map[string]string{"MESHLENS_SERVER": "http://10.0.0.1:7070"}[k] },
		runSidecar: func(_ context.Context, cfg sidecar.Config) error { got = &cfg; return nil },
	}
	root := newRoot(e)
	root.SetArgs([]string{"--log-level", "debug", "proxy",
		"--node", "mesh/demo/virtualNode/greeter", "--xds-addr", "cp:15010", "--admin-addr", "127.0.0.1:0",
		"--ingress-addr", "127.0.0.1:0", "--egress-addr", "127.0.0.1:0", "--listen", "9080=127.0.0.1:0",
		"--app", "9080=127.0.0.1:8080", "--egress-port", "5432=127.0.0.1:0", "--instance-id", "i-1",
		"--advertise-addr", "10.0.0.2", "--register=false", "--registration-ttl", "30s", "--drain-timeout", "2s",
		"--stats=false", "--concurrency", "2", "--pprof", "--emf-path", "-", "--emf-namespace", "ns", "--emf-include", "^http",
		"--metrics-service-addr", "none", "--metrics-service-interval", "3s", "--metrics-service-all-stats",
		"--mesh-metrics-max-routes", "7", "--mesh-metrics-idle-timeout", "1m",
	})
	if err := root.ExecuteContext(context.Background()); err != nil || got == nil {
		t.Fatalf("%v, config %v", err, got)
	}
	cfg := *got
	switch {
	case cfg.Node != "mesh/demo/virtualNode/greeter", cfg.XDSAddr != "cp:15010", cfg.AdminAddr != "127.0.0.1:0",
		cfg.IngressAddr != "127.0.0.1:0", cfg.EgressAddr != "127.0.0.1:0",
		!slices.Equal(cfg.Listen, []string{"9080=127.0.0.1:0"}), !slices.Equal(cfg.App, []string{"9080=127.0.0.1:8080"}),
		!slices.Equal(cfg.EgressPorts, []string{"5432=127.0.0.1:0"}), cfg.InstanceID != "i-1", cfg.Advertise != "10.0.0.2",
		cfg.Register, cfg.RegistrationTTL != 30*time.Second, cfg.DrainTimeout != 2*time.Second, cfg.Stats,
		cfg.Concurrency != 2, !cfg.Pprof, cfg.EMFPath != "-", cfg.EMFNamespace != "ns", cfg.EMFInclude != "^http",
		cfg.MetricsServiceAddr != "none", cfg.MetricsServiceInterval != 3*time.Second, !cfg.MetricsServiceAllStats,
		cfg.MeshMetricsMaxRoutes != 7, cfg.MeshMetricsIdleTimeout != time.Minute,
		cfg.Server != "http://10.0.0.1:7070", cfg.Version != Version, cfg.Getenv == nil, cfg.Stderr != &stderr, cfg.Stdout != &stdout:
		t.Errorf("config %+v", cfg)
	}
	if cfg.LogLevel != "debug" || !cfg.LogLevelSet {
		t.Errorf("log level %q given %v, want debug given", cfg.LogLevel, cfg.LogLevelSet)
	}
}

// A configuration the sidecar cannot use exits with the usage code and
// says why, before anything binds.
func TestProxyConfigErrorsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"proxy", "--node", "nonsense"}, "node identity"},
		{[]string{"proxy", "--node", "mesh/m/virtualNode/n", "--listen", "9080"}, "--listen"},
		{[]string{"proxy", "--node", "mesh/m/virtualNode/n", "--concurrency", "-1"}, "--concurrency -1"},
		{[]string{"proxy", "--node", "mesh/m/virtualNode/n", "--log-level", "loud"}, "--log-level"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		if code != ExitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), ExitUsage, tc.want)
		}
	}
}
