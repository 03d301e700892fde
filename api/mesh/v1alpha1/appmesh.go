package v1alpha1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// App Mesh users hold their configuration in three other shapes, and can
// pipe any of them in unchanged:
//
//   - the API input, as `aws appmesh create-virtual-node --cli-input-json`
//     takes it: {"meshName", "virtualNodeName", "spec", "tags", ...};
//   - the describe-* output: {"virtualNode": {"meshName", ..., "spec",
//     "metadata", "status"}};
//   - CloudFormation: a template whose Resources hold AWS::AppMesh::*
//     resources, or one such resource, with PascalCase property names.
//
// The spec is App Mesh's own in all of them. Metadata and status are
// dropped: an exported arn, uid or version means nothing to meshlens, and
// a version kept would be taken as an optimistic-concurrency precondition.

// appMeshNames are the name members of App Mesh's API input and describe
// output, one per kind plus the parents of routes and gateway routes.
type appMeshNames struct {
	MeshName           string `json:"meshName"`
	VirtualNodeName    string `json:"virtualNodeName,omitempty"`
	VirtualServiceName string `json:"virtualServiceName,omitempty"`
	VirtualRouterName  string `json:"virtualRouterName,omitempty"`
	RouteName          string `json:"routeName,omitempty"`
	VirtualGatewayName string `json:"virtualGatewayName,omitempty"`
	GatewayRouteName   string `json:"gatewayRouteName,omitempty"`
}

// appMeshInput is the body of App Mesh's Create* and Update* calls.
type appMeshInput struct {
	appMeshNames
	Spec        json.RawMessage `json:"spec"`
	Tags        []Tag           `json:"tags"`
	ClientToken string          `json:"clientToken"`
	MeshOwner   string          `json:"meshOwner"`
}

// appMeshData is the member of a Describe* response.
type appMeshData struct {
	appMeshNames
	Spec     json.RawMessage `json:"spec"`
	Metadata json.RawMessage `json:"metadata"`
	Status   json.RawMessage `json:"status"`
}

// describeKinds maps the wrapper key of describe-* output to its kind.
var describeKinds = map[string]Kind{
	"mesh":           KindMesh,
	"virtualNode":    KindVirtualNode,
	"virtualService": KindVirtualService,
	"virtualRouter":  KindVirtualRouter,
	"route":          KindRoute,
	"virtualGateway": KindVirtualGateway,
	"gatewayRoute":   KindGatewayRoute,
}

// resource turns App Mesh's names into a resource of the kind they imply:
// a route name makes a Route, a virtual router name alone a VirtualRouter,
// a mesh name alone a Mesh.
func (n *appMeshNames) resource() (*Resource, error) {
	type member struct {
		field string
		value string
		kind  Kind // the kind this name is the name of
	}
	members := []member{
		{"gatewayRouteName", n.GatewayRouteName, KindGatewayRoute},
		{"routeName", n.RouteName, KindRoute},
		{"virtualNodeName", n.VirtualNodeName, KindVirtualNode},
		{"virtualServiceName", n.VirtualServiceName, KindVirtualService},
		{"virtualRouterName", n.VirtualRouterName, KindVirtualRouter},
		{"virtualGatewayName", n.VirtualGatewayName, KindVirtualGateway},
	}
	r := &Resource{Kind: KindMesh, Name: n.MeshName}
	for _, m := range members {
		if m.value != "" {
			r = &Resource{Kind: m.kind, Mesh: n.MeshName, Name: m.value}
			break
		}
	}
	switch r.Kind {
	case KindRoute:
		r.VirtualRouter = n.VirtualRouterName
	case KindGatewayRoute:
		r.VirtualGateway = n.VirtualGatewayName
	}
	for _, m := range members {
		if m.value == "" || m.kind == r.Kind ||
			r.Kind == KindRoute && m.kind == KindVirtualRouter ||
			r.Kind == KindGatewayRoute && m.kind == KindVirtualGateway {
			continue
		}
		return r, &FieldError{Path: m.field, Message: fmt.Sprintf("must not be set for a %s", r.Kind)}
	}
	return r, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fieldError("", err)
	}
	return nil
}

// decodeAppMeshInput decodes --cli-input-json of a Create* or Update* call.
func decodeAppMeshInput(obj json.RawMessage, tags []yamlTag, idx int) ([]decoded, error) {
	var in appMeshInput
	if err := strictUnmarshal(obj, &in); err != nil {
		return nil, &DocumentError{Index: idx, Err: err}
	}
	r, err := in.resource()
	name := resourceName(r)
	if err == nil {
		err = tagError(tags)
	}
	if err == nil {
		r.Tags = in.Tags
		if err = r.setSpec(in.Spec); err != nil {
			err = betterError(err, in.Spec, r.Kind, false)
		}
	}
	if err != nil {
		return nil, &DocumentError{Index: idx, Name: name, Err: err}
	}
	return []decoded{{r: r, index: idx, name: name}}, nil
}

// decodeAppMeshDescribe decodes the output of a describe-* call, whose
// single key (such as virtualNode) names the kind.
func decodeAppMeshDescribe(key string, kind Kind, body json.RawMessage, tags []yamlTag, idx int) ([]decoded, error) {
	var d appMeshData
	if err := strictUnmarshal(body, &d); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Path = join(key, fe.Path)
		}
		return nil, &DocumentError{Index: idx, Err: err}
	}
	r, err := d.resource()
	name := resourceName(r)
	if err == nil && r.Kind != kind {
		err = &FieldError{Path: key, Message: fmt.Sprintf("holds the names of a %s, not a %s", r.Kind, kind)}
	}
	if err == nil {
		err = tagError(tags)
	}
	if err == nil {
		if err = r.setSpec(d.Spec); err != nil {
			err = betterError(err, d.Spec, r.Kind, false)
		}
	}
	if err != nil {
		return nil, &DocumentError{Index: idx, Name: name, Err: err}
	}
	return []decoded{{r: r, index: idx, name: name}}, nil
}

// ---- CloudFormation ----

// cfnTypes maps CloudFormation's resource types to kinds and the property
// that holds each name.
var cfnTypes = map[string]struct {
	kind Kind
	name string // the property holding the resource's own name
}{
	"AWS::AppMesh::Mesh":           {KindMesh, "MeshName"},
	"AWS::AppMesh::VirtualNode":    {KindVirtualNode, "VirtualNodeName"},
	"AWS::AppMesh::VirtualService": {KindVirtualService, "VirtualServiceName"},
	"AWS::AppMesh::VirtualRouter":  {KindVirtualRouter, "VirtualRouterName"},
	"AWS::AppMesh::Route":          {KindRoute, "RouteName"},
	"AWS::AppMesh::VirtualGateway": {KindVirtualGateway, "VirtualGatewayName"},
	"AWS::AppMesh::GatewayRoute":   {KindGatewayRoute, "GatewayRouteName"},
}

// decodeTemplate decodes the AWS::AppMesh::* resources of a template and
// skips the others. They come sorted by kind (in Kinds order) and key, so
// that a mesh precedes what is in it.
func decodeTemplate(top map[string]json.RawMessage, tags []yamlTag, idx int) ([]decoded, error) {
	raw, ok := top["Resources"]
	if !ok {
		return nil, nil // a template with no resources
	}
	var resources map[string]json.RawMessage
	if err := json.Unmarshal(raw, &resources); err != nil {
		return nil, &DocumentError{Index: idx, Err: &FieldError{Path: "Resources", Message: "must be an object of resources"}}
	}
	ids := make([]string, 0, len(resources))
	for id := range resources {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []decoded
	var errs []error
	for _, id := range ids {
		var res map[string]json.RawMessage
		if err := json.Unmarshal(resources[id], &res); err != nil {
			errs = append(errs, &DocumentError{Index: idx, Name: "Resources." + id, Err: errors.New("must be an object")})
			continue
		}
		ds, err := decodeCFNResource(res, tags, idx, "Resources."+id, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, ds...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortStableFunc(out, func(a, b decoded) int { return compareKeys(a.r.Key(), b.r.Key()) })
	return out, nil
}

// decodeCFNResource decodes one CloudFormation resource; prefix is its
// path in the template ("" for a lone resource) and id its logical ID.
func decodeCFNResource(res map[string]json.RawMessage, tags []yamlTag, idx int, prefix, id string) ([]decoded, error) {
	label := func(r *Resource) string {
		parts := []string{}
		if prefix != "" {
			parts = append(parts, prefix)
		}
		if n := resourceName(r); n != "" {
			parts = append(parts, n)
		}
		return strings.Join(parts, ", ")
	}
	fail := func(r *Resource, err error) ([]decoded, error) {
		return nil, &DocumentError{Index: idx, Name: label(r), Err: err}
	}
	var typ string
	if err := json.Unmarshal(res["Type"], &typ); err != nil {
		return fail(&Resource{}, &FieldError{Path: "Type", Message: "must be a string"})
	}
	info, ok := cfnTypes[typ]
	if !ok {
		if strings.HasPrefix(typ, "AWS::AppMesh::") {
			return fail(&Resource{}, &FieldError{Path: "Type", Message: fmt.Sprintf("unknown App Mesh resource type %s", typ)})
		}
		if prefix == "" {
			return fail(&Resource{}, &FieldError{Path: "Type", Message: fmt.Sprintf("%s is not an App Mesh resource type (AWS::AppMesh::*)", typ)})
		}
		return nil, nil // other resources of a template are not ours
	}
	// Intrinsic functions in YAML's short form (!Ref) within this
	// resource's properties.
	propsPath := field(prefix, "Properties")
	for _, t := range tags {
		if t.path == propsPath || strings.HasPrefix(t.path, propsPath+".") || strings.HasPrefix(t.path, propsPath+"[") {
			return fail(&Resource{}, &FieldError{
				Path:    strings.TrimPrefix(strings.TrimPrefix(t.path, prefix), "."),
				Message: fmt.Sprintf("uses the CloudFormation intrinsic function %s (line %d); meshlens needs a literal value", t.tag, t.line),
			})
		}
	}
	var props map[string]json.RawMessage
	if raw, ok := res["Properties"]; ok {
		if err := json.Unmarshal(raw, &props); err != nil {
			return fail(&Resource{}, &FieldError{Path: "Properties", Message: "must be an object"})
		}
	}
	// Intrinsic functions in JSON's long form ({"Ref": ...}).
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var v any
		dec := json.NewDecoder(bytes.NewReader(props[k]))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return fail(&Resource{}, &FieldError{Path: field("Properties", k), Message: err.Error()})
		}
		if p, fn := findIntrinsic(v, field("Properties", k)); fn != "" {
			return fail(&Resource{}, &FieldError{Path: p, Message: fmt.Sprintf("uses the CloudFormation intrinsic function %s; meshlens needs a literal value", fn)})
		}
	}

	str := func(name string) (string, error) {
		raw, ok := props[name]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", &FieldError{Path: field("Properties", name), Message: "must be a string"}
		}
		return s, nil
	}
	r := &Resource{Kind: info.kind}
	allowed := []string{"MeshName", "MeshOwner", "Spec", "Tags", info.name}
	var err error
	if r.Name, err = str(info.name); err != nil {
		return fail(r, err)
	}
	if info.kind != KindMesh {
		if r.Mesh, err = str("MeshName"); err != nil {
			return fail(r, err)
		}
	}
	switch info.kind {
	case KindRoute:
		allowed = append(allowed, "VirtualRouterName")
		if r.VirtualRouter, err = str("VirtualRouterName"); err != nil {
			return fail(r, err)
		}
	case KindGatewayRoute:
		allowed = append(allowed, "VirtualGatewayName")
		if r.VirtualGateway, err = str("VirtualGatewayName"); err != nil {
			return fail(r, err)
		}
	}
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			return fail(r, &FieldError{Path: field("Properties", k), Message: fmt.Sprintf("unknown property of %s", typ)})
		}
	}
	if r.Name == "" {
		// CloudFormation would make a name up; a name that changes with
		// every stack is of no use to something that has no stacks.
		return fail(r, &FieldError{Path: field("Properties", info.name), Message: "is required"})
	}
	if raw, ok := props["Tags"]; ok {
		camel, err := camelJSON(raw)
		if err == nil {
			err = strictUnmarshal(camel, &r.Tags)
		}
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				fe.Path = field("tags", fe.Path)
			}
			return fail(r, err)
		}
	}
	spec := props["Spec"]
	if spec != nil {
		if spec, err = camelJSON(spec); err != nil {
			return fail(r, err)
		}
	}
	if err := r.setSpec(spec); err != nil {
		return fail(r, betterError(err, spec, r.Kind, false))
	}
	return []decoded{{r: r, index: idx, name: label(r)}}, nil
}

// findIntrinsic returns the path and name of the first CloudFormation
// intrinsic function ({"Ref": ...}, {"Fn::GetAtt": ...}, ...) in v.
func findIntrinsic(v any, path string) (string, string) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 1 {
			for k := range t {
				if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
					return path, k
				}
			}
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if p, fn := findIntrinsic(t[k], field(path, k)); fn != "" {
				return p, fn
			}
		}
	case []any:
		for i, e := range t {
			if p, fn := findIntrinsic(e, index(path, i)); fn != "" {
				return p, fn
			}
		}
	}
	return "", ""
}

// camelJSON rewrites the object keys of CloudFormation's PascalCase JSON
// in App Mesh's camelCase, recursively.
func camelJSON(raw json.RawMessage) (json.RawMessage, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	b, err := json.Marshal(camelKeys(v))
	if err != nil {
		return nil, fmt.Errorf("re-encode: %w", err)
	}
	return b, nil
}

func camelKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[lowerCamel(k)] = camelKeys(e)
		}
		return out
	case []any:
		for i, e := range t {
			t[i] = camelKeys(e)
		}
		return t
	}
	return v
}

// lowerCamel turns a PascalCase name into camelCase, treating a leading
// run of capitals as an acronym: HttpRoute -> httpRoute, TLS -> tls,
// HTTP2 -> http2, AWSCloudMap -> awsCloudMap, IpPreference -> ipPreference.
func lowerCamel(s string) string {
	n := 0
	for n < len(s) && s[n] >= 'A' && s[n] <= 'Z' {
		n++
	}
	switch {
	case n == 0:
		return s
	case n > 1 && n < len(s) && s[n] >= 'a' && s[n] <= 'z':
		// AWSCloudMap: the last capital starts the next word.
		n--
	}
	return strings.ToLower(s[:n]) + s[n:]
}
