package v1alpha1

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustDecode(t *testing.T, data []byte) []*Resource {
	t.Helper()
	rs, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return rs
}

func encode(t *testing.T, rs []*Resource, format string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Encode(&b, rs, format); err != nil {
		t.Fatalf("Encode %s: %v", format, err)
	}
	return b.Bytes()
}

func sortedByKey(rs []*Resource) []*Resource {
	out := slices.Clone(rs)
	slices.SortStableFunc(out, func(a, b *Resource) int { return compareKeys(a.Key(), b.Key()) })
	return out
}

func equalResources(t *testing.T, what string, got, want []*Resource) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	g, _ := json.MarshalIndent(got, "", " ")
	w, _ := json.MarshalIndent(want, "", " ")
	t.Errorf("%s: resources differ\n got: %s\nwant: %s", what, g, w)
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := "testdata/" + name
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readFile(t, path)
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -update to rewrite it)\n got: %s", path, got)
	}
}

// TestRoundTripComplete decodes the complete example, encodes it as JSON,
// decodes that, encodes it as YAML and decodes that, expecting the same
// resources every time.
func TestRoundTripComplete(t *testing.T) {
	t.Parallel()
	first := mustDecode(t, readFile(t, "testdata/complete.yaml"))
	if len(first) != 16 {
		t.Fatalf("decoded %d resources, want 16", len(first))
	}
	asJSON := encode(t, first, "json")
	golden(t, "complete.golden.json", asJSON)
	second := mustDecode(t, asJSON)
	equalResources(t, "after JSON", second, first)
	asYAML := encode(t, second, "yaml")
	golden(t, "complete.golden.yaml", asYAML)
	third := mustDecode(t, asYAML)
	equalResources(t, "after YAML", third, first)
}

// TestAppMeshForms decodes the shop mesh from App Mesh's API input and
// describe output and from CloudFormation, expecting what the meshlens
// form gives.
func TestAppMeshForms(t *testing.T) {
	t.Parallel()
	want := sortedByKey(mustDecode(t, readFile(t, "testdata/forms/meshlens.yaml")))
	for _, file := range []string{"appmesh-input.json", "appmesh-describe.json", "cloudformation.yaml", "cloudformation.json"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			got := sortedByKey(mustDecode(t, readFile(t, "testdata/forms/"+file)))
			want := want
			if strings.HasPrefix(file, "appmesh-describe") {
				want = withoutTags(want) // describe-* output has none
			}
			equalResources(t, file, got, want)
		})
	}
}

func withoutTags(rs []*Resource) []*Resource {
	out := make([]*Resource, len(rs))
	for i, r := range rs {
		c := r.DeepCopy()
		c.Tags = nil
		out[i] = c
	}
	return out
}

// appMeshNameKeys are the API's name members of each kind.
var appMeshNameKeys = map[Kind]string{
	KindVirtualNode:    "virtualNodeName",
	KindVirtualService: "virtualServiceName",
	KindVirtualRouter:  "virtualRouterName",
	KindRoute:          "routeName",
	KindVirtualGateway: "virtualGatewayName",
	KindGatewayRoute:   "gatewayRouteName",
}

func specValue(t *testing.T, r *Resource) any {
	b, err := json.Marshal(r.Spec())
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// appMeshNames renders the names of r as App Mesh's API members.
func appMeshNameMembers(r *Resource) map[string]any {
	m := map[string]any{}
	if r.Kind == KindMesh {
		m["meshName"] = r.Name
		return m
	}
	m["meshName"] = r.Mesh
	m[appMeshNameKeys[r.Kind]] = r.Name
	if r.Kind == KindRoute {
		m["virtualRouterName"] = r.VirtualRouter
	}
	if r.Kind == KindGatewayRoute {
		m["virtualGatewayName"] = r.VirtualGateway
	}
	return m
}

// cfnKeys spell App Mesh's members as CloudFormation does where that is
// more than a capital first letter.
var cfnKeys = map[string]string{
	"tls": "TLS", "acm": "ACM", "sds": "SDS", "dns": "DNS", "awsCloudMap": "AWSCloudMap",
	"http": "HTTP", "http2": "HTTP2", "grpc": "GRPC", "tcp": "TCP",
}

func pascal(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range t {
			pk, ok := cfnKeys[k]
			if !ok {
				pk = strings.ToUpper(k[:1]) + k[1:]
			}
			out[pk] = pascal(e)
		}
		return out
	case []any:
		for i, e := range t {
			t[i] = pascal(e)
		}
	}
	return v
}

// TestAppMeshFormsComplete renders every resource of the complete example
// (so every field) in App Mesh's and CloudFormation's forms and decodes
// them back.
func TestAppMeshFormsComplete(t *testing.T) {
	t.Parallel()
	want := sortedByKey(mustDecode(t, readFile(t, "testdata/complete.yaml")))
	var input, describe bytes.Buffer
	resources := map[string]any{}
	for i, r := range want {
		in := appMeshNameMembers(r)
		in["spec"] = specValue(t, r)
		if len(r.Tags) > 0 {
			in["tags"] = r.Tags
		}
		in["clientToken"] = "token"
		b, _ := json.Marshal(in)
		input.Write(append(b, '\n'))

		d := appMeshNameMembers(r)
		d["spec"] = specValue(t, r)
		d["metadata"] = map[string]any{"arn": "arn:aws:appmesh:::x", "version": 7, "uid": "u"}
		d["status"] = map[string]any{"status": "ACTIVE"}
		wrapper := strings.ToLower(string(r.Kind[:1])) + string(r.Kind[1:])
		b, _ = json.Marshal(map[string]any{wrapper: d})
		describe.Write(append(b, '\n'))

		props := map[string]any{}
		for k, v := range appMeshNameMembers(r) {
			props[strings.ToUpper(k[:1])+k[1:]] = v
		}
		props["Spec"] = pascal(specValue(t, r))
		if len(r.Tags) > 0 {
			var tags []any
			for _, tag := range r.Tags {
				tags = append(tags, map[string]any{"Key": tag.Key, "Value": tag.Value})
			}
			props["Tags"] = tags
		}
		resources["R"+strings.Repeat("0", 3-len(string(rune('0'+i%10))))+string(rune('a'+i))] = map[string]any{
			"Type":       "AWS::AppMesh::" + string(r.Kind),
			"Properties": props,
		}
	}
	template, _ := json.Marshal(map[string]any{"Resources": resources})

	equalResources(t, "API input", sortedByKey(mustDecode(t, input.Bytes())), want)
	equalResources(t, "describe output", sortedByKey(mustDecode(t, describe.Bytes())), withoutTags(want))
	equalResources(t, "CloudFormation", mustDecode(t, template), want)
}

func TestDecodeDocuments(t *testing.T) {
	t.Parallel()
	mesh := func(name string) *Resource { return &Resource{Kind: KindMesh, Name: name, MeshSpec: &MeshSpec{}} }
	cases := []struct {
		name  string
		input string
		want  []*Resource
	}{
		{"empty", "", nil},
		{"only comments", "# nothing\n---\n# here\n", nil},
		{"yaml documents", "---\nkind: Mesh\nname: a\n---\n\n---\nkind: mesh\nname: b\n...\n", []*Resource{mesh("a"), mesh("b")}},
		{"yaml marker with content", "--- {kind: Mesh, name: a}\n--- # b\nkind: Mesh\nname: b\n", []*Resource{mesh("a"), mesh("b")}},
		{"yaml list", "- kind: Mesh\n  name: a\n- kind: Mesh\n  name: b\n", []*Resource{mesh("a"), mesh("b")}},
		{"yaml flow", "{kind: Mesh, name: a}", []*Resource{mesh("a")}},
		{"byte order mark", "\xef\xbb\xbfkind: Mesh\nname: a\n", []*Resource{mesh("a")}},
		{"json object", `{"kind": "Mesh", "name": "a"}`, []*Resource{mesh("a")}},
		{"json list", `[{"kind": "Mesh", "name": "a"}, {"kind": "Mesh", "name": "b"}]`, []*Resource{mesh("a"), mesh("b")}},
		{"json stream", "{\"kind\": \"Mesh\", \"name\": \"a\"}\n{\"kind\": \"Mesh\", \"name\": \"b\"}", []*Resource{mesh("a"), mesh("b")}},
		{"kind spellings", "kind: vn\nmesh: m\nname: node\n", []*Resource{{Kind: KindVirtualNode, Mesh: "m", Name: "node", VirtualNodeSpec: &VirtualNodeSpec{}}}},
		{"cloudformation resource", `{"Type": "AWS::AppMesh::Mesh", "Properties": {"MeshName": "a"}}`, []*Resource{mesh("a")}},
		{"template without resources", `{"AWSTemplateFormatVersion": "2010-09-09"}`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := mustDecode(t, []byte(tc.input))
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			equalResources(t, tc.name, got, tc.want)
		})
	}
}

// TestDecodeErrors checks the message of every kind of decoding error.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		input string
		want  string
	}{
		{"wrong type, named document", "kind: Mesh\nname: demo\n---\nkind: VirtualNode\nmesh: demo\nname: greeter\nspec:\n  listeners:\n    - portMapping: {port: \"8080\", protocol: http}\n",
			`document 2 (VirtualNode demo/greeter): spec.listeners[0].portMapping.port: must be an integer, not string`},
		{"unknown spec field", "kind: VirtualNode\nmesh: demo\nname: greeter\nspec:\n  listeners:\n    - portMapping: {port: 80, protocol: http}\n      timeouts: {}\n",
			`document 1 (VirtualNode demo/greeter): spec.listeners[0]: unknown field "timeouts"`},
		{"unknown top-level field", "kind: VirtualNode\nmesh: demo\nname: greeter\nlabels: {}\n",
			`document 1 (VirtualNode demo/greeter): unknown field "labels"`},
		{"unknown kind", "kind: VirtualThing\nname: x\n",
			`document 1: kind: unknown kind "VirtualThing": want one of Mesh, VirtualNode (vn), VirtualService (vs), VirtualRouter (vr), Route (rt), VirtualGateway (vg), GatewayRoute (gr)`},
		{"metadata type", "kind: Mesh\nname: demo\nmetadata: {version: latest}\n",
			`document 1 (Mesh demo): metadata.version: must be an integer, not string`},
		{"yaml syntax with line", "kind: Mesh\nname: a\n---\n\nkind: VirtualNode\nmesh: demo\nname: x\n  bad: 1\n",
			`document 2: invalid YAML: line 8: mapping values are not allowed in this context`},
		{"yaml trailing content", "kind: Mesh\nname: a\n---\n\n{kind: Mesh, name: b} {kind: Mesh, name: c}\n",
			`document 2: invalid YAML: unexpected content after the mapping that starts on line 5`},
		{"yaml norway problem", "kind: Mesh\nname: no\n",
			`document 1: name: must be a string, not boolean`},
		{"json syntax", "{\"kind\": \"Mesh\", \"name\": \"a\"}\n{\"kind\": \"Mesh\" \"name\": \"b\"}",
			`document 2: line 2: invalid JSON: invalid character '"' after object key:value pair`},
		{"json truncated", "[{\"kind\": \"Mesh\"",
			`document 1: line 1: invalid JSON: unexpected end of input`},
		{"not an object", "just words\n", `document 1: a document must be an object, not a string`},
		{"list of numbers", "[1, 2]", `document 1: a document must be an object, not a number`},
		{"unknown format", "apiVersion: v1\nkind2: Pod\n",
			`document 1: unknown document format: want a meshlens document (kind, mesh, name, spec), App Mesh API input (meshName, spec) or describe-* output ({"virtualNode": {...}}), or a CloudFormation template (Resources) or resource (Type, Properties)`},
		{"yaml tag in a meshlens document", "kind: Mesh\nname: a\nspec:\n  egressFilter: !Ref Filter\n",
			`document 1 (Mesh a): spec.egressFilter: unsupported YAML tag !Ref (line 4)`},
		{"several documents fail", "kind: Mesh\nname: a\nspec: []\n---\nkind: Mesh\nname: b\n---\nkind: Mesh\nname: c\nspec: {egressFilter: 1}\n",
			"document 1 (Mesh a): spec: must be an object, not list\ndocument 3 (Mesh c): spec.egressFilter: must be an object, not number"},

		// App Mesh's forms.
		{"api input type", `{"meshName": "m", "virtualNodeName": "n", "spec": {"listeners": [{"portMapping": {"port": "x"}}]}}`,
			`document 1 (VirtualNode m/n): spec.listeners[0].portMapping.port: must be an integer, not string`},
		{"api input unknown member", `{"meshName": "m", "virtualNodeName": "n", "specification": {}}`,
			`document 1: unknown field "specification"`},
		{"api input ambiguous", `{"meshName": "m", "virtualNodeName": "n", "routeName": "r", "virtualRouterName": "vr"}`,
			`document 1 (Route m/vr/r): virtualNodeName: must not be set for a Route`},
		{"describe kind mismatch", `{"virtualNode": {"meshName": "m", "virtualRouterName": "r", "spec": {}}}`,
			`document 1 (VirtualRouter m/r): virtualNode: holds the names of a VirtualRouter, not a VirtualNode`},
		{"describe unknown member", `{"route": {"meshName": "m", "routeName": "r", "virtualRouterName": "vr", "owner": "me"}}`,
			`document 1: route: unknown field "owner"`},

		// CloudFormation.
		{"yaml short intrinsic", "Resources:\n  Mesh:\n    Type: AWS::AppMesh::Mesh\n    Properties:\n      MeshName: !Ref MeshName\n",
			`document 1 (Resources.Mesh): Properties.MeshName: uses the CloudFormation intrinsic function !Ref (line 5); meshlens needs a literal value`},
		{"yaml short intrinsic in spec", "Resources:\n  Node:\n    Type: AWS::AppMesh::VirtualNode\n    Properties:\n      MeshName: m\n      VirtualNodeName: n\n      Spec:\n        Listeners:\n          - PortMapping:\n              Port: !GetAtt [Config, Port]\n              Protocol: http\n",
			`document 1 (Resources.Node): Properties.Spec.Listeners[0].PortMapping.Port: uses the CloudFormation intrinsic function !GetAtt (line 10); meshlens needs a literal value`},
		{"json intrinsic", `{"Resources": {"Node": {"Type": "AWS::AppMesh::VirtualNode", "Properties": {"MeshName": "m", "VirtualNodeName": "n", "Spec": {"Listeners": [{"PortMapping": {"Port": 80, "Protocol": {"Fn::Sub": "${P}"}}}]}}}}}`,
			`document 1 (Resources.Node): Properties.Spec.Listeners[0].PortMapping.Protocol: uses the CloudFormation intrinsic function Fn::Sub; meshlens needs a literal value`},
		{"cloudformation name required", `{"Resources": {"Mesh": {"Type": "AWS::AppMesh::Mesh", "Properties": {}}}}`,
			`document 1 (Resources.Mesh): Properties.MeshName: is required`},
		{"cloudformation spec type", "Resources:\n  Router:\n    Type: AWS::AppMesh::VirtualRouter\n    Properties:\n      MeshName: m\n      VirtualRouterName: r\n      Spec:\n        Listeners:\n          - PortMapping: {Port: 80, Protocol: [http]}\n",
			`document 1 (Resources.Router, VirtualRouter m/r): spec.listeners[0].portMapping.protocol: must be a string, not list`},
		{"cloudformation unknown property", `{"Type": "AWS::AppMesh::Mesh", "Properties": {"MeshName": "m", "Name": "x"}}`,
			`document 1 (Mesh m): Properties.Name: unknown property of AWS::AppMesh::Mesh`},
		{"cloudformation unknown app mesh type", `{"Resources": {"X": {"Type": "AWS::AppMesh::VirtualMesh", "Properties": {}}}}`,
			`document 1 (Resources.X): Type: unknown App Mesh resource type AWS::AppMesh::VirtualMesh`},
		{"lone resource not app mesh", `{"Type": "AWS::S3::Bucket", "Properties": {}}`,
			`document 1: Type: AWS::S3::Bucket is not an App Mesh resource type (AWS::AppMesh::*)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs, err := Decode([]byte(tc.input))
			if err == nil {
				t.Fatalf("Decode returned %d resources and no error", len(rs))
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got: %s\nwant: %s", err, tc.want)
			}
			var de *DocumentError
			if !errors.As(err, &de) {
				t.Errorf("error is %T, want one holding *DocumentError", err)
			}
		})
	}
}

func TestDecodeErrorIsFieldError(t *testing.T) {
	t.Parallel()
	_, err := Decode([]byte("kind: Mesh\nname: a\nspec: {egressFilter: 1}\n"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "spec.egressFilter" {
		t.Fatalf("errors.As(%v, *FieldError) = %v, path %q", err, fe != nil, fe.Path)
	}
}

func TestDecodeKeepsOrDropsMetadata(t *testing.T) {
	t.Parallel()
	rs := mustDecode(t, []byte("kind: Mesh\nname: a\nmetadata: {version: 4, createdAt: \"2024-03-01T10:00:00Z\"}\nstatus: {status: ACTIVE}\n"))
	if rs[0].Metadata == nil || rs[0].Metadata.Version != 4 || !rs[0].Metadata.CreatedAt.Equal(time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)) || rs[0].Status.Status != "ACTIVE" {
		t.Errorf("meshlens form: metadata %+v, status %+v; want them kept", rs[0].Metadata, rs[0].Status)
	}
	for _, r := range mustDecode(t, readFile(t, "testdata/forms/appmesh-describe.json")) {
		if r.Metadata != nil || r.Status != nil {
			t.Errorf("%s from describe output: metadata %+v, status %+v; want them dropped", r.Key(), r.Metadata, r.Status)
		}
	}
}

func TestDecodeReader(t *testing.T) {
	t.Parallel()
	input := "kind: Mesh\nname: a\n"
	rs, err := DecodeReader(strings.NewReader(input), int64(len(input)))
	if err != nil || len(rs) != 1 {
		t.Fatalf("at the limit: %d resources, %v", len(rs), err)
	}
	if _, err := DecodeReader(strings.NewReader(input), int64(len(input)-1)); !errors.Is(err, ErrInputTooLarge) {
		t.Fatalf("over the limit: %v, want ErrInputTooLarge", err)
	}
	if rs, err := DecodeReader(strings.NewReader(input), 0); err != nil || len(rs) != 1 {
		t.Fatalf("no limit: %d resources, %v", len(rs), err)
	}
}

func TestDecodeAndValidate(t *testing.T) {
	t.Parallel()
	input := strings.Join([]string{
		"kind: Mesh\nname: demo\n",
		"kind: VirtualRouter\nmesh: demo\nname: r\nspec:\n  listeners:\n    - portMapping: {port: 0, protocol: udp}\n",
		"kind: Mesh\nname: demo\nspec: {egressFilter: {type: DROP_ALL}}\n",
		"kind: Mesh\nname: other\nspec: []\n",
		"kind: Route\nmesh: demo\nname: x\nspec: {}\n",
	}, "---\n")
	_, err := DecodeAndValidate([]byte(input))
	want := strings.Join([]string{
		"document 2 (VirtualRouter demo/r): spec.listeners[0].portMapping.port: must be between 1 and 65535; spec.listeners[0].portMapping.protocol: must be one of http, http2, grpc, tcp",
		"document 3 (Mesh demo): Mesh demo is also defined by document 1",
		"document 4 (Mesh other): spec: must be an object, not list",
		"document 5 (Route demo/x): virtualRouter: is required; spec: exactly one of httpRoute, http2Route, grpcRoute, tcpRoute must be set",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("DecodeAndValidate:\n got: %v\nwant: %s", err, want)
	}
	rs, err := DecodeAndValidate(readFile(t, "testdata/forms/meshlens.yaml"))
	if err != nil || len(rs) != 7 {
		t.Fatalf("valid input: %d resources, %v", len(rs), err)
	}
}

func TestEncode(t *testing.T) {
	t.Parallel()
	rs := mustDecode(t, []byte("kind: Mesh\nname: a\n---\nkind: Mesh\nname: b\n"))
	cases := []struct {
		rs     []*Resource
		format string
		want   string
	}{
		{nil, "json", "[]\n"},
		{rs[:1], "json", "{\n  \"kind\": \"Mesh\",\n  \"name\": \"a\",\n  \"spec\": {}\n}\n"},
		{rs, "json", "[\n  {\n    \"kind\": \"Mesh\",\n    \"name\": \"a\",\n    \"spec\": {}\n  },\n  {\n    \"kind\": \"Mesh\",\n    \"name\": \"b\",\n    \"spec\": {}\n  }\n]\n"},
		{nil, "yaml", ""},
		{rs, "YAML", "kind: Mesh\nname: a\nspec: {}\n---\nkind: Mesh\nname: b\nspec: {}\n"},
	}
	for _, tc := range cases {
		if got := string(encode(t, tc.rs, tc.format)); got != tc.want {
			t.Errorf("Encode(%d resources, %s) = %q, want %q", len(tc.rs), tc.format, got, tc.want)
		}
	}
	if err := Encode(&bytes.Buffer{}, rs, "toml"); err == nil || err.Error() != `unknown output format "toml": want yaml or json` {
		t.Errorf("Encode toml: %v", err)
	}
}

func TestDeepCopy(t *testing.T) {
	t.Parallel()
	for _, r := range mustDecode(t, readFile(t, "testdata/complete.yaml")) {
		r.Metadata = &Metadata{Version: 3, UID: "u", CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
		c := r.DeepCopy()
		if !reflect.DeepEqual(c, r) {
			t.Fatalf("%s: copy differs", r.Key())
		}
		if !SpecEqual(c, r) {
			t.Fatalf("%s: SpecEqual(copy, original) = false", r.Key())
		}
		// Changing the copy must leave the original alone.
		c.Tags = append(c.Tags, Tag{Key: "new"})
		c.Metadata.Version = 9
		switch r.Kind {
		case KindVirtualNode:
			c.VirtualNodeSpec.Listeners[0].PortMapping.Port++
		case KindRoute:
			if c.RouteSpec.Priority != nil {
				*c.RouteSpec.Priority++
			}
		}
		if r.Metadata.Version != 3 || slices.ContainsFunc(r.Tags, func(tag Tag) bool { return tag.Key == "new" }) {
			t.Fatalf("%s: the copy shares memory with the original", r.Key())
		}
		if (r.Kind == KindVirtualNode || r.Kind == KindRoute && r.RouteSpec.Priority != nil) && SpecEqual(c, r) {
			t.Fatalf("%s: SpecEqual after changing the copy's spec = true", r.Key())
		}
	}
}

func TestSpecEqual(t *testing.T) {
	t.Parallel()
	a := mustDecode(t, []byte("kind: Mesh\nname: a\nspec: {egressFilter: {type: DROP_ALL}}\n"))[0]
	cases := []struct {
		name string
		b    string
		want bool
	}{
		{"same spec, other names, tags and metadata", "kind: Mesh\nname: b\ntags: [{key: k}]\nmetadata: {version: 2}\nspec: {egressFilter: {type: DROP_ALL}}\n", true},
		{"other spec", "kind: Mesh\nname: a\nspec: {egressFilter: {type: ALLOW_ALL}}\n", false},
		{"empty spec", "kind: Mesh\nname: a\n", false},
		{"other kind", "kind: VirtualRouter\nmesh: a\nname: a\n", false},
	}
	for _, tc := range cases {
		b := mustDecode(t, []byte(tc.b))[0]
		if got := SpecEqual(a, b); got != tc.want {
			t.Errorf("%s: SpecEqual = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestYAMLRoundTripStrings encodes values YAML could misread (booleans
// and numbers of YAML 1.1, nulls, indicators, long and multi-line text)
// or refuses raw (DEL, the C1 controls, U+FFFE and U+FFFF, which JSON
// leaves unescaped).
func TestYAMLRoundTripStrings(t *testing.T) {
	t.Parallel()
	values := []string{
		"yes", "no", "on", "off", "y", "n", "true", "null", "~", "", "1", "0x1f", "1e3", "01", ".inf",
		"- x", ": x", "# x", "x #y", "  padded  ", "'quoted'", `"double"`, "a: b", "{x}", "[x]", "!Ref x", "&a", "*a", "%x", "@x", "`x",
		"line\nbreak\n", "tab\there", "nul\x00byte", "é ☃ 😀", strings.Repeat("long words ", 40), "---", "...", "\r\n",
		"del\x7fchar", "c1 \u0080\u0084\u0086\u009f", "nonchars \ufffe\uffff", "ls\u2028ps\u2029",
	}
	for _, v := range values {
		r := &Resource{Kind: KindMesh, Name: "m", Tags: []Tag{{Key: "k", Value: v}}, MeshSpec: &MeshSpec{}}
		text := v
		node := &Resource{Kind: KindVirtualNode, Mesh: "m", Name: "n", VirtualNodeSpec: &VirtualNodeSpec{
			Logging: &Logging{AccessLog: &AccessLog{File: &FileAccessLog{Path: "/dev/stdout", Format: &LoggingFormat{Text: &text}}}},
		}}
		in := []*Resource{r, node}
		for _, format := range []string{"yaml", "json"} {
			out, err := Decode(encode(t, in, format))
			if err != nil {
				t.Errorf("%q as %s: %v", v, format, err)
				continue
			}
			equalResources(t, format+" "+v, out, in)
		}
	}
}

// TestJSONToYAML keeps JSON's key order and writes what a YAML reader
// refuses raw as escapes, which read back as the characters they were.
func TestJSONToYAML(t *testing.T) {
	t.Parallel()
	y, err := JSONToYAML([]byte("{\"z\": 1, \"a\": \"del\x7f c1\u0090 ls\u2028 \ufffe\", \"m\": [true]}"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(y), "z: 1\na: ") || !strings.HasSuffix(string(y), "m:\n- true\n") {
		t.Errorf("keys out of their JSON order:\n%s", y)
	}
	var back map[string]any
	if err := yamlv3.Unmarshal(y, &back); err != nil {
		t.Fatalf("read back %s: %v", y, err)
	}
	if got := back["a"]; got != "del\x7f c1\u0090 ls\u2028 \ufffe" {
		t.Errorf("read back %q from\n%s", got, y)
	}
	if _, err := JSONToYAML([]byte(`{"a": `)); err == nil {
		t.Error("truncated JSON converted")
	}
	l, err := JSONToYAML([]byte(`[{"b": 1, "a": "x\u007f"}, {"c": []}]`))
	if err != nil || string(l) != "- b: 1\n  a: \"x\\x7F\"\n- c: []\n" {
		t.Errorf("a list: %q, %v", l, err)
	}
	for _, j := range []string{"[{\"name\": \"n\", \"agent\": \"a\u0085\"}]", `{"agent": "a\u0085"}`} {
		if _, err := JSONToYAML([]byte(j)); err == nil || !strings.Contains(err.Error(), "agent holds U+0085") {
			t.Errorf("%s: %v, want an error naming the field and U+0085", j, err)
		}
	}
}

// TestDecodeRefusesNEL: U+0085, which YAML would read back as a line
// break, is refused in any name or value, in every input form, with the
// field named.
func TestDecodeRefusesNEL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"{\"meshName\": \"r\", \"virtualRouterName\": \"m\", \"routeName\": \"a\u0085\", \"spec\": {\"httpRoute\": {}}}", "name: holds U+0085"},
		{"kind: Mesh\nname: m\ntags: [{key: k, value: \"v\\N\"}]\n", "tags[0].value: holds U+0085"},
		{"kind: VirtualNode\nmesh: m\nname: node\nspec: {backendDefaults: {}, logging: {accessLog: {file: {path: \"/x\\u0085\"}}}}\n", "spec.logging.accessLog.file.path: holds U+0085"},
	} {
		_, err := Decode([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.want)
		}
		if _, err := DecodeAndValidate([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeAndValidate %q: %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

// TestRoundTripMetadata: what the store fills in reads back unchanged.
func TestRoundTripMetadata(t *testing.T) {
	t.Parallel()
	r := &Resource{Kind: KindMesh, Name: "m", MeshSpec: &MeshSpec{}, Status: &Status{Status: "ACTIVE"}, Metadata: &Metadata{
		Arn: "arn:aws:appmesh:eu-west-1:111122223333:mesh/m", UID: "u", Version: 3, MeshOwner: "111122223333", ResourceOwner: "111122223333",
		CreatedAt:     time.Date(2024, 3, 1, 10, 0, 0, 123456789, time.UTC),
		LastUpdatedAt: time.Date(2024, 3, 2, 10, 0, 0, 0, time.FixedZone("", 3600)),
	}}
	for _, format := range []string{"yaml", "json"} {
		got := mustDecode(t, encode(t, []*Resource{r}, format))
		if len(got) != 1 || !reflect.DeepEqual(encode(t, got, "json"), encode(t, []*Resource{r}, "json")) {
			t.Errorf("%s round trip of metadata: got %+v", format, got[0].Metadata)
		}
	}
}
