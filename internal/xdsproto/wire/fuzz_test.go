package wire_test

import (
	"bytes"
	"math"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/xdsproto"
	"github.com/meshlens/meshlens/internal/xdsproto/wire"
)

// fuzzTypes are the messages FuzzUnmarshal decodes; an input's first
// byte chooses one, the rest is the encoding.
var fuzzTypes = []func() proto.Message{
	func() proto.Message { return new(listenerv3.Listener) },
	func() proto.Message { return new(clusterv3.Cluster) },
	func() proto.Message { return new(routev3.RouteConfiguration) },
	func() proto.Message { return new(endpointv3.ClusterLoadAssignment) },
	func() proto.Message { return new(hcmv3.HttpConnectionManager) },
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// seeds are real configuration messages, one of each fuzzTypes in order.
func seeds(t testing.TB) []proto.Message {
	routeConfig := &routev3.RouteConfiguration{
		Name: "local_route",
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "backend",
			Domains: []string{"*", "example.com"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
					Headers: []*routev3.HeaderMatcher{{Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
						Clusters: []*routev3.WeightedCluster_ClusterWeight{
							{Name: "v1", Weight: wrapperspb.UInt32(90)},
							{Name: "v2", Weight: wrapperspb.UInt32(10), RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-v", Value: "2"}}}},
						},
					}},
					Timeout: durationpb.New(15e9),
				}},
				TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.router": mustAny(t, &routerv3.Router{})},
			}},
		}},
		ResponseHeadersToRemove: []string{"server"},
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     "ingress_http",
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: routeConfig},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{SuppressEnvoyHeaders: true})},
		}},
		UseRemoteAddress: wrapperspb.Bool(true),
	}
	listener := &listenerv3.Listener{
		Name:    "listener_0",
		Address: socketAddress("0.0.0.0", 10000),
		FilterChains: []*listenerv3.FilterChain{{
			FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(10000), ServerNames: []string{"a", "b"}},
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)},
			}},
		}},
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector"}},
	}
	meta, err := structpb.NewStruct(map[string]any{"canary": true, "weight": 1.5, "zone": "a", "tags": []any{"x", nil}})
	if err != nil {
		t.Fatal(err)
	}
	cluster := &clusterv3.Cluster{
		Name:                 "backend",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		ConnectTimeout:       durationpb.New(250e6),
		LbPolicy:             clusterv3.Cluster_LEAST_REQUEST,
		DnsLookupFamily:      clusterv3.Cluster_V4_ONLY,
		Metadata:             &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.lb": meta}},
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
			{Priority: corev3.RoutingPriority_HIGH, MaxConnections: wrapperspb.UInt32(100)},
		}},
		OutlierDetection: &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(5), Interval: durationpb.New(1e10)},
	}
	cla := &endpointv3.ClusterLoadAssignment{
		ClusterName: "backend",
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality: &corev3.Locality{Region: "eu", Zone: "a"},
			LbEndpoints: []*endpointv3.LbEndpoint{
				{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress("10.0.0.1", 8080)}},
					HealthStatus: corev3.HealthStatus_HEALTHY, LoadBalancingWeight: wrapperspb.UInt32(3)},
				{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress("10.0.0.2", 8080), Hostname: "b"}}},
			},
			Priority: 1,
		}},
		Policy: &endpointv3.ClusterLoadAssignment_Policy{OverprovisioningFactor: wrapperspb.UInt32(140)},
	}
	return []proto.Message{listener, cluster, routeConfig, cla, hcm}
}

// FuzzUnmarshal checks that wire decodes what the protobuf library
// decodes (with DiscardUnknown, as wire drops unknown fields), fails
// where it fails, and encodes what it decoded as the library does.
//
// One difference is not checked: the library counts a map entry as a
// level of nesting and wire does not, so the two reject messages nested
// about proto's RecursionLimit (10000) deep at slightly different depths;
// inputs that deep are at least 10000 bytes, which the fuzzer's inputs
// stay well under.
func FuzzUnmarshal(f *testing.F) {
	for i, m := range seeds(f) {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{byte(i)}, b...))
	}
	for _, b := range edgeSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		gcp := fuzzTypes[int(data[0])%len(fuzzTypes)]()
		data = data[1:]
		name := string(gcp.ProtoReflect().Descriptor().FullName())
		errP := proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, gcp)
		m := xdsproto.New(name)
		errW := wire.Unmarshal(data, m)
		if (errP == nil) != (errW == nil) {
			t.Fatalf("%s %x: proto.Unmarshal: %v; wire.Unmarshal: %v", name, data, errP, errW)
		}
		if errP != nil {
			return
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(gcp)
		if err != nil {
			t.Fatalf("%s %x: proto.Marshal: %v", name, data, err)
		}
		got, err := wire.Marshal(m)
		if err != nil {
			t.Fatalf("%s %x: wire.Marshal: %v", name, data, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s %x: wire.Marshal differs from proto.Marshal\n got %x\nwant %x", name, data, got, want)
		}
	})
}

// num is the number of the field at path (names from message m down).
func num(t testing.TB, m proto.Message, path ...string) protowire.Number {
	md := m.ProtoReflect().Descriptor()
	var fd protoreflect.FieldDescriptor
	for _, name := range path {
		if fd = md.Fields().ByName(protoreflect.Name(name)); fd == nil {
			t.Fatalf("%s has no field %s", md.FullName(), name)
		}
		md = fd.Message()
	}
	return fd.Number()
}

// edgeSeeds are inputs (with fuzzTypes' index first) on the library's
// decoding rules: unknown fields and wire types, groups, field numbers,
// merging, packing, map entries, oneofs, UTF-8.
func edgeSeeds(t testing.TB) [][]byte {
	var (
		l   = new(listenerv3.Listener)
		c   = new(clusterv3.Cluster)
		cla = new(endpointv3.ClusterLoadAssignment)
	)
	tag := protowire.AppendTag
	bytesField := func(n protowire.Number, b []byte) []byte {
		return protowire.AppendBytes(tag(nil, n, protowire.BytesType), b)
	}
	varint := func(n protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(tag(nil, n, protowire.VarintType), v)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	name, addr := num(t, l, "name"), num(t, l, "address")
	sock, port, host := num(t, l, "address", "socket_address"), num(t, l, "address", "socket_address", "port_value"), num(t, l, "address", "socket_address", "address")
	timeout := num(t, c, "connect_timeout")
	statuses := num(t, c, "common_lb_config", "override_host_status", "statuses")
	common, override := num(t, c, "common_lb_config"), num(t, c, "common_lb_config", "override_host_status")
	fm := num(t, c, "metadata", "filter_metadata")
	meta := num(t, c, "metadata")
	typ, customType := num(t, c, "type"), num(t, c, "cluster_type")
	named := num(t, cla, "named_endpoints")
	seeds := [][]byte{
		// Listener: the last name wins; a name sent as a varint is unknown.
		cat(bytesField(name, []byte("a")), bytesField(name, []byte("b")), varint(name, 7)),
		// Listener: invalid UTF-8 in a string.
		bytesField(name, []byte{0xff}),
		// Listener: field numbers above MaxValidNumber, and 0.
		cat(varint(protowire.MaxValidNumber, 1)),
		cat(varint(protowire.MaxValidNumber+1, 1)),
		cat(tag(nil, 1<<31-1, protowire.VarintType), []byte{0}),
		{0x00, 0x00},
		// Listener: unknown groups, a stray and a mismatched end group,
		// reserved wire types.
		cat(tag(nil, 999, protowire.StartGroupType), varint(1, 5), tag(nil, 999, protowire.EndGroupType), bytesField(name, []byte("g"))),
		cat(tag(nil, 999, protowire.StartGroupType), tag(nil, 998, protowire.EndGroupType)),
		tag(nil, 999, protowire.EndGroupType),
		tag(nil, name, protowire.EndGroupType),
		cat(tag(nil, name, protowire.StartGroupType), tag(nil, name, protowire.EndGroupType)),
		cat(tag(nil, 999, 6), []byte{0}),
		// Listener: a singular message field sent twice merges; a oneof
		// message member sent twice merges.
		cat(bytesField(addr, bytesField(sock, bytesField(host, []byte("h")))), bytesField(addr, bytesField(sock, varint(port, 80)))),
		// Listener: truncated length and varint.
		{0x0a, 0x05, 'a'},
		{0x0a, 0xff},
	}
	for i := range seeds {
		seeds[i] = append([]byte{0}, seeds[i]...)
	}
	clusterSeeds := [][]byte{
		// Cluster: a Duration with an unknown field (dropped), and a
		// malformed one.
		bytesField(timeout, cat(varint(1, 3), varint(3, 9))),
		bytesField(timeout, []byte{0x08}),
		// Cluster: a repeated enum packed, unpacked and both.
		bytesField(common, bytesField(override, bytesField(statuses, []byte{1, 2, 3}))),
		bytesField(common, bytesField(override, cat(varint(statuses, 1), varint(statuses, 2)))),
		bytesField(common, bytesField(override, cat(varint(statuses, 4), bytesField(statuses, []byte{1, 0x80, 1}), varint(statuses, 5)))),
		bytesField(common, bytesField(override, bytesField(statuses, []byte{1, 0x80}))),
		// Cluster: map entries without a value, without a key, with an
		// unknown field, repeated keys, fields out of order.
		bytesField(meta, cat(bytesField(fm, bytesField(1, []byte("k"))), bytesField(fm, bytesField(2, nil)))),
		bytesField(meta, bytesField(fm, cat(bytesField(2, nil), varint(3, 1), bytesField(1, []byte("k"))))),
		bytesField(meta, cat(bytesField(fm, bytesField(1, []byte("k"))), bytesField(fm, cat(bytesField(1, []byte("k")), bytesField(2, bytesField(1, nil)))))),
		bytesField(meta, bytesField(fm, cat(varint(1, 1), bytesField(1, []byte("k"))))),
		bytesField(meta, bytesField(fm, bytesField(1, []byte{0xc0}))),
		// Cluster: a oneof enum member replaced by a message member and
		// back.
		cat(varint(typ, 1), bytesField(customType, bytesField(1, []byte("x")))),
		cat(bytesField(customType, bytesField(1, []byte("x"))), varint(typ, 0)),
	}
	for _, b := range clusterSeeds {
		seeds = append(seeds, append([]byte{1}, b...))
	}
	// ClusterLoadAssignment: a map of messages whose entry holds the value
	// twice (merged).
	ep := num(t, cla, "endpoints", "lb_endpoints", "endpoint", "hostname")
	seeds = append(seeds, append([]byte{3}, bytesField(named, cat(bytesField(1, []byte("e")), bytesField(2, bytesField(ep, []byte("h"))), bytesField(2, bytesField(num(t, cla, "endpoints", "lb_endpoints", "endpoint", "health_check_config"), varint(1, 5)))))...))
	return seeds
}

// floats is a message of the float kinds, which no mirrored Envoy
// message has outside the wrappers (decoded by the protobuf library).
type floats struct {
	F  float32            `pb:"1,float" json:"f"`
	D  float64            `pb:"2,double" json:"d"`
	FR []float32          `pb:"3,float,rep" json:"fr"`
	FM map[string]float32 `pb:"4,map,string,float" json:"fm"`
	FO *float32           `pb:"5,float,opt" json:"fo"`
}

// TestFloatBits checks that float fields keep their bits, a signaling
// NaN included (a float32 converted to float64 and back is quieted), as
// the protobuf library keeps them.
func TestFloatBits(t *testing.T) {
	snan := math.Float32frombits(0x7f800001)
	negZero := float32(math.Copysign(0, -1))
	in := &floats{F: snan, D: math.Float64frombits(0x7ff0000000000001), FR: []float32{snan, negZero, 1.5},
		FM: map[string]float32{"a": snan}, FO: &negZero}
	b, err := wire.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out floats
	if err := wire.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	b2, err := wire.Marshal(&out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Errorf("re-encoding changed the bytes:\n got %x\nwant %x", b2, b)
	}
	if got := math.Float32bits(out.F); got != 0x7f800001 {
		t.Errorf("F: bits %#x, want 0x7f800001", got)
	}
	if got := math.Float32bits(out.FR[0]); got != 0x7f800001 {
		t.Errorf("FR[0]: bits %#x, want 0x7f800001", got)
	}
	if got := math.Float32bits(out.FM["a"]); got != 0x7f800001 {
		t.Errorf(`FM["a"]: bits %#x, want 0x7f800001`, got)
	}
	if out.FO == nil || math.Float32bits(*out.FO) != 0x80000000 {
		t.Errorf("FO: %v, want -0", out.FO)
	}
	// A zero that is not +0 is written, as the library writes it.
	if b, _ := wire.Marshal(&floats{F: negZero}); !bytes.Equal(b, []byte{0x0d, 0, 0, 0, 0x80}) {
		t.Errorf("-0 encodes as %x", b)
	}
}

// TestInvalidUTF8 checks that, as the library, wire neither encodes nor
// writes as JSON a string that is not UTF-8.
func TestInvalidUTF8(t *testing.T) {
	type msg struct {
		S string `pb:"1,string" json:"s"`
	}
	if _, err := wire.Marshal(&msg{S: "\xff"}); err == nil {
		t.Error("wire.Marshal encoded invalid UTF-8")
	}
	if _, err := wire.JSON(&msg{S: "\xff"}, nil); err == nil {
		t.Error("wire.JSON wrote invalid UTF-8")
	}
	if err := wire.Unmarshal([]byte{0x0a, 1, 0xff}, &msg{}); err == nil {
		t.Error("wire.Unmarshal decoded invalid UTF-8")
	}
}
