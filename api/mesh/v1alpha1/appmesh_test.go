package v1alpha1

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLowerCamel(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"HttpRoute":             "httpRoute",
		"Http2Route":            "http2Route",
		"GrpcRoute":             "grpcRoute",
		"TcpRoute":              "tcpRoute",
		"HTTP":                  "http",
		"HTTP2":                 "http2",
		"GRPC":                  "grpc",
		"TCP":                   "tcp",
		"TLS":                   "tls",
		"ACM":                   "acm",
		"SDS":                   "sds",
		"DNS":                   "dns",
		"AWSCloudMap":           "awsCloudMap",
		"IpPreference":          "ipPreference",
		"IPPreference":          "ipPreference",
		"PortMapping":           "portMapping",
		"Json":                  "json",
		"DefaultTargetHostname": "defaultTargetHostname",
		"port":                  "port",
		"":                      "",
		"A":                     "a",
	}
	for in, want := range cases {
		if got := lowerCamel(in); got != want {
			t.Errorf("lowerCamel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindIntrinsic(t *testing.T) {
	t.Parallel()
	cases := []struct {
		json     string
		path, fn string
	}{
		{`"literal"`, "", ""},
		{`{"Ref": "X"}`, "P", "Ref"},
		{`{"a": [1, {"Fn::Join": ["", []]}]}`, "P.a[1]", "Fn::Join"},
		{`{"Condition": "IsProd"}`, "P", "Condition"},
		{`{"Ref": "X", "Other": 1}`, "", ""}, // two keys: not a function
	}
	for _, tc := range cases {
		var v any
		if err := json.Unmarshal([]byte(tc.json), &v); err != nil {
			t.Fatal(err)
		}
		path, fn := findIntrinsic(v, "P")
		if path != tc.path || fn != tc.fn {
			t.Errorf("findIntrinsic(%s) = %q, %q; want %q, %q", tc.json, path, fn, tc.path, tc.fn)
		}
	}
}

// TestTemplateSkipsOtherResources checks that intrinsic functions outside
// App Mesh resources (a role, the outputs) do not keep a template from
// being read, in either spelling.
func TestTemplateSkipsOtherResources(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"cloudformation.yaml", "cloudformation.json"} {
		rs := mustDecode(t, readFile(t, "testdata/forms/"+file))
		for _, r := range rs {
			if !strings.HasPrefix(r.Key().String(), string(r.Kind)) || r.Mesh == "" && r.Kind != KindMesh {
				t.Errorf("%s: odd resource %s", file, r.Key())
			}
		}
		if len(rs) != 7 {
			t.Errorf("%s: %d resources, want the 7 App Mesh ones", file, len(rs))
		}
	}
}

func TestAppMeshInputKinds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		input string
		want  Key
	}{
		{`{"meshName": "m"}`, Key{Kind: KindMesh, Name: "m"}},
		{`{"meshName": "m", "virtualNodeName": "n"}`, Key{Kind: KindVirtualNode, Mesh: "m", Name: "n"}},
		{`{"meshName": "m", "virtualServiceName": "s.local"}`, Key{Kind: KindVirtualService, Mesh: "m", Name: "s.local"}},
		{`{"meshName": "m", "virtualRouterName": "r"}`, Key{Kind: KindVirtualRouter, Mesh: "m", Name: "r"}},
		{`{"meshName": "m", "virtualRouterName": "r", "routeName": "x"}`, Key{Kind: KindRoute, Mesh: "m", Parent: "r", Name: "x"}},
		{`{"meshName": "m", "virtualGatewayName": "g"}`, Key{Kind: KindVirtualGateway, Mesh: "m", Name: "g"}},
		{`{"meshName": "m", "virtualGatewayName": "g", "gatewayRouteName": "x"}`, Key{Kind: KindGatewayRoute, Mesh: "m", Parent: "g", Name: "x"}},
	}
	for _, tc := range cases {
		rs := mustDecode(t, []byte(tc.input))
		if len(rs) != 1 || rs[0].Key() != tc.want {
			t.Errorf("%s: decoded %v, want %s", tc.input, rs, tc.want)
		}
		if rs[0].Spec() == nil || isNilPointer(rs[0].Spec()) {
			t.Errorf("%s: no spec", tc.input)
		}
	}
}
