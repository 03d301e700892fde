package xdsproto_test

import (
	"fmt"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	mroutev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
)

// benchRoutes is a route configuration of a sidecar that reaches 100
// virtual services, five routes each, weighted between two clusters.
func benchRoutes(tb testing.TB) []byte {
	rc := &routev3.RouteConfiguration{Name: "egress"}
	for v := range 100 {
		vh := &routev3.VirtualHost{Name: fmt.Sprintf("svc-%d", v), Domains: []string{fmt.Sprintf("svc-%d.demo.local", v), fmt.Sprintf("svc-%d.demo.local:8080", v)}}
		for r := range 5 {
			vh.Routes = append(vh.Routes, &routev3.Route{
				Name: fmt.Sprintf("route-%d", r),
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/p%d", r)},
					Headers: []*routev3.HeaderMatcher{{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "beta"}}}}}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
						{Name: fmt.Sprintf("svc-%d-v1", v), Weight: wrapperspb.UInt32(90)},
						{Name: fmt.Sprintf("svc-%d-v2", v), Weight: wrapperspb.UInt32(10)},
					}}},
					Timeout:     durationpb.New(15e9),
					RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx,reset", NumRetries: wrapperspb.UInt32(2), PerTryTimeout: durationpb.New(5e9)},
				}},
			})
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	b, err := proto.Marshal(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkDecodeRoutes compares decoding (and validating) a route
// configuration into go-control-plane's type with the protobuf library
// and into the mirror with internal/xdsproto/wire: the proxy does this
// once per configuration change.
func BenchmarkDecodeRoutes(b *testing.B) {
	data := benchRoutes(b)
	b.Run("library", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var rc routev3.RouteConfiguration
			if err := proto.Unmarshal(data, &rc); err != nil {
				b.Fatal(err)
			}
			if err := rc.Validate(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mirror", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var rc mroutev3.RouteConfiguration
			if err := rc.Unmarshal(data); err != nil {
				b.Fatal(err)
			}
			if err := rc.Validate(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
