package xdsmeta

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// The names are App Mesh's: a change here breaks dashboards and scripts
// written against App Mesh's Envoy, so each is spelled out in full.
func TestNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{InboundListenerName, "lds_ingress_0.0.0.0_15000"},
		{OutboundListenerName, "lds_egress_0.0.0.0_15001"},
		{OutboundRouteName, "rds_egress_http_15001"},
		{PassthroughClusterName, "cds_egress_passthrough"},
		{GatewayListenerName(8080), "lds_ingress_0.0.0.0_8080"},
		{InboundRouteName("http", 9080), "rds_ingress_http_9080"},
		{InboundClusterName("demo", "greeting-v1", "http", 9080), "cds_ingress_demo_greeting-v1_http_9080"},
		{OutboundClusterName("demo", "greeting-v1", "grpc", 9090), "cds_egress_demo_greeting-v1_grpc_9090"},
		{APIListenerName("greeting.demo.local", 9080), "greeting.demo.local:9080"},
		{APIRouteName("grpc", "greeting.demo.local", 9080), "rds_egress_grpc_greeting.demo.local_9080"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestListenerDirection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name              string
		inbound, outbound bool
	}{
		{InboundListenerName, true, false},
		{GatewayListenerName(443), true, false},
		{OutboundListenerName, false, true},
		{"lds_egress", false, false},
		{"my-listener", false, false},
		{"", false, false},
	} {
		if got := IsInboundListener(tc.name); got != tc.inbound {
			t.Errorf("IsInboundListener(%q) = %v, want %v", tc.name, got, tc.inbound)
		}
		if got := IsOutboundListener(tc.name); got != tc.outbound {
			t.Errorf("IsOutboundListener(%q) = %v, want %v", tc.name, got, tc.outbound)
		}
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		md   *corev3.Metadata
		want Labels
	}{
		{"cluster", &corev3.Metadata{FilterMetadata: FilterMetadata(KeyMesh, "demo", KeyVirtualNode, "greeting-v1")}, Labels{Mesh: "demo", VirtualNode: "greeting-v1"}},
		{"route", &corev3.Metadata{FilterMetadata: FilterMetadata(KeyVirtualService, "greeting.demo.local")}, Labels{VirtualService: "greeting.demo.local"}},
		{"odd pair dropped", &corev3.Metadata{FilterMetadata: FilterMetadata(KeyVirtualService, "svc", KeyMesh)}, Labels{VirtualService: "svc"}},
		{"nil", nil, Labels{}},
		{"other namespace", &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.lb": {Fields: map[string]*structpb.Value{KeyMesh: structpb.NewStringValue("demo")}},
		}}, Labels{}},
		{"not a string", &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			MetadataNamespace: {Fields: map[string]*structpb.Value{
				KeyMesh:        structpb.NewNumberValue(1),
				KeyVirtualNode: structpb.NewStringValue("n"),
			}},
		}}, Labels{VirtualNode: "n"}},
	} {
		if got := ReadLabels(tc.md); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// FuzzLabelsRoundTrip: whatever strings the control plane writes, the
// proxy reads back the same.
func FuzzLabelsRoundTrip(f *testing.F) {
	f.Add("demo", "greeting-v1", "greeting.demo.local")
	f.Add("", "", "")
	f.Add("m\x00", "\xff", "a:b")
	f.Fuzz(func(t *testing.T, mesh, node, service string) {
		want := Labels{Mesh: mesh, VirtualNode: node, VirtualService: service}
		if got := ReadLabels(&corev3.Metadata{FilterMetadata: FilterMetadata(KeyMesh, mesh, KeyVirtualNode, node, KeyVirtualService, service)}); got != want {
			t.Fatalf("%+v, want %+v", got, want)
		}
	})
}
