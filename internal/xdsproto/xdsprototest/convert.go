// Package xdsprototest converts between internal/xdsproto's mirror types
// and go-control-plane's generated types, for tests that build or read
// xDS resources with the library (protojson fixtures, a go-control-plane
// server) and hand them to the proxy. It links go-control-plane, so only
// tests import it.
package xdsprototest

import (
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/meshlens/meshlens/internal/xdsproto"

	// The generator links (and so registers) every go-control-plane
	// package the mirrors mirror, for protojson and Any.
	_ "github.com/meshlens/meshlens/internal/xdsproto/gen/mirror"
)

// Into decodes m into the mirror into.
func Into(m proto.Message, into xdsproto.Message) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	return into.Unmarshal(b)
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
