package xds

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// loadMesh decodes a multi-document YAML file of meshlens resources.
func loadMesh(t testing.TB, path string) *store.Snapshot {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rs []*v1alpha1.Resource
	for i, doc := range strings.Split(string(raw), "\n---\n") {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue
		}
		r := &v1alpha1.Resource{}
		if err := json.Unmarshal(j, r); err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		rs = append(rs, r)
	}
	return store.NewSnapshot(1, rs)
}

// staticEndpoints is an Endpoints backed by a map keyed mesh/node.
type staticEndpoints map[string][]Endpoint

func (s staticEndpoints) Endpoints(mesh, node string) []Endpoint { return s[mesh+"/"+node] }

func fixtureEndpoints() staticEndpoints {
	return staticEndpoints{
		"demo/colors-red": {
			{Address: "10.0.1.2", Port: 8080, Healthy: true, Zone: "us-west-2a"},
			{Address: "10.0.2.2", Port: 8080, Healthy: false, Zone: "us-west-2b"},
			{Address: "10.0.1.3", Port: 8080, Healthy: true, Zone: "us-west-2a"},
			{Address: "10.0.1.3", Port: 8080, Healthy: true, Zone: "us-west-2a"}, // duplicate
		},
		"demo/colors-blue": {{Address: "10.0.3.2", Healthy: true}},
		"demo/greeting-v1": {{Address: "10.0.4.2", Port: 9080, Healthy: true}},
		"demo/greeting-v2": {{Address: "10.0.4.3", Port: 19080, Healthy: true}},
		"demo/db":          {{Address: "10.0.5.2", Healthy: true}},
		"demo/h2svc":       {{Address: "10.0.6.2", Healthy: true}},
		"open/api":         {{Address: "10.1.0.2", Port: 9999, Healthy: true}},
		"open/cache":       {{Address: "10.1.0.3", Healthy: true}},
	}
}

var goldenCases = []struct {
	name    string
	id      string
	flavour Flavour
}{
	{"sidecar_greeter", "mesh/demo/virtualNode/greeter", FlavourEnvoy},
	{"sidecar_colors_red", "mesh/demo/virtualNode/colors-red", FlavourEnvoy},
	{"sidecar_h2svc_permissive_tls", "mesh/demo/virtualNode/h2svc", FlavourEnvoy},
	{"sidecar_acm_skipped", "mesh/demo/virtualNode/acm-node", FlavourEnvoy},
	{"sidecar_allow_all", "mesh/open/virtualNode/web", FlavourEnvoy},
	{"gateway", "mesh/demo/virtualGateway/ingress-gw", FlavourEnvoy},
	{"proxyless_client", "mesh/demo/virtualNode/client", FlavourProxyless},
	{"missing_node", "mesh/demo/virtualNode/ghost", FlavourEnvoy},
}

func TestTranslateGolden(t *testing.T) {
	t.Parallel()
	lookup := loadMesh(t, "testdata/mesh.yaml")
	eps := fixtureEndpoints()
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id, err := nodeid.Parse(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			v := Translate(lookup, eps, id, tc.flavour)
			checkGoldenView(t, v, tc.flavour, tc.name)
		})
	}
}

// checkGoldenView checks a translated view as every golden test does: it
// validates, makes a snapshot (for Envoy views, consistent by
// go-control-plane's own check, which reads the typed resources the
// served snapshot holds encoded), and renders it as testdata/NAME.golden.yaml,
// written again with -update.
func checkGoldenView(t *testing.T, v *View, fl Flavour, name string) {
	t.Helper()
	validateView(t, v)
	if _, _, err := v.snapshot(newHasher()); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// go-control-plane's check does not look into api_listeners, so it
	// only applies to Envoy views.
	if fl == FlavourEnvoy {
		snap, err := cache.NewSnapshot("", v.byType())
		if err != nil {
			t.Fatal(err)
		}
		if err := snap.Consistent(); err != nil {
			t.Fatalf("Consistent(): %v", err)
		}
	}
	got := renderView(t, v)
	path := filepath.Join("testdata", name+".golden.yaml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the translation; run go test ./internal/xds -update and review the diff\n%s", path, firstDiff(string(want), string(got)))
	}
}

// renderView renders a view as YAML: protojson (which expands Any with
// its @type) normalised through sigs.k8s.io/yaml so the output is stable.
func renderView(t testing.TB, v *View) []byte {
	t.Helper()
	doc := map[string]any{}
	add := func(key string, m proto.Message) {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatalf("marshal %T: %v", m, err)
		}
		var x any
		if err := json.Unmarshal(b, &x); err != nil {
			t.Fatal(err)
		}
		list, _ := doc[key].([]any)
		doc[key] = append(list, x)
	}
	for _, r := range v.Listeners {
		add("listeners", r)
	}
	for _, r := range v.Routes {
		add("routes", r)
	}
	for _, r := range v.Clusters {
		add("clusters", r)
	}
	for _, r := range v.Endpoints {
		add("endpoints", r)
	}
	for _, n := range v.Notes {
		list, _ := doc["notes"].([]string)
		doc["notes"] = append(list, n.String())
	}
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + itoa32(uint32(i+1)) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

// validateView checks every resource with its proto's generated
// validation, including the typed configs packed in Any fields, which
// Validate does not open.
func validateView(t testing.TB, v *View) {
	t.Helper()
	var all []proto.Message
	for _, r := range v.Listeners {
		all = append(all, r)
	}
	for _, r := range v.Routes {
		all = append(all, r)
	}
	for _, r := range v.Clusters {
		all = append(all, r)
	}
	for _, r := range v.Endpoints {
		all = append(all, r)
	}
	for _, m := range all {
		validateDeep(t, m)
	}
}

func validateDeep(t testing.TB, m proto.Message) {
	t.Helper()
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			t.Errorf("%T %s: %v", m, resourceName(m), err)
		}
	}
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Errorf("%T %s: Any %s: %v", m, resourceName(m), a.TypeUrl, err)
			return
		}
		validateDeep(t, inner)
	})
}

func resourceName(m proto.Message) string {
	if n, ok := m.(interface{ GetName() string }); ok {
		return n.GetName()
	}
	if n, ok := m.(interface{ GetClusterName() string }); ok {
		return n.GetClusterName()
	}
	return ""
}

// walkAnys calls f for every Any inside m.
func walkAnys(m protoreflect.Message, f func(*anypb.Any)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		f(a)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkAnys(l.Get(i).Message(), f)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkAnys(mv.Message(), f)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			walkAnys(v.Message(), f)
		}
		return true
	})
}
