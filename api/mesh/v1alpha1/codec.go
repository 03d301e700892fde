package v1alpha1

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// resourceJSON is the wire form of a Resource: the spec under one key.
type resourceJSON struct {
	Kind           Kind            `json:"kind"`
	Mesh           string          `json:"mesh,omitempty"`
	Name           string          `json:"name"`
	VirtualRouter  string          `json:"virtualRouter,omitempty"`
	VirtualGateway string          `json:"virtualGateway,omitempty"`
	Metadata       *Metadata       `json:"metadata,omitempty"`
	Status         *Status         `json:"status,omitempty"`
	Tags           []Tag           `json:"tags,omitempty"`
	Spec           json.RawMessage `json:"spec,omitempty"`
}

// MarshalJSON writes the resource with its kind's spec under "spec".
func (r Resource) MarshalJSON() ([]byte, error) {
	w := resourceJSON{
		Kind: r.Kind, Mesh: r.Mesh, Name: r.Name,
		VirtualRouter: r.VirtualRouter, VirtualGateway: r.VirtualGateway,
		Metadata: r.Metadata, Status: r.Status, Tags: r.Tags,
	}
	if spec := r.Spec(); spec != nil && !isNilPointer(spec) {
		b, err := json.Marshal(spec)
		if err != nil {
			return nil, fmt.Errorf("marshal %s spec: %w", r.Kind, err)
		}
		w.Spec = b
	} else {
		w.Spec = json.RawMessage("{}")
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a resource in the meshlens form. The kind may be
// spelled as ParseKind accepts it; the spec is decoded strictly, so a
// misspelled field is an error that names it.
func (r *Resource) UnmarshalJSON(data []byte) error {
	var w resourceJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fieldError("", err)
	}
	kind, err := ParseKind(string(w.Kind))
	if err != nil {
		return &FieldError{Path: "kind", Message: err.Error()}
	}
	*r = Resource{
		Kind: kind, Mesh: w.Mesh, Name: w.Name,
		VirtualRouter: w.VirtualRouter, VirtualGateway: w.VirtualGateway,
		Metadata: w.Metadata, Status: w.Status, Tags: w.Tags,
	}
	return r.setSpec(w.Spec)
}

// setSpec decodes raw strictly into the spec type of r.Kind.
func (r *Resource) setSpec(raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	var target any
	switch r.Kind {
	case KindMesh:
		r.MeshSpec = &MeshSpec{}
		target = r.MeshSpec
	case KindVirtualNode:
		r.VirtualNodeSpec = &VirtualNodeSpec{}
		target = r.VirtualNodeSpec
	case KindVirtualService:
		r.VirtualServiceSpec = &VirtualServiceSpec{}
		target = r.VirtualServiceSpec
	case KindVirtualRouter:
		r.VirtualRouterSpec = &VirtualRouterSpec{}
		target = r.VirtualRouterSpec
	case KindRoute:
		r.RouteSpec = &RouteSpec{}
		target = r.RouteSpec
	case KindVirtualGateway:
		r.VirtualGatewaySpec = &VirtualGatewaySpec{}
		target = r.VirtualGatewaySpec
	case KindGatewayRoute:
		r.GatewayRouteSpec = &GatewayRouteSpec{}
		target = r.GatewayRouteSpec
	default:
		return &FieldError{Path: "kind", Message: fmt.Sprintf("unknown kind %q", r.Kind)}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(target); err != nil {
		return fieldError("spec", err)
	}
	if dec.More() {
		return &FieldError{Path: "spec", Message: "unexpected data after the spec object"}
	}
	return nil
}

// DeepCopy returns a copy that shares nothing with r.
func (r *Resource) DeepCopy() *Resource {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("v1alpha1: marshal %s: %v", r.Key(), err))
	}
	var out Resource
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("v1alpha1: unmarshal %s: %v", r.Key(), err))
	}
	return &out
}

// SpecEqual reports whether a and b have the same kind and an identical spec.
func SpecEqual(a, b *Resource) bool {
	if a.Kind != b.Kind {
		return false
	}
	ja, err1 := json.Marshal(a.Spec())
	jb, err2 := json.Marshal(b.Spec())
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func isNilPointer(v any) bool {
	switch s := v.(type) {
	case *MeshSpec:
		return s == nil
	case *VirtualNodeSpec:
		return s == nil
	case *VirtualServiceSpec:
		return s == nil
	case *VirtualRouterSpec:
		return s == nil
	case *RouteSpec:
		return s == nil
	case *VirtualGatewaySpec:
		return s == nil
	case *GatewayRouteSpec:
		return s == nil
	}
	return false
}
