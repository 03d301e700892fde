// Package xdsprototest converts between internal/xdsproto's mirror types
// and go-control-plane's generated types, for tests that build or read
// xDS resources with the library (protojson fixtures, a go-control-plane
// server) and hand them to the proxy. It links go-control-plane, so only
// tests import it.
package xdsprototest

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/meshlens/meshlens/internal/xdsproto"

	// The generator links (and so registers) every go-control-plane
	// package the mirrors mirror, for protojson and Any.
	_ "github.com/meshlens/meshlens/internal/xdsproto/gen/mirror"
)

// FromProto makes the mirror of m.
func FromProto(m proto.Message) (xdsproto.Message, error) {
	name := string(m.ProtoReflect().Descriptor().FullName())
	into, ok := xdsproto.New(name).(xdsproto.Message)
	if !ok {
		return nil, fmt.Errorf("no mirror of %s", name)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := into.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("mirror of %s: %w", name, err)
	}
	return into, nil
}

// Into decodes m into the mirror into.
func Into(m proto.Message, into xdsproto.Message) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	return into.Unmarshal(b)
}

// ToProto makes the go-control-plane message m mirrors.
func ToProto(m xdsproto.Message) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(m.XDSTypeName()))
	if err != nil {
		return nil, err
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	out := mt.New().Interface()
	if err := proto.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// FromJSON decodes protojson (as the control plane's fixtures and
// Envoy's config dumps write it) into the mirror into.
func FromJSON(js []byte, into xdsproto.Message) error {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(into.XDSTypeName()))
	if err != nil {
		return err
	}
	m := mt.New().Interface()
	if err := protojson.Unmarshal(js, m); err != nil {
		return err
	}
	return Into(m, into)
}
