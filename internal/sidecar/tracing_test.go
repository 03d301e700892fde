package sidecar

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
	"github.com/meshlens/meshlens/internal/tracing/sampling"
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

// XRAY_SAMPLING_RULE_MANIFEST's rules decide requests with no incoming
// decision; a bad file is a start-up error naming the file and field.
func TestTracingFromEnvSamplingRules(t *testing.T) {
	t.Parallel()
	node := nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "greeter"}
	dir := t.TempDir()
	good := filepath.Join(dir, "rules.json")
	if err := os.WriteFile(good, []byte(`{"version": 2, "rules": [{"description": "health", "host": "*", "http_method": "GET", "url_path": "/health*", "fixed_target": 0, "rate": 0}, {"description": "api", "host": "*", "http_method": "*", "url_path": "/api/*", "fixed_target": 0, "rate": 1}], "default": {"fixed_target": 0, "rate": 0}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version": 2, "rules": [{"host": "*", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 2}], "default": {"fixed_target": 1, "rate": 0.1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := tracingFromEnv(envOf(map[string]string{"ENABLE_ENVOY_XRAY_TRACING": "1", "XRAY_SAMPLING_RULE_MANIFEST": good}), node)
	if err != nil {
		t.Fatal(err)
	}
	if o.Rules == nil {
		t.Fatal("no rules read")
	}
	// Without the manifest the sampler samples at XRAY_SAMPLING_RATE 1.
	without, err := sampling.New(sampling.Config{Percent: 100})
	if err != nil {
		t.Fatal(err)
	}
	with, err := sampling.New(sampling.Config{Percent: 100, Rules: o.Rules})
	if err != nil {
		t.Fatal(err)
	}
	var ctx propagation.SpanContext
	ctx.TraceID[15] = 1
	now := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		method, path string
		want         bool
	}{{"GET", "/healthz", false}, {"POST", "/api/orders", true}, {"GET", "/other", false}} {
		if !without.SampleHTTP(ctx, "", "svc", tc.method, tc.path, now) {
			t.Errorf("%s %s: not sampled without the manifest", tc.method, tc.path)
		}
		if got := with.SampleHTTP(ctx, "", "svc", tc.method, tc.path, now); got != tc.want {
			t.Errorf("%s %s: sampled %v with the manifest, want %v", tc.method, tc.path, got, tc.want)
		}
	}
	for _, tc := range []struct{ path, err string }{
		{bad, bad + ": rules[0].rate"},
		{filepath.Join(dir, "missing.json"), "XRAY_SAMPLING_RULE_MANIFEST: open " + filepath.Join(dir, "missing.json")},
	} {
		_, err := tracingFromEnv(envOf(map[string]string{"ENABLE_ENVOY_XRAY_TRACING": "1", "XRAY_SAMPLING_RULE_MANIFEST": tc.path}), node)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err %v, want one with %q", tc.path, err, tc.err)
		}
	}
}
