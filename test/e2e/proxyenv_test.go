package e2e

import (
	"strings"
	"testing"
	"time"
)

// App Mesh's ENVOY_LOG_LEVEL sets the proxy's log level, and a variable
// of App Mesh's Envoy image that meshlens does not honour (Datadog
// tracing) draws a warning at start-up.
func TestProxyAppMeshEnv(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, tcpMesh, "apply", "-f", "-")
	p := startProxyEnv(t, s, "mesh/tcp/virtualNode/db", []string{"ENVOY_LOG_LEVEL=debug", "ENABLE_ENVOY_DATADOG_TRACING=1", "APPMESH_SDS_SOCKET_PATH=/tmp/sds.sock"},
		true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--register=false")
	eventually(t, 10*time.Second, "the start-up log", func() error {
		logs := p.logs.String()
		for _, want := range []string{
			`level=DEBUG msg="App Mesh environment variable read" name=ENVOY_LOG_LEVEL`,
			`level=WARN msg="App Mesh environment variable ignored" name=ENABLE_ENVOY_DATADOG_TRACING reason="Datadog tracing is not supported`,
			// Honoured now: secrets from the SDS server on that socket.
			`level=DEBUG msg="App Mesh environment variable read" name=APPMESH_SDS_SOCKET_PATH`,
		} {
			if !strings.Contains(logs, want) {
				return &missing{want, logs}
			}
		}
		return nil
	})

	// --log-level on the command line wins over ENVOY_LOG_LEVEL.
	q := startProxyEnv(t, s, "mesh/tcp/virtualNode/db", []string{"ENVOY_LOG_LEVEL=debug"},
		true, "--log-level", "info", "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--register=false")
	if logs := q.logs.String(); strings.Contains(logs, "level=DEBUG") {
		t.Errorf("--log-level info, yet debug lines:\n%s", logs)
	}
}

// missing is a line not (yet) in a log.
type missing struct{ want, logs string }

func (m *missing) Error() string { return "no " + m.want + " in:\n" + m.logs }
