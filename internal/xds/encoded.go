package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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
// The caches only read a resource's name (GetName, which go-control-plane
// uses for resources of types it does not know) and its encoding; the
// server checks a view's consistency on the typed view before encoding
// it.
type encoded struct {
	*emptypb.Empty
	name string
	hash string // of the encoding: the resource's content version
}

// newEncoded marshals m deterministically and wraps the bytes.
func newEncoded(m proto.Message, name string) *encoded {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		// A generated message always marshals; hash its text rather than
		// fail the whole view (the client will reject what it gets).
		b = []byte(fmt.Sprint(m))
	}
	sum := sha256.Sum256(b)
	e := &encoded{Empty: &emptypb.Empty{}, name: name, hash: hex.EncodeToString(sum[:12])}
	e.Empty.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
	return e
}

// GetName is the resource's name (a load assignment's cluster name).
func (e *encoded) GetName() string { return e.name }

// bytes is the resource's encoding; it must not be modified.
func (e *encoded) bytes() []byte { return e.Empty.ProtoReflect().GetUnknown() }
