package xdsclient

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshlens/meshlens/internal/xdsproto"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	discoveryv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/service/discovery/v3"
	resourcev3 "github.com/meshlens/meshlens/internal/xdsproto/resource"
)

// TestDecodeRefusesInvalidResources: a resource that breaks its .proto's
// validation rules fails the whole response (which the client NACKs),
// with the rule in the error, as Envoy checks before anything else.
func TestDecodeRefusesInvalidResources(t *testing.T) {
	resp := func(cs ...*clusterv3.Cluster) *discoveryv3.DiscoveryResponse {
		r := &discoveryv3.DiscoveryResponse{TypeUrl: resourcev3.ClusterType}
		for _, c := range cs {
			r.Resources = append(r.Resources, xdsproto.MustAny(c))
		}
		return r
	}
	good := &clusterv3.Cluster{Name: "good", ConnectTimeout: durationpb.New(1e9)}
	got, err := decode(resp(good))
	if err != nil || len(got) != 1 || got["good"] == nil {
		t.Fatalf("valid cluster: %v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		c    *clusterv3.Cluster
		want string
	}{
		{"negative connect timeout", &clusterv3.Cluster{Name: "c", ConnectTimeout: durationpb.New(-1e9)}, "invalid Cluster.ConnectTimeout: value must be greater than 0s"},
		{"enum out of range", &clusterv3.Cluster{Name: "c", LbPolicy: 99}, "invalid Cluster.LbPolicy: value must be one of the defined enum values"},
	} {
		_, err := decode(resp(good, tc.c))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
	// A resource that is not the response's type is refused too.
	bad := resp(good)
	bad.Resources = append(bad.Resources, &anypb.Any{TypeUrl: resourcev3.ListenerType})
	if _, err := decode(bad); err == nil || !strings.Contains(err.Error(), "type "+resourcev3.ListenerType) {
		t.Errorf("listener in a cluster response: err = %v", err)
	}
}
