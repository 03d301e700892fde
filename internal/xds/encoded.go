package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoiface"
	"google.golang.org/protobuf/types/known/emptypb"
)

// encoded is an xDS resource marshalled once, as the caches hold it.
//
// go-control-plane marshals every resource of a response again for each
// stream it answers (cache.MarshalResource, deterministic), which at
// thousands of streams is most of the control plane's work for a change.
// An encoded resource makes that step a copy: its bytes are held as the
// unknown fields of an empty message, which protobuf writes back verbatim,
// so the wire carries exactly the original resource's deterministic
// encoding under the type URL the client asked for.
//
// Marshalling an encoded resource returns its bytes themselves, without
// a copy (see marshalEncoded): go-control-plane marshals every resource of
// a response again for each stream it answers, and a copy per stream was
// most of what a change allocated.
//
// The caches only read a resource's name (GetName, which go-control-plane
// uses for resources of types it does not know) and its encoding; the
// server checks a view's consistency on the typed view before encoding
// it.
type encoded struct {
	*emptypb.Empty
	name string
	hash string // of the encoding: the resource's content version
	// routes are the RDS route configurations a listener names (see
	// routeNames), found once per listener rather than once per
	// snapshot that holds it.
	routes []string
}

// newEncoded marshals m deterministically and wraps the bytes.
func newEncoded(m proto.Message, name string) *encoded {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		// A generated message always marshals; hash its text rather than
		// fail the whole view (the client will reject what it gets).
		b = []byte(fmt.Sprint(m))
	}
	return encodedBytes(b, name)
}

// encodedBytes wraps the deterministic encoding b of a resource.
func encodedBytes(b []byte, name string) *encoded {
	sum := sha256.Sum256(b)
	e := &encoded{Empty: &emptypb.Empty{}, name: name, hash: hex.EncodeToString(sum[:12])}
	// Clipped, so that appending to the bytes handed out copies them.
	e.Empty.ProtoReflect().SetUnknown(protoreflect.RawFields(slices.Clip(b)))
	return e
}

// ProtoReflect is the empty message's, whose marshalling is
// marshalEncoded.
func (e *encoded) ProtoReflect() protoreflect.Message {
	return encodedReflect{Message: e.Empty.ProtoReflect(), e: e}
}

// encodedReflect is an encoded resource seen through protobuf reflection:
// an empty message with the resource's bytes as unknown fields, and its
// own marshalling.
type encodedReflect struct {
	protoreflect.Message
	e *encoded
}

// Interface returns the encoded resource.
func (r encodedReflect) Interface() protoreflect.ProtoMessage { return r.e }

// ProtoMethods makes protobuf call marshalEncoded.
func (r encodedReflect) ProtoMethods() *protoiface.Methods { return &encodedMethods }

var encodedMethods = protoiface.Methods{
	Flags:   protoiface.SupportMarshalDeterministic,
	Marshal: marshalEncoded,
}

// marshalEncoded appends the resource's bytes to the buffer, or returns
// the bytes themselves, shared and read-only as every encoding protobuf
// hands out is used, when there is no buffer to append to.
func marshalEncoded(in protoiface.MarshalInput) (protoiface.MarshalOutput, error) {
	b := in.Message.(encodedReflect).e.bytes()
	if len(in.Buf) == 0 {
		return protoiface.MarshalOutput{Buf: b}, nil
	}
	return protoiface.MarshalOutput{Buf: append(in.Buf, b...)}, nil
}

// GetName is the resource's name (a load assignment's cluster name).
func (e *encoded) GetName() string { return e.name }

// bytes is the resource's encoding; it must not be modified.
func (e *encoded) bytes() []byte { return e.Empty.ProtoReflect().GetUnknown() }
