package sidecar

import (
	"strings"
	"testing"

	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

func TestTracingFromEnv(t *testing.T) {
	t.Parallel()
	node := nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "greeter"}
	for _, tc := range []struct {
		name     string
		env      map[string]string
		provider table.TracingProvider
		endpoint string
		service  string
		percent  float64 // -1: none set
		err      string
	}{
		{name: "off", env: map[string]string{"XRAY_DAEMON_PORT": "3000"}},
		{name: "xray defaults", env: map[string]string{"ENABLE_ENVOY_XRAY_TRACING": "1"}, provider: table.TracingXRay, endpoint: "127.0.0.1:2000", service: "demo/greeter", percent: -1},
		{name: "xray set", env: map[string]string{"ENABLE_ENVOY_XRAY_TRACING": "true", "XRAY_DAEMON_PORT": "3000", "XRAY_SAMPLING_RATE": "0.25", "XRAY_SEGMENT_NAME": "seg"}, provider: table.TracingXRay, endpoint: "127.0.0.1:3000", service: "seg", percent: 25},
		{name: "xray sdk address", env: map[string]string{"ENABLE_ENVOY_XRAY_TRACING": "1", "AWS_XRAY_DAEMON_ADDRESS": "tcp:10.0.0.1:2000 udp:10.0.0.2:2001"}, provider: table.TracingXRay, endpoint: "10.0.0.2:2001", service: "demo/greeter", percent: -1},
		{name: "jaeger", env: map[string]string{"ENABLE_ENVOY_JAEGER_TRACING": "1", "JAEGER_TRACER_ADDRESS": "jaeger", "JAEGER_TRACER_PORT": "9412"}, provider: table.TracingZipkin, endpoint: "jaeger:9412", service: "demo/greeter", percent: -1},
		{name: "both", env: map[string]string{"ENABLE_ENVOY_JAEGER_TRACING": "1", "ENABLE_ENVOY_XRAY_TRACING": "1"}, err: "only one tracer"},
		{name: "bad switch", env: map[string]string{"ENABLE_ENVOY_XRAY_TRACING": "maybe"}, err: "ENABLE_ENVOY_XRAY_TRACING"},
		{name: "bad port", env: map[string]string{"ENABLE_ENVOY_XRAY_TRACING": "1", "XRAY_DAEMON_PORT": "70000"}, err: "XRAY_DAEMON_PORT \"70000\""},
		{name: "bad rate", env: map[string]string{"ENABLE_ENVOY_XRAY_TRACING": "1", "XRAY_SAMPLING_RATE": "5"}, err: "XRAY_SAMPLING_RATE \"5\""},
		{name: "bad address", env: map[string]string{"ENABLE_ENVOY_XRAY_TRACING": "1", "AWS_XRAY_DAEMON_ADDRESS": "daemon"}, err: "AWS_XRAY_DAEMON_ADDRESS"},
		{name: "bad jaeger port", env: map[string]string{"ENABLE_ENVOY_JAEGER_TRACING": "1", "JAEGER_TRACER_PORT": "x"}, err: "JAEGER_TRACER_PORT"},
	} {
		o, err := tracingFromEnv(envOf(tc.env), node)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want one with %q", tc.name, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.provider == 0:
			if o != nil {
				t.Errorf("%s: %+v, want none", tc.name, o)
			}
		case o == nil || o.Provider != tc.provider || o.Endpoint != tc.endpoint || o.ServiceName != tc.service ||
			(tc.percent < 0) != (o.Percent == nil) || o.Percent != nil && *o.Percent != tc.percent || o.Tags["meshlens.virtual_node"] != "greeter":
			t.Errorf("%s: %+v, want %v at %s as %s, percent %v", tc.name, o, tc.provider, tc.endpoint, tc.service, tc.percent)
		}
	}
}
