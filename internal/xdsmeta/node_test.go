package xdsmeta

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestAdminAddress(t *testing.T) {
	withMeta := func(v *structpb.Value) *corev3.Node {
		return &corev3.Node{Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{NodeKeyAdminAddress: v}}}
	}
	set := &corev3.Node{Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{"other": structpb.NewBoolValue(true)}}}
	set.Metadata = SetAdminAddress(set.Metadata, "127.0.0.1:9901")
	for _, tc := range []struct {
		name string
		node *corev3.Node
		want string
	}{
		{"set", set, "127.0.0.1:9901"},
		{"nil node", nil, ""},
		{"no metadata", &corev3.Node{}, ""},
		{"not host:port", withMeta(structpb.NewStringValue("localhost")), ""},
		{"not a string", withMeta(structpb.NewNumberValue(9901)), ""},
		{"ipv6", withMeta(structpb.NewStringValue("[::1]:9901")), "[::1]:9901"},
	} {
		if got := AdminAddress(tc.node); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if !set.Metadata.Fields["other"].GetBoolValue() {
		t.Error("SetAdminAddress dropped other metadata")
	}
}
