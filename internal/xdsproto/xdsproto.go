// Package xdsproto holds the proxy's own Go types for the xDS messages it
// reads and writes: mirrors of go-control-plane's generated types (same
// package layout under this directory, same Go names, fields, oneof
// wrappers, enums and getters), encoded and decoded by
// internal/xdsproto/wire.
//
// Why: go-control-plane's generated packages register every message's
// descriptor with the protobuf runtime when the program starts. A
// sidecar that links them holds about 7 MB more resident memory before it
// has read any configuration (docs/design.md, "a proxy without Envoy's
// generated types"). The mirrors are plain structs: nothing runs at start
// and only the code a configuration uses is touched. The control plane
// keeps go-control-plane's types; the two meet only as bytes on the wire,
// and this package's tests check on random messages that both encode and
// decode every mirrored message alike.
//
// The mirrors are written by `go run ./internal/xdsproto/gen`;
// registry.go's New makes one by the message's full name.
package xdsproto

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlens/meshlens/internal/xdsproto/wire"
)

// Message is a mirror message.
type Message interface {
	// XDSTypeName is the message's full name in the .proto.
	XDSTypeName() string
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// TypePrefix prefixes a message's full name in an Any's type URL.
const TypePrefix = "type.googleapis.com/"

// TypeURL is the type URL of m's type.
func TypeURL(m Message) string { return TypePrefix + m.XDSTypeName() }

// NameOf is the message full name a type URL names (what follows its last
// slash).
func NameOf(typeURL string) string { return typeURL[strings.LastIndexByte(typeURL, '/')+1:] }

// UnmarshalAny decodes a into m when a holds m's type, and says which type
// it holds otherwise.
func UnmarshalAny(a *anypb.Any, m Message) error {
	if got := NameOf(a.GetTypeUrl()); got != m.XDSTypeName() {
		return fmt.Errorf("typed config is %q, want %q", a.GetTypeUrl(), TypeURL(m))
	}
	if err := m.Unmarshal(a.GetValue()); err != nil {
		return fmt.Errorf("decode %s: %w", m.XDSTypeName(), err)
	}
	return nil
}

// NewAny packs m into an Any.
func NewAny(m Message) (*anypb.Any, error) {
	b, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.XDSTypeName(), err)
	}
	return &anypb.Any{TypeUrl: TypeURL(m), Value: b}, nil
}

// MustAny is NewAny for messages that cannot fail to encode (every mirror
// built in code: encoding fails only on a malformed struct tag).
func MustAny(m Message) *anypb.Any {
	a, err := NewAny(m)
	if err != nil {
		panic(err)
	}
	return a
}

// JSON writes m as protojson does with the .proto field names, Any values
// written with the fields of the mirror they hold.
func JSON(m Message) ([]byte, error) { return wire.JSON(m, New) }

// Clone is a deep copy of m.
func Clone[M Message](m M) M {
	b, err := m.Marshal()
	if err != nil {
		panic(err)
	}
	c := New(m.XDSTypeName()).(M)
	if err := c.Unmarshal(b); err != nil {
		panic(err)
	}
	return c
}

// Codec is gRPC's codec for mirror messages, for calls made with
// grpc.ForceCodecV2(Codec{}). Its name is "proto": on the wire it is
// gRPC's protobuf encoding.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// Marshal encodes a mirror message.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(Message)
	if !ok {
		return nil, fmt.Errorf("xdsproto codec: %T is not a mirror message", v)
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Unmarshal decodes into a mirror message.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(Message)
	if !ok {
		return fmt.Errorf("xdsproto codec: %T is not a mirror message", v)
	}
	return m.Unmarshal(data.Materialize())
}

// Name is the content subtype, "proto".
func (Codec) Name() string { return "proto" }

// Equal says whether a and b encode to the same bytes: the same message,
// as encoding is deterministic.
func Equal(a, b Message) bool {
	x, errA := a.Marshal()
	y, errB := b.Marshal()
	return errA == nil && errB == nil && a.XDSTypeName() == b.XDSTypeName() && string(x) == string(y)
}

// Marshal encodes m deterministically.
func Marshal(m Message) ([]byte, error) { return m.Marshal() }
