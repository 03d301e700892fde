package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

const completeMesh = "../../api/mesh/v1alpha1/testdata/complete.yaml"

// getArgs is the CLI invocation that fetches exactly the resource k.
func getArgs(k v1alpha1.Key) []string {
	args := []string{"get", string(k.Kind), k.Name, "-o", "json"}
	if k.Mesh != "" {
		args = append(args, "--mesh", k.Mesh)
	}
	switch k.Kind {
	case v1alpha1.KindRoute:
		args = append(args, "--virtual-router", k.Parent)
	case v1alpha1.KindGatewayRoute:
		args = append(args, "--virtual-gateway", k.Parent)
	}
	return args
}

func decodeOne(t *testing.T, out string) *v1alpha1.Resource {
	t.Helper()
	docs, err := v1alpha1.Decode([]byte(out))
	if err != nil || len(docs) != 1 {
		t.Fatalf("decode get output (%v, %d docs):\n%s", err, len(docs), out)
	}
	return docs[0]
}

func TestApplyGetRoundTripEveryKind(t *testing.T) {
	t.Parallel()
	for _, file := range []string{completeMesh, "../../examples/greeter.yaml"} {
		t.Run(file, func(t *testing.T) {
			s := startServer(t, t.TempDir())
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want, err := v1alpha1.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			out := s.mustCLI(t, "", "apply", "-f", file)
			kinds := map[v1alpha1.Kind]bool{}
			for _, w := range want {
				kinds[w.Kind] = true
				if !strings.Contains(out, describeLine(w.Key())+" created (version 1)") {
					t.Errorf("apply output lacks %q:\n%s", describeLine(w.Key())+" created (version 1)", out)
				}
				got := decodeOne(t, s.mustCLI(t, "", getArgs(w.Key())...))
				if !v1alpha1.SpecEqual(w, got) {
					wj, _ := json.Marshal(w.Spec())
					gj, _ := json.Marshal(got.Spec())
					t.Errorf("%s: spec changed in the round trip\nwant %s\ngot  %s", w.Key(), wj, gj)
				}
				if got.Metadata == nil || got.Metadata.Version != 1 || got.Metadata.UID == "" || got.Metadata.CreatedAt.IsZero() ||
					!strings.HasPrefix(got.Metadata.Arn, "arn:aws:appmesh:") || got.Status == nil || got.Status.Status != "ACTIVE" {
					t.Errorf("%s: metadata/status not filled: %+v %+v", w.Key(), got.Metadata, got.Status)
				}
			}
			if file == completeMesh && len(kinds) != len(v1alpha1.Kinds) {
				t.Errorf("%s covers %d kinds, want all %d", file, len(kinds), len(v1alpha1.Kinds))
			}
			// Applying the same documents again changes nothing.
			again := s.mustCLI(t, "", "apply", "-f", file)
			if strings.Contains(again, "created") || strings.Contains(again, "updated") {
				t.Errorf("re-apply of identical documents changed something:\n%s", again)
			}
			// get -o yaml output can be applied again unchanged.
			yamlOut := s.mustCLI(t, "", "get", "vn", "--mesh", want[0].Name, "-o", "yaml")
			re := s.mustCLI(t, yamlOut, "apply", "-f", "-")
			if strings.Contains(re, "updated") || strings.Contains(re, "created") {
				t.Errorf("re-applying get -o yaml output changed something:\n%s", re)
			}
		})
	}
}

func describeLine(k v1alpha1.Key) string {
	switch {
	case k.Kind == v1alpha1.KindMesh:
		return "mesh/" + k.Name
	case k.Parent != "":
		return strings.ToLower(string(k.Kind)) + "/" + k.Mesh + "/" + k.Parent + "/" + k.Name
	}
	return strings.ToLower(string(k.Kind)) + "/" + k.Mesh + "/" + k.Name
}

// App Mesh's own JSON, as `aws appmesh describe-virtual-node` prints it and
// as --cli-input-json takes it, is accepted as is.
func TestAppMeshJSONForms(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, `{"meshName": "legacy", "spec": {"egressFilter": {"type": "ALLOW_ALL"}}}`, "apply", "-f", "-")
	describe := `{
    "virtualNode": {
        "meshName": "legacy",
        "metadata": {
            "arn": "arn:aws:appmesh:us-west-2:123456789012:mesh/legacy/virtualNode/web",
            "createdAt": 1563810019.874,
            "lastUpdatedAt": 1563810019.874,
            "meshOwner": "123456789012",
            "resourceOwner": "123456789012",
            "uid": "111a1a1a-1a11-1a1a-1a11-111a11a1a1a1",
            "version": 7
        },
        "spec": {
            "backends": [],
            "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
            "serviceDiscovery": {"dns": {"hostname": "web.legacy.local"}}
        },
        "status": {"status": "ACTIVE"},
        "virtualNodeName": "web"
    }
}`
	out := s.mustCLI(t, describe, "apply", "-f", "-")
	if !strings.Contains(out, "virtualnode/legacy/web created (version 1)") {
		t.Fatalf("describe-virtual-node output not applied as a new resource:\n%s", out)
	}
	input := `{"meshName": "legacy", "virtualServiceName": "web.legacy.local",
	  "spec": {"provider": {"virtualNode": {"virtualNodeName": "web"}}}}`
	s.mustCLI(t, input, "apply", "-f", "-")
	got := decodeOne(t, s.mustCLI(t, "", "get", "virtualservices", "web.legacy.local", "--mesh", "legacy", "-o", "json"))
	if got.VirtualServiceSpec.Provider.VirtualNode.VirtualNodeName != "web" {
		t.Fatalf("create-virtual-service input not kept: %+v", got.VirtualServiceSpec)
	}
}

func TestKindNamesAsKubectlTakesThem(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, "", "apply", "-f", "../../examples/greeter.yaml")
	for _, kind := range []string{"virtualnode", "VirtualNode", "virtualnodes", "VIRTUALNODES", "vn"} {
		out := s.mustCLI(t, "", "get", kind, "--mesh", "demo")
		for _, name := range []string{"greeter", "greeting-v1", "greeting-v2", "name"} {
			if !strings.Contains(out, name) {
				t.Errorf("get %s: %q missing from\n%s", kind, name, out)
			}
		}
	}
	// get route lists every route of the mesh; --virtual-router narrows it.
	for _, args := range [][]string{{"get", "route", "--mesh", "demo"}, {"get", "rt", "--mesh", "demo", "--virtual-router", "greeting"}, {"get", "routes", "split", "--mesh", "demo"}} {
		if out := s.mustCLI(t, "", args...); !strings.Contains(out, "split") || !strings.Contains(out, "greeting") {
			t.Errorf("%v: want route split of router greeting, got\n%s", args, out)
		}
	}
	if r := s.cli(t, "", "get", "rt", "--mesh", "demo", "--virtual-router", "nope"); r.code != 0 || strings.Contains(r.stdout, "split") {
		t.Errorf("--virtual-router nope should list nothing: exit %d %s", r.code, r.stdout)
	}
	for _, kind := range []string{"meshes", "mesh", "Mesh"} {
		if out := s.mustCLI(t, "", "get", kind); !strings.Contains(out, "demo") {
			t.Errorf("get %s: %s", kind, out)
		}
	}
}

func TestBadDocumentInBatchAppliesNothing(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	data, err := os.ReadFile("../../examples/greeter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := string(data) + `
---
kind: VirtualNode
mesh: demo
name: broken
spec:
  listeners:
    - portMapping: {port: 9080, protocol: websocket}
`
	r := s.cli(t, bad, "apply", "-f", "-")
	if r.code != 4 {
		t.Fatalf("exit %d, want 4 (invalid)\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := "spec.listeners[0].portMapping.protocol: must be one of http, http2, grpc, tcp"
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "VirtualNode demo/broken") {
		t.Errorf("error should name the document and field %q:\n%s", want, r.stderr)
	}
	if out := s.mustCLI(t, "", "get", "meshes"); strings.Contains(out, "demo") {
		t.Fatalf("a rejected batch left resources behind:\n%s", out)
	}
	// A reference to a missing node is caught by the server inside the
	// write: again nothing is applied.
	dangling := string(data) + `
---
kind: Route
mesh: demo
virtualRouter: greeting
name: canary
spec:
  httpRoute:
    match: {prefix: /canary}
    action:
      weightedTargets: [{virtualNode: greeting-v3, weight: 1}]
`
	r = s.cli(t, dangling, "apply", "-f", "-")
	if r.code != 4 || !strings.Contains(r.stderr, "greeting-v3") {
		t.Fatalf("dangling reference: exit %d, stderr %s", r.code, r.stderr)
	}
	if out := s.mustCLI(t, "", "get", "meshes"); strings.Contains(out, "demo") {
		t.Fatalf("a batch with a dangling reference left resources behind:\n%s", out)
	}
}

func TestDeleteAndExitCodes(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, "", "apply", "-f", "../../examples/greeter.yaml")

	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"in use by a route", []string{"delete", "vn", "greeting-v1", "--mesh", "demo"}, 5, "in use by Route demo/greeting/split"},
		{"mesh in use", []string{"delete", "mesh", "demo"}, 5, "in use"},
		{"missing", []string{"delete", "vn", "nope", "--mesh", "demo"}, 3, "VirtualNode demo/nope not found"},
		{"get missing", []string{"get", "vs", "nope.demo.local", "--mesh", "demo"}, 3, "not found"},
		{"no mesh flag", []string{"get", "vn"}, 2, "--mesh is required"},
		{"unknown kind", []string{"get", "pods"}, 2, "unknown kind"},
		{"bad output", []string{"get", "vn", "--mesh", "demo", "-o", "xml"}, 2, "want table, json or yaml"},
		{"stale version", []string{"delete", "gr", "greeter", "--mesh", "demo", "--virtual-gateway", "ingress", "--version", "9"}, 5, "conflict"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.cli(t, "", c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("exit %d (want %d), stderr %q (want it to contain %q)", r.code, c.code, r.stderr, c.stderr)
			}
		})
	}
	// Unreachable server.
	r := s.cli(t, "", "get", "meshes", "--server", "http://"+unusedAddr(t))
	if r.code != 6 {
		t.Errorf("unreachable server: exit %d, want 6 (%s)", r.code, r.stderr)
	}
	// Deleting in dependency order works and leaves nothing.
	for _, args := range [][]string{
		{"delete", "gr", "greeter", "--mesh", "demo", "--virtual-gateway", "ingress", "--version", "1"},
		{"delete", "vg", "ingress", "--mesh", "demo"},
		{"delete", "vs", "greeting.demo.local", "--mesh", "demo"},
		{"delete", "rt", "split", "--mesh", "demo"},
		{"delete", "vr", "greeting", "--mesh", "demo"},
		{"delete", "vn", "greeting-v1", "--mesh", "demo"},
	} {
		if out := s.mustCLI(t, "", args...); !strings.Contains(out, "deleted") {
			t.Errorf("%v: %s", args, out)
		}
	}
	if r := s.cli(t, "", "get", "vr", "greeting", "--mesh", "demo"); r.code != 3 {
		t.Errorf("deleted router still found: exit %d", r.code)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, "", "apply", "-f", "../../examples/greeter.yaml")
	out := s.mustCLI(t, "", "describe", "vn", "greeting-v1", "--mesh", "demo")
	for _, want := range []string{"Kind:       VirtualNode", "Route demo/greeting/split", "Instances:", "Version:    1", "portMapping"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	// Update bumps the version by one.
	s.mustCLI(t, `kind: VirtualNode
mesh: demo
name: greeting-v1
spec:
  listeners:
    - portMapping: {port: 9080, protocol: http}
      timeout:
        http: {perRequest: {unit: s, value: 5}}
  serviceDiscovery:
    awsCloudMap:
      namespaceName: demo.local
      serviceName: greeting
      attributes: [{key: version, value: v1}]
`, "apply", "-f", "-")
	got := decodeOne(t, s.mustCLI(t, "", "get", "vn", "greeting-v1", "--mesh", "demo", "-o", "json"))
	if got.Metadata.Version != 2 {
		t.Errorf("version after update = %d, want 2", got.Metadata.Version)
	}
}
