package xdsproto_test

import (
	"math/rand/v2"
	"testing"

	clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointpb "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerpb "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corspb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	localrlpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlspb "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherpb "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typepb "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/xdsproto"
)

type validator interface{ Validate() error }

// mirrorValidate decodes msg's encoding into its mirror and validates
// that.
func mirrorValidate(t *testing.T, msg proto.Message) error {
	t.Helper()
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatalf("proto.Marshal: %v", err)
	}
	name := string(msg.ProtoReflect().Descriptor().FullName())
	m, ok := xdsproto.New(name).(interface {
		xdsproto.Message
		validator
	})
	if !ok {
		t.Fatalf("no mirror with Validate for %s", name)
	}
	if err := m.Unmarshal(b); err != nil {
		t.Fatalf("mirror Unmarshal %s: %v", name, err)
	}
	return m.Validate()
}

// TestValidate checks, on hand-made messages, that a mirror's Validate
// agrees with go-control-plane's (protoc-gen-validate's) on whether the
// message is valid, and words its error the same.
func TestValidate(t *testing.T) {
	route := func(m *routepb.RouteMatch, a *routepb.RouteAction) *routepb.RouteConfiguration {
		return &routepb.RouteConfiguration{Name: "r", VirtualHosts: []*routepb.VirtualHost{{
			Name: "vh", Domains: []string{"*"},
			Routes: []*routepb.Route{{Match: m, Action: &routepb.Route_Route{Route: a}}},
		}}}
	}
	prefix := &routepb.RouteMatch{PathSpecifier: &routepb.RouteMatch_Prefix{Prefix: "/"}}
	toCluster := &routepb.RouteAction{ClusterSpecifier: &routepb.RouteAction_Cluster{Cluster: "c"}}
	bucket := func(max uint32, perFill *wrapperspb.UInt32Value, fill *durationpb.Duration) *localrlpb.LocalRateLimit {
		return &localrlpb.LocalRateLimit{StatPrefix: "rl", TokenBucket: &typepb.TokenBucket{
			MaxTokens: max, TokensPerFill: perFill, FillInterval: fill}}
	}
	hcm := func(statPrefix string, codec hcmpb.HttpConnectionManager_CodecType) *hcmpb.HttpConnectionManager {
		return &hcmpb.HttpConnectionManager{StatPrefix: statPrefix, CodecType: codec,
			RouteSpecifier: &hcmpb.HttpConnectionManager_RouteConfig{RouteConfig: route(prefix, toCluster)}}
	}
	percent := func(d typepb.FractionalPercent_DenominatorType) *typepb.FractionalPercent {
		return &typepb.FractionalPercent{Numerator: 5, Denominator: d}
	}
	exact := func(s string) *matcherpb.StringMatcher {
		return &matcherpb.StringMatcher{MatchPattern: &matcherpb.StringMatcher_Exact{Exact: s}}
	}
	cases := []struct {
		name    string
		msg     proto.Message
		wantErr bool
	}{
		{"listener ok", &listenerpb.Listener{Name: "l", FilterChains: []*listenerpb.FilterChain{{
			Filters: []*listenerpb.Filter{{Name: "f"}}}}}, false},
		{"listener filter without name", &listenerpb.Listener{Name: "l", FilterChains: []*listenerpb.FilterChain{{
			Filters: []*listenerpb.Filter{{}}}}}, true},
		{"listener bad socket port", &listenerpb.Listener{Name: "l", Address: &corepb.Address{Address: &corepb.Address_SocketAddress{
			SocketAddress: &corepb.SocketAddress{Address: "0.0.0.0", PortSpecifier: &corepb.SocketAddress_PortValue{PortValue: 70000}}}}}, true},
		{"cluster ok", &clusterpb.Cluster{Name: "c", ConnectTimeout: durationpb.New(1e9)}, false},
		{"cluster negative connect timeout", &clusterpb.Cluster{Name: "c", ConnectTimeout: durationpb.New(-1)}, true},
		{"cluster zero connect timeout", &clusterpb.Cluster{Name: "c", ConnectTimeout: &durationpb.Duration{}}, true},
		{"cluster lb policy out of enum", &clusterpb.Cluster{Name: "c", LbPolicy: 77}, true},
		{"cluster health check without timeout", &clusterpb.Cluster{Name: "c", HealthChecks: []*corepb.HealthCheck{{}}}, true},
		{"route ok", route(prefix, toCluster), false},
		{"route match without path specifier", route(&routepb.RouteMatch{}, toCluster), true},
		{"route action without cluster specifier", route(prefix, &routepb.RouteAction{}), true},
		{"route empty cluster name", route(prefix, &routepb.RouteAction{ClusterSpecifier: &routepb.RouteAction_Cluster{}}), true},
		{"weighted clusters empty", route(prefix, &routepb.RouteAction{ClusterSpecifier: &routepb.RouteAction_WeightedClusters{
			WeightedClusters: &routepb.WeightedCluster{}}}), true},
		{"weighted clusters ok", route(prefix, &routepb.RouteAction{ClusterSpecifier: &routepb.RouteAction_WeightedClusters{
			WeightedClusters: &routepb.WeightedCluster{Clusters: []*routepb.WeightedCluster_ClusterWeight{
				{Name: "a", Weight: wrapperspb.UInt32(1)}, {Name: "b", Weight: wrapperspb.UInt32(3)}}}}}), false},
		{"retry policy ok", route(prefix, &routepb.RouteAction{ClusterSpecifier: toCluster.ClusterSpecifier,
			RetryPolicy: &routepb.RetryPolicy{NumRetries: wrapperspb.UInt32(3), PerTryTimeout: durationpb.New(1e9)}}), false},
		{"retry back off zero base interval", route(prefix, &routepb.RouteAction{ClusterSpecifier: toCluster.ClusterSpecifier,
			RetryPolicy: &routepb.RetryPolicy{NumRetries: wrapperspb.UInt32(3),
				RetryBackOff: &routepb.RetryPolicy_RetryBackOff{BaseInterval: &durationpb.Duration{}}}}), true},
		{"header matcher bad name", route(&routepb.RouteMatch{PathSpecifier: prefix.PathSpecifier,
			Headers: []*routepb.HeaderMatcher{{Name: "bad\nname"}}}, toCluster), true},
		{"cla ok", &endpointpb.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointpb.LocalityLbEndpoints{{
			LoadBalancingWeight: wrapperspb.UInt32(2)}}}, false},
		{"cla without cluster name", &endpointpb.ClusterLoadAssignment{}, true},
		{"cla zero locality weight", &endpointpb.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointpb.LocalityLbEndpoints{{
			LoadBalancingWeight: wrapperspb.UInt32(0)}}}, true},
		{"fault ok", &faultpb.HTTPFault{Abort: &faultpb.FaultAbort{ErrorType: &faultpb.FaultAbort_HttpStatus{HttpStatus: 503},
			Percentage: percent(typepb.FractionalPercent_HUNDRED)}}, false},
		{"fault abort status 99", &faultpb.HTTPFault{Abort: &faultpb.FaultAbort{ErrorType: &faultpb.FaultAbort_HttpStatus{HttpStatus: 99}}}, true},
		{"fault abort without error type", &faultpb.HTTPFault{Abort: &faultpb.FaultAbort{}}, true},
		{"fault percentage bad denominator", &faultpb.HTTPFault{Delay: &faultcommonpb.FaultDelay{
			FaultDelaySecifier: &faultcommonpb.FaultDelay_FixedDelay{FixedDelay: durationpb.New(1e6)},
			Percentage:         percent(9)}}, true},
		{"local rate limit ok", bucket(10, wrapperspb.UInt32(2), durationpb.New(1e9)), false},
		// max_tokens is gte 0 in this go-control-plane.
		{"local rate limit zero max tokens", bucket(0, nil, durationpb.New(1e9)), false},
		{"local rate limit zero tokens per fill", bucket(10, wrapperspb.UInt32(0), durationpb.New(1e9)), true},
		{"local rate limit without fill interval", bucket(10, nil, nil), true},
		{"local rate limit zero fill interval", bucket(10, nil, &durationpb.Duration{}), true},
		{"local rate limit invalid fill interval", bucket(10, nil, &durationpb.Duration{Seconds: 1, Nanos: -1}), true},
		{"local rate limit without stat prefix", &localrlpb.LocalRateLimit{}, true},
		{"cors ok", &corspb.CorsPolicy{AllowOriginStringMatch: []*matcherpb.StringMatcher{exact("https://a.example")}}, false},
		{"cors matcher without pattern", &corspb.CorsPolicy{AllowOriginStringMatch: []*matcherpb.StringMatcher{{}}}, true},
		{"cors empty prefix", &corspb.CorsPolicy{AllowOriginStringMatch: []*matcherpb.StringMatcher{{
			MatchPattern: &matcherpb.StringMatcher_Prefix{}}}}, true},
		{"secret ok", &tlspb.Secret{Name: "s", Type: &tlspb.Secret_TlsCertificate{TlsCertificate: &tlspb.TlsCertificate{
			CertificateChain: &corepb.DataSource{Specifier: &corepb.DataSource_Filename{Filename: "/c.pem"}}}}}, false},
		{"secret empty file name", &tlspb.Secret{Name: "s", Type: &tlspb.Secret_TlsCertificate{TlsCertificate: &tlspb.TlsCertificate{
			CertificateChain: &corepb.DataSource{Specifier: &corepb.DataSource_Filename{}}}}}, true},
		{"hcm ok", hcm("s", hcmpb.HttpConnectionManager_AUTO), false},
		{"hcm without stat prefix", hcm("", hcmpb.HttpConnectionManager_AUTO), true},
		{"hcm codec out of enum", hcm("s", 42), true},
		{"hcm without route specifier", &hcmpb.HttpConnectionManager{StatPrefix: "s"}, true},
		{"hcm bad route inside", &hcmpb.HttpConnectionManager{StatPrefix: "s",
			RouteSpecifier: &hcmpb.HttpConnectionManager_RouteConfig{RouteConfig: route(&routepb.RouteMatch{}, toCluster)}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.msg.(validator).Validate()
			if (want != nil) != c.wantErr {
				t.Fatalf("go-control-plane's Validate = %v, the case expects an error: %t", want, c.wantErr)
			}
			got := mirrorValidate(t, c.msg)
			if (got != nil) != (want != nil) || (got != nil && got.Error() != want.Error()) {
				t.Errorf("mirror Validate = %v\ngo-control-plane's = %v", got, want)
			}
		})
	}
}

// TestValidateRandom checks on random messages of every mirrored type
// with a Validate method in go-control-plane that the mirror's Validate
// agrees on validity and words its error the same.
func TestValidateRandom(t *testing.T) {
	mts := mirroredTypes(t)
	f := &filler{r: rand.New(rand.NewPCG(3, 4))}
	var checked, invalid int
	for _, mt := range mts {
		if _, ok := mt.Zero().Interface().(validator); !ok {
			continue
		}
		name := string(mt.Descriptor().FullName())
		for i := 0; i < 20; i++ {
			msg := mt.New()
			if i > 0 {
				// The first message is empty: the rules on unset fields.
				f.message(msg, 0)
			}
			want := msg.Interface().(validator).Validate()
			got := mirrorValidate(t, msg.Interface())
			checked++
			if (got != nil) != (want != nil) {
				t.Errorf("%s #%d: mirror Validate = %v\ngo-control-plane's = %v", name, i, got, want)
				break
			}
			if want != nil {
				invalid++
				if got.Error() != want.Error() {
					t.Errorf("%s #%d: wording differs:\nmirror: %v\ngcp:    %v", name, i, got, want)
					break
				}
			}
		}
	}
	t.Logf("%d messages, %d of them invalid", checked, invalid)
}
