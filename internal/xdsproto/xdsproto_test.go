package xdsproto_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/xdsproto"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	// The generator links (and so registers) every go-control-plane
	// package whose messages are mirrored.
	"github.com/meshlens/meshlens/internal/xdsproto/gen/mirror"
	"github.com/meshlens/meshlens/internal/xdsproto/wire"
)

// instancesPerType is how many random messages of each mirrored type
// TestRoundTripRandom checks.
const instancesPerType = 40

// mirroredTypes lists the registered message types that have a mirror,
// by full name.
func mirroredTypes(t *testing.T) []protoreflect.MessageType {
	t.Helper()
	var mts []protoreflect.MessageType
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		if xdsproto.New(string(mt.Descriptor().FullName())) != nil {
			mts = append(mts, mt)
		}
		return true
	})
	sort.Slice(mts, func(i, j int) bool { return mts[i].Descriptor().FullName() < mts[j].Descriptor().FullName() })
	if len(mts) < 300 {
		t.Fatalf("only %d registered message types have a mirror", len(mts))
	}
	return mts
}

// TestRoundTripRandom checks, on random messages of every mirrored type,
// that decoding the protobuf library's deterministic encoding into the
// mirror and encoding that again gives the same bytes, and that the
// mirror's JSON is protojson's (with UseProtoNames).
func TestRoundTripRandom(t *testing.T) {
	mts := mirroredTypes(t)
	f := &filler{r: rand.New(rand.NewPCG(1, 2))}
	for _, mt := range mts {
		name := string(mt.Descriptor().FullName())
		for i := 0; i < instancesPerType; i++ {
			msg := mt.New()
			f.message(msg, 0)
			if !checkMessage(t, name, i, msg.Interface()) {
				break // one failure per type is enough
			}
		}
	}
}

// checkMessage compares the mirror of msg with msg; it reports whether
// they agree.
func checkMessage(t *testing.T, name string, i int, msg proto.Message) bool {
	t.Helper()
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		t.Fatalf("%s #%d: proto.Marshal: %v", name, i, err)
	}
	m := xdsproto.New(name)
	if err := wire.Unmarshal(want, m); err != nil {
		t.Errorf("%s #%d: wire.Unmarshal: %v\nmessage: %v", name, i, err, msg)
		return false
	}
	got, err := wire.Marshal(m)
	if err != nil {
		t.Errorf("%s #%d: wire.Marshal: %v", name, i, err)
		return false
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s #%d: wire.Marshal differs from proto.Marshal\nmessage: %v\n got %x\nwant %x", name, i, msg, got, want)
		return false
	}
	// The mirror's own methods are the codec's.
	if mm, ok := m.(interface {
		XDSTypeName() string
		Marshal() ([]byte, error)
	}); !ok || mm.XDSTypeName() != name {
		t.Errorf("%s: mirror %T lacks XDSTypeName or names another type", name, m)
		return false
	}

	wantJSON, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil {
		t.Fatalf("%s #%d: protojson.Marshal: %v\nmessage: %v", name, i, err, msg)
	}
	gotJSON, err := wire.JSON(m, xdsproto.New)
	if err != nil {
		t.Errorf("%s #%d: wire.JSON: %v\nmessage: %v", name, i, err, msg)
		return false
	}
	w, err1 := parseJSON(wantJSON)
	g, err2 := parseJSON(gotJSON)
	if err1 != nil || err2 != nil {
		t.Errorf("%s #%d: parsing JSON: %v, %v\n got %s\nwant %s", name, i, err2, err1, gotJSON, wantJSON)
		return false
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s #%d: wire.JSON differs from protojson\n got %s\nwant %s", name, i, gotJSON, wantJSON)
		return false
	}
	return true
}

// parseJSON parses b keeping numbers as written: protojson and wire.JSON
// must spell them alike (protojson's whitespace is random, so the texts
// themselves are not compared).
func parseJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return v, nil
}

// filler sets random fields of messages through protoreflect.
type filler struct{ r *rand.Rand }

// maxDepth is how deeply filler nests messages; below it, message fields
// are set to empty messages.
const maxDepth = 5

// anyTypes are the messages an Any is packed with: mirrored ones
// (which wire.JSON resolves to their mirrors) and well-known types
// (which it writes through the protobuf library).
var anyTypes = []protoreflect.FullName{
	"envoy.config.core.v3.Address",
	"envoy.extensions.filters.http.router.v3.Router",
	"envoy.config.core.v3.HeaderValueOption",
	"envoy.extensions.filters.http.grpc_web.v3.GrpcWeb",
	"envoy.config.core.v3.RuntimeFractionalPercent",
	"google.protobuf.Duration",
	"google.protobuf.Struct",
	"google.protobuf.UInt32Value",
}

func (f *filler) chance(p float64) bool { return f.r.Float64() < p }

func (f *filler) message(m protoreflect.Message, depth int) {
	md := m.Descriptor()
	fields := md.Fields()
	switch md.FullName() {
	case "google.protobuf.Any":
		f.any(m, depth)
		return
	case "google.protobuf.Duration":
		sec, nanos := f.r.Int64N(1e6), f.r.Int32N(1e9)
		if f.chance(0.3) {
			sec, nanos = -sec, -nanos
		}
		if f.chance(0.2) {
			nanos = 0
		}
		m.Set(fields.ByName("seconds"), protoreflect.ValueOfInt64(sec))
		m.Set(fields.ByName("nanos"), protoreflect.ValueOfInt32(nanos))
		return
	case "google.protobuf.Timestamp":
		m.Set(fields.ByName("seconds"), protoreflect.ValueOfInt64(f.r.Int64N(253402300799)))
		m.Set(fields.ByName("nanos"), protoreflect.ValueOfInt32(f.r.Int32N(1e9)))
		return
	case "google.protobuf.Struct":
		mp := m.Mutable(fields.ByName("fields")).Map()
		for n := f.r.IntN(4); n > 0; n-- {
			v := mp.NewValue()
			f.structValue(v.Message(), depth+1)
			mp.Set(protoreflect.ValueOfString(f.str()).MapKey(), v)
		}
		return
	case "google.protobuf.Value":
		f.structValue(m, depth)
		return
	case "google.protobuf.ListValue":
		l := m.Mutable(fields.ByName("values")).List()
		for n := f.r.IntN(4); n > 0; n-- {
			v := l.NewElement()
			f.structValue(v.Message(), depth+1)
			l.Append(v)
		}
		return
	}
	p := 0.6
	if depth > 1 {
		p = 0.4
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			continue
		}
		if f.chance(p) {
			f.field(m, fd, depth)
		}
	}
	oneofs := md.Oneofs()
	for i := 0; i < oneofs.Len(); i++ {
		od := oneofs.Get(i)
		if od.IsSynthetic() || !f.chance(0.8) {
			continue
		}
		f.field(m, od.Fields().Get(f.r.IntN(od.Fields().Len())), depth)
	}
}

// structValue sets a google.protobuf.Value to a simple value.
func (f *filler) structValue(m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	k := f.r.IntN(6)
	if depth >= maxDepth && k >= 4 {
		k = 0
	}
	switch k {
	case 0:
		m.Set(fields.ByName("null_value"), protoreflect.ValueOfEnum(0))
	case 1:
		m.Set(fields.ByName("number_value"), protoreflect.ValueOfFloat64(float64(f.r.IntN(2000)-1000)/8))
	case 2:
		m.Set(fields.ByName("string_value"), protoreflect.ValueOfString(f.str()))
	case 3:
		m.Set(fields.ByName("bool_value"), protoreflect.ValueOfBool(f.chance(0.5)))
	case 4:
		v := m.NewField(fields.ByName("struct_value"))
		f.message(v.Message(), depth+1)
		m.Set(fields.ByName("struct_value"), v)
	case 5:
		v := m.NewField(fields.ByName("list_value"))
		f.message(v.Message(), depth+1)
		m.Set(fields.ByName("list_value"), v)
	}
}

// any packs a random message of one of anyTypes into the Any m.
func (f *filler) any(m protoreflect.Message, depth int) {
	name := anyTypes[f.r.IntN(len(anyTypes))]
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		panic(err)
	}
	inner := mt.New()
	if depth < maxDepth {
		f.message(inner, depth+1)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner.Interface())
	if err != nil {
		panic(err)
	}
	fields := m.Descriptor().Fields()
	m.Set(fields.ByName("type_url"), protoreflect.ValueOfString("type.googleapis.com/"+string(name)))
	m.Set(fields.ByName("value"), protoreflect.ValueOfBytes(b))
}

func (f *filler) field(m protoreflect.Message, fd protoreflect.FieldDescriptor, depth int) {
	switch {
	case fd.IsMap():
		mp := m.Mutable(fd).Map()
		for n := 1 + f.r.IntN(3); n > 0; n-- {
			k := f.scalar(fd.MapKey()).MapKey()
			if fd.MapValue().Message() != nil {
				v := mp.NewValue()
				if depth < maxDepth {
					f.message(v.Message(), depth+1)
				}
				mp.Set(k, v)
			} else {
				mp.Set(k, f.scalar(fd.MapValue()))
			}
		}
	case fd.IsList():
		l := m.Mutable(fd).List()
		for n := 1 + f.r.IntN(3); n > 0; n-- {
			if fd.Message() != nil {
				v := l.NewElement()
				if depth < maxDepth {
					f.message(v.Message(), depth+1)
				}
				l.Append(v)
			} else {
				l.Append(f.scalar(fd))
			}
		}
	case fd.Message() != nil:
		v := m.NewField(fd)
		if depth < maxDepth {
			f.message(v.Message(), depth+1)
		}
		m.Set(fd, v)
	default:
		m.Set(fd, f.scalar(fd))
	}
}

var runes = []rune("abcxyzABC019 _-./:\"\\\n\t\x00\x1f<>&'é世\u2028\U0001F600\x7f")

func (f *filler) str() string {
	var b strings.Builder
	for n := f.r.IntN(9); n > 0; n-- {
		b.WriteRune(runes[f.r.IntN(len(runes))])
	}
	return b.String()
}

func (f *filler) int64() int64 {
	switch f.r.IntN(8) {
	case 0:
		return 0
	case 1:
		return -1
	case 2:
		return math.MinInt64
	case 3:
		return math.MaxInt64
	case 4:
		return f.r.Int64N(200) - 100
	}
	return int64(f.r.Uint64())
}

func (f *filler) float64() float64 {
	switch f.r.IntN(12) {
	case 0:
		return math.Copysign(0, -1)
	case 1:
		return math.NaN()
	case 2:
		return math.Inf(1 - 2*f.r.IntN(2))
	case 3:
		return float64(f.r.IntN(2000)-1000) / 4
	case 4:
		return (f.r.Float64() - 0.5) * 1e-9
	case 5:
		return (f.r.Float64() - 0.5) * 1e30
	case 6:
		return math.SmallestNonzeroFloat64
	case 7:
		// Round numbers, which %g would write with an exponent and
		// protojson (as encoding/json) writes without one from 1e-6
		// to 1e21.
		return float64(f.r.IntN(50)) * math.Pow10(f.r.IntN(36)-12)
	}
	return (f.r.Float64() - 0.5) * 1e6
}

func (f *filler) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(f.chance(0.5))
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if !fd.Enum().IsClosed() && f.chance(0.05) {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(1000 + f.r.IntN(10)))
		}
		return protoreflect.ValueOfEnum(vals.Get(f.r.IntN(vals.Len())).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(f.int64()))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(f.int64()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(f.int64())
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(f.int64()))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(f.float64()))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(f.float64())
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(f.str())
	case protoreflect.BytesKind:
		b := make([]byte, f.r.IntN(9))
		for i := range b {
			b[i] = byte(f.r.UintN(256))
		}
		return protoreflect.ValueOfBytes(b)
	}
	panic(fmt.Sprintf("field %s: kind %v", fd.FullName(), fd.Kind()))
}

// TestRoundTripEdges checks values the random filler reaches rarely or
// not at all.
func TestRoundTripEdges(t *testing.T) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName("envoy.config.core.v3.RuntimeFeatureFlag")
	if err != nil {
		t.Fatal(err)
	}
	// A oneof scalar at its zero value is present, and so written.
	sa, err := protoregistry.GlobalTypes.FindMessageByName("envoy.config.core.v3.SocketAddress")
	if err != nil {
		t.Fatal(err)
	}
	m := sa.New()
	m.Set(sa.Descriptor().Fields().ByName("port_value"), protoreflect.ValueOfUint32(0))
	checkMessage(t, "envoy.config.core.v3.SocketAddress", 0, m.Interface())
	// Empty messages that are set are written.
	m = mt.New()
	m.Set(mt.Descriptor().Fields().ByName("default_value"), protoreflect.ValueOfMessage((&wrapperspb.BoolValue{}).ProtoReflect()))
	checkMessage(t, "envoy.config.core.v3.RuntimeFeatureFlag", 0, m.Interface())
	// (Float fields, which no mirrored message has outside the wrappers,
	// are checked in internal/xdsproto/wire's TestFloatBits.)
}

// TestGetters checks that the mirrors' getters behave as
// go-control-plane's: zero values on nil receivers, and a oneof's getters
// returning the member that is set and zero values for the others.
func TestGetters(t *testing.T) {
	typed := &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
	filter := &listenerv3.Filter{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed}}
	port := &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}
	addr := &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: port}}
	cluster := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}, ConnectTimeout: durationpb.New(0)}
	route := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "backend"}}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"nil Filter.GetName", (*listenerv3.Filter)(nil).GetName(), ""},
		{"nil Filter.GetTypedConfig", (*listenerv3.Filter)(nil).GetTypedConfig(), (*anypb.Any)(nil)},
		{"nil Filter.GetConfigType", (*listenerv3.Filter)(nil).GetConfigType() == nil, true},
		{"nil Listener.GetFilterChains", (*listenerv3.Listener)(nil).GetFilterChains(), []*listenerv3.FilterChain(nil)},
		{"nil Listener.GetPerConnectionBufferLimitBytes", (*listenerv3.Listener)(nil).GetPerConnectionBufferLimitBytes(), (*wrapperspb.UInt32Value)(nil)},
		{"nil Listener.GetAddress.GetSocketAddress.GetPortValue", (*listenerv3.Listener)(nil).GetAddress().GetSocketAddress().GetPortValue(), uint32(0)},
		{"nil Cluster.GetType", (*clusterv3.Cluster)(nil).GetType(), clusterv3.Cluster_STATIC},
		{"nil Cluster.GetMetadata.GetFilterMetadata", (*clusterv3.Cluster)(nil).GetMetadata().GetFilterMetadata() == nil, true},
		{"Filter.GetName", filter.GetName(), "hcm"},
		{"Filter.GetTypedConfig", filter.GetTypedConfig(), typed},
		{"Filter.GetConfigDiscovery", filter.GetConfigDiscovery(), (*corev3.ExtensionConfigSource)(nil)},
		{"Address.GetSocketAddress.GetPortValue", addr.GetSocketAddress().GetPortValue(), uint32(8080)},
		{"Address.GetSocketAddress.GetNamedPort", addr.GetSocketAddress().GetNamedPort(), ""},
		{"Address.GetPipe", addr.GetPipe(), (*corev3.Pipe)(nil)},
		{"Cluster.GetType", cluster.GetType(), clusterv3.Cluster_STRICT_DNS},
		{"Cluster.GetClusterType", cluster.GetClusterType(), (*clusterv3.Cluster_CustomClusterType)(nil)},
		{"Cluster.GetConnectTimeout", cluster.GetConnectTimeout().AsDuration(), durationpb.New(0).AsDuration()},
		{"RouteAction.GetCluster", route.GetCluster(), "backend"},
		{"RouteAction.GetWeightedClusters", route.GetWeightedClusters(), (*routev3.WeightedCluster)(nil)},
		{"enum String", clusterv3.Cluster_STRICT_DNS.String(), "STRICT_DNS"},
		{"undefined enum String", clusterv3.Cluster_DiscoveryType(99).String(), "99"},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

// TestGenerated checks that the checked-in mirrors are what
// internal/xdsproto/gen writes.
func TestGenerated(t *testing.T) {
	files, err := mirror.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.FromSlash(path))
		if err != nil {
			t.Errorf("%v (run go run ./internal/xdsproto/gen)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what internal/xdsproto/gen writes (run go run ./internal/xdsproto/gen)", path)
		}
	}
}
