package table

import (
	"strings"
	"testing"

	"github.com/meshlens/meshlens/internal/xdsproto"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	tracev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/trace/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingtypev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/tracing/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
)

func tracingProvider(t *testing.T, name string, m xdsproto.Message) *tracev3.Tracing_Http {
	t.Helper()
	a, err := xdsproto.NewAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return &tracev3.Tracing_Http{Name: name, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: a}}
}

// TestCompileTracingErrors: a tracing field meshlens cannot follow is
// refused with the field named.
func TestCompileTracingErrors(t *testing.T) {
	t.Parallel()
	xray := func(port uint32) *tracev3.Tracing_Http {
		return tracingProvider(t, "envoy.tracers.xray", &tracev3.XRayConfig{SegmentName: "m/n", DaemonEndpoint: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}})
	}
	for _, tc := range []struct {
		name string
		tr   *hcmv3.HttpConnectionManager_Tracing
		want string
	}{
		{"percentage", &hcmv3.HttpConnectionManager_Tracing{RandomSampling: &typev3.Percent{Value: 200}, Provider: xray(2000)}, "Percent.Value: value must be inside range [0, 100]"},
		{"no cluster", &hcmv3.HttpConnectionManager_Tracing{Provider: tracingProvider(t, "otel", &tracev3.OpenTelemetryConfig{})}, `tracing: provider "otel": grpc_service.envoy_grpc.cluster_name is required`},
		{"unknown cluster", &hcmv3.HttpConnectionManager_Tracing{Provider: tracingProvider(t, "otel", &tracev3.OpenTelemetryConfig{GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "nope"}}}})}, `grpc_service.envoy_grpc.cluster_name: cluster "nope" not received`},
		{"zipkin proto", &hcmv3.HttpConnectionManager_Tracing{Provider: tracingProvider(t, "zipkin", &tracev3.ZipkinConfig{CollectorCluster: "c", CollectorEndpoint: "/api/v2/spans", CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_PROTO})}, "collector_endpoint_version HTTP_PROTO"},
		{"zipkin path", &hcmv3.HttpConnectionManager_Tracing{Provider: tracingProvider(t, "zipkin", &tracev3.ZipkinConfig{CollectorCluster: "c", CollectorEndpoint: "api", CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON})}, `collector_endpoint "api"`},
		{"xray port", &hcmv3.HttpConnectionManager_Tracing{Provider: xray(0)}, "daemon_endpoint"},
		{"other provider", &hcmv3.HttpConnectionManager_Tracing{Provider: tracingProvider(t, "dd", &tracev3.DatadogConfig{})}, "DatadogConfig is not supported"},
		{"tag type", &hcmv3.HttpConnectionManager_Tracing{Provider: xray(2000), CustomTags: []*tracingtypev3.CustomTag{{Tag: "e", Type: &tracingtypev3.CustomTag_Environment_{Environment: &tracingtypev3.CustomTag_Environment{Name: "X"}}}}}, `custom_tags[0] ("e")`},
	} {
		res := validSet(t)
		l := res.Listeners[0]
		h := hcmOf(t, l)
		h.Tracing = tc.tr
		setHCM(t, l, h)
		_, err := Compile(res, CompileOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestFractionalPercent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    *typev3.FractionalPercent
		want float64
	}{
		{&typev3.FractionalPercent{Numerator: 25}, 25},
		{&typev3.FractionalPercent{Numerator: 2500, Denominator: typev3.FractionalPercent_TEN_THOUSAND}, 25},
		{&typev3.FractionalPercent{Numerator: 5000, Denominator: typev3.FractionalPercent_MILLION}, 0.5},
		{&typev3.FractionalPercent{Numerator: 500}, 100},
	} {
		if got, err := fractionalPercent(tc.p); err != nil || got != tc.want {
			t.Errorf("%v: %v %v, want %v", tc.p, got, err, tc.want)
		}
	}
}
