package store

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// EncodeKey renders k as the bbolt key of its record: kind, mesh, parent
// and name, each path-escaped, joined by "/". Escaping makes the form
// unambiguous whatever the names hold (a "/" or "%" in a name is escaped,
// so the separator only ever separates), and it stays readable in a
// bbolt dump: "VirtualNode/shop//front-end.v2".
func EncodeKey(k v1alpha1.Key) []byte {
	var b strings.Builder
	b.Grow(len(k.Kind) + len(k.Mesh) + len(k.Parent) + len(k.Name) + 3)
	b.WriteString(url.PathEscape(string(k.Kind)))
	b.WriteByte('/')
	b.WriteString(url.PathEscape(k.Mesh))
	b.WriteByte('/')
	b.WriteString(url.PathEscape(k.Parent))
	b.WriteByte('/')
	b.WriteString(url.PathEscape(k.Name))
	return []byte(b.String())
}

// DecodeKey parses what EncodeKey wrote. It accepts only the canonical
// form, so that one key has exactly one encoding: a record whose key
// decodes and re-encodes differently is reported, not guessed at.
func DecodeKey(b []byte) (v1alpha1.Key, error) {
	parts := strings.Split(string(b), "/")
	if len(parts) != 4 {
		return v1alpha1.Key{}, fmt.Errorf("decode key %q: want 4 parts separated by \"/\", have %d", b, len(parts))
	}
	var fields [4]string
	for i, p := range parts {
		s, err := url.PathUnescape(p)
		if err != nil {
			return v1alpha1.Key{}, fmt.Errorf("decode key %q: part %d: %w", b, i, err)
		}
		fields[i] = s
	}
	k := v1alpha1.Key{Kind: v1alpha1.Kind(fields[0]), Mesh: fields[1], Parent: fields[2], Name: fields[3]}
	if string(EncodeKey(k)) != string(b) {
		return v1alpha1.Key{}, fmt.Errorf("decode key %q: not in canonical form (want %q)", b, EncodeKey(k))
	}
	return k, nil
}

// checkKey rejects keys the store cannot hold: a resource must name a
// known kind and carry every name its kind is placed by. Full validation
// belongs to the caller; this only guards the store's own invariants (an
// unknown kind cannot even be copied).
func checkKey(k v1alpha1.Key) error {
	if !k.Kind.Valid() {
		return fmt.Errorf("unknown kind %q", k.Kind)
	}
	if k.Name == "" {
		return fmt.Errorf("%s: name is empty", k.Kind)
	}
	if k.Kind != v1alpha1.KindMesh && k.Mesh == "" {
		return fmt.Errorf("%s %s: mesh is empty", k.Kind, k.Name)
	}
	switch k.Kind {
	case v1alpha1.KindRoute:
		if k.Parent == "" {
			return fmt.Errorf("%s: virtualRouter is empty", k)
		}
	case v1alpha1.KindGatewayRoute:
		if k.Parent == "" {
			return fmt.Errorf("%s: virtualGateway is empty", k)
		}
	}
	return nil
}

// arnPrefix is the partition, region and account every meshlens ARN shares:
// meshlens is not AWS, but clients written for App Mesh parse ARNs.
const arnPrefix = "arn:aws:appmesh:meshlens:000000000000:"

// ARN returns the App Mesh-shaped ARN of the resource with key k, such as
// arn:aws:appmesh:meshlens:000000000000:mesh/shop/virtualRouter/r/route/a.
func ARN(k v1alpha1.Key) string {
	switch k.Kind {
	case v1alpha1.KindMesh:
		return arnPrefix + "mesh/" + k.Name
	case v1alpha1.KindRoute:
		return arnPrefix + "mesh/" + k.Mesh + "/virtualRouter/" + k.Parent + "/route/" + k.Name
	case v1alpha1.KindGatewayRoute:
		return arnPrefix + "mesh/" + k.Mesh + "/virtualGateway/" + k.Parent + "/gatewayRoute/" + k.Name
	default:
		// virtualNode, virtualService, virtualRouter, virtualGateway:
		// the kind in lowerCamel case.
		kind := string(k.Kind)
		return arnPrefix + "mesh/" + k.Mesh + "/" + strings.ToLower(kind[:1]) + kind[1:] + "/" + k.Name
	}
}
