package xds

import (
	"encoding/json"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
)

func TestCombineGatewayAndRoute(t *testing.T) {
	t.Parallel()
	prefix := func(v string) pathMatch { return pathMatch{kind: pathPrefix, value: v} }
	exact := func(v string) pathMatch { return pathMatch{kind: pathExact, value: v} }
	regex := func(v string) pathMatch { return pathMatch{kind: pathRegex, value: v} }
	tests := []struct {
		name          string
		gw            pathMatch
		rw            gatewayRewrite
		route         pathMatch
		wantOK        bool
		wantMatch     string // protojson of the path specifier and :path header
		prefixRewrite string
		pathRewrite   string
	}{
		{"default rewrite, route extends the rewritten prefix", prefix("/colors/"), gatewayRewrite{prefix: true, prefixTo: "/"}, prefix("/red"),
			true, `{"prefix":"/colors/red"}`, "/red", ""},
		{"default rewrite, catch-all route", prefix("/colors/"), gatewayRewrite{prefix: true, prefixTo: "/"}, prefix("/"),
			true, `{"prefix":"/colors/"}`, "/", ""},
		{"value rewrite, rewritten prefix extends the route", prefix("/v2/"), gatewayRewrite{prefix: true, prefixTo: "/api/v2/"}, prefix("/api"),
			true, `{"prefix":"/v2/"}`, "/api/v2/", ""},
		{"value rewrite, unrelated route", prefix("/v2/"), gatewayRewrite{prefix: true, prefixTo: "/api/v2/"}, prefix("/web"),
			false, "", "", ""},
		{"default rewrite, exact route", prefix("/colors/"), gatewayRewrite{prefix: true, prefixTo: "/"}, exact("/exact"),
			true, `{"path":"/colors/exact"}`, "/exact", ""},
		{"rewrite and regex route cannot be expressed", prefix("/colors/"), gatewayRewrite{prefix: true, prefixTo: "/"}, regex("/r/[0-9]+"),
			false, "", "", ""},
		{"no rewrite, longer route prefix wins", prefix("/paint"), gatewayRewrite{}, prefix("/paint/red"),
			true, `{"prefix":"/paint/red"}`, "", ""},
		{"no rewrite, longer gateway prefix wins", prefix("/paint/red"), gatewayRewrite{}, prefix("/paint"),
			true, `{"prefix":"/paint/red"}`, "", ""},
		{"no rewrite, disjoint prefixes", prefix("/paint"), gatewayRewrite{}, prefix("/h"),
			false, "", "", ""},
		{"no rewrite, regex route ANDed with the gateway prefix", prefix("/paint"), gatewayRewrite{}, regex("/paint/[a-z]+"),
			true, `{"safeRegex":{"regex":"/paint/[a-z]+"},"headers":[{"name":":path","stringMatch":{"prefix":"/paint"}}]}`, "", ""},
		{"no rewrite, gateway regex ANDed with the route prefix", regex("/v[0-9]/.*"), gatewayRewrite{}, prefix("/v1"),
			true, `{"safeRegex":{"regex":"/v[0-9]/.*"},"headers":[{"name":":path","stringMatch":{"prefix":"/v1"}}]}`, "", ""},
		{"no rewrite, gateway regex and route exact decided now", regex("/v[0-9]/.*"), gatewayRewrite{}, exact("/v1/x"),
			true, `{"path":"/v1/x"}`, "", ""},
		{"no rewrite, two regexes cannot be combined", regex("/a.*"), gatewayRewrite{}, regex("/b.*"),
			false, "", "", ""},
		{"exact gateway path decides the route now", exact("/legacy"), gatewayRewrite{}, prefix("/leg"),
			true, `{"path":"/legacy"}`, "", ""},
		{"exact gateway path excludes the route", exact("/legacy"), gatewayRewrite{}, prefix("/new"),
			false, "", "", ""},
		{"path rewrite decides the route on the new path", exact("/legacy"), gatewayRewrite{path: true, pathTo: "/h/legacy"}, regex("/h/.*"),
			true, `{"path":"/legacy"}`, "", "/h/legacy"},
		{"path rewrite excludes the route", regex("/old/.*"), gatewayRewrite{path: true, pathTo: "/h/legacy"}, exact("/exact"),
			false, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := &gatewayRule{name: "g", path: tt.gw, rewrite: tt.rw}
			r := &rule{name: "r", path: tt.route}
			m, pre, path, res := combine(g, r)
			if ok := res == combined; ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if res != combined {
				return
			}
			if pre != tt.prefixRewrite || path != tt.pathRewrite {
				t.Fatalf("rewrites = %q, %q; want %q, %q", pre, path, tt.prefixRewrite, tt.pathRewrite)
			}
			got, err := protojson.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, string(got), tt.wantMatch) {
				t.Fatalf("match = %s, want %s", got, tt.wantMatch)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func TestRouteOrder(t *testing.T) {
	t.Parallel()
	p := func(i int) *int { return &i }
	rules := []*rule{
		{name: "catch-all", path: pathMatch{kind: pathPrefix, value: "/"}},
		{name: "long", path: pathMatch{kind: pathPrefix, value: "/api/v2"}},
		{name: "headers", path: pathMatch{kind: pathPrefix, value: "/api/v2"}, headers: []*routev3.HeaderMatcher{exactHeader("x", "y")}},
		{name: "regex", path: pathMatch{kind: pathRegex, value: "/r/.*"}},
		{name: "exact", path: pathMatch{kind: pathExact, value: "/x"}},
		{name: "second", priority: p(2), path: pathMatch{kind: pathPrefix, value: "/"}},
		{name: "first", priority: p(1), path: pathMatch{kind: pathPrefix, value: "/"}},
	}
	sortRules(rules)
	var got []string
	for _, r := range rules {
		got = append(got, r.name)
	}
	want := []string{"first", "second", "exact", "regex", "headers", "long", "catch-all"}
	if jsonKey(got) != jsonKey(want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
}

// FuzzTranslate decodes arbitrary route, gateway route and virtual node
// specs (as App Mesh JSON), puts them into the fixture mesh, and checks
// that translation never panics and only produces resources that pass
// their proto validation and a consistent snapshot.
func FuzzTranslate(f *testing.F) {
	f.Add(byte(0), []byte(`{"httpRoute":{"match":{"prefix":"/x","headers":[{"name":"a","match":{"range":{"start":1,"end":2}}}]},"action":{"weightedTargets":[{"virtualNode":"colors-red","weight":3}]}}}`))
	f.Add(byte(0), []byte(`{"grpcRoute":{"match":{"methodName":"M"},"action":{"weightedTargets":[{"virtualNode":"greeting-v1","weight":0}]},"retryPolicy":{"maxRetries":0,"perRetryTimeout":{"unit":"ms","value":1}}}}`))
	f.Add(byte(1), []byte(`{"httpRoute":{"match":{"prefix":"/a/","hostname":{"suffix":"x"}},"action":{"target":{"virtualService":{"virtualServiceName":"colors.demo.local"}},"rewrite":{"prefix":{"value":"/b"}}}}}`))
	f.Add(byte(1), []byte(`{"httpRoute":{"match":{"path":{"regex":"/a.*"}},"action":{"target":{"virtualService":{"virtualServiceName":"colors.demo.local"}},"rewrite":{"path":{"exact":"/h\\x"}}}}}`))
	f.Add(byte(2), []byte(`{"listeners":[{"portMapping":{"port":8080,"protocol":"http"},"healthCheck":{"protocol":"http2","healthyThreshold":0,"unhealthyThreshold":0,"intervalMillis":1,"timeoutMillis":1},"outlierDetection":{"maxServerErrors":1,"maxEjectionPercent":500,"interval":{"value":1},"baseEjectionDuration":{"value":1}}}]}`))
	base := loadMesh(f, "testdata/mesh.yaml")
	eps := fixtureEndpoints()
	f.Fuzz(func(t *testing.T, which byte, spec []byte) {
		var r *v1alpha1.Resource
		var id nodeid.ID
		switch which % 3 {
		case 0:
			r = &v1alpha1.Resource{Kind: v1alpha1.KindRoute, Mesh: "demo", VirtualRouter: "colors", Name: "fuzz"}
			r.RouteSpec = &v1alpha1.RouteSpec{}
			if json.Unmarshal(spec, r.RouteSpec) != nil {
				return
			}
			id = nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "greeter"}
		case 1:
			r = &v1alpha1.Resource{Kind: v1alpha1.KindGatewayRoute, Mesh: "demo", VirtualGateway: "ingress-gw", Name: "fuzz"}
			r.GatewayRouteSpec = &v1alpha1.GatewayRouteSpec{}
			if json.Unmarshal(spec, r.GatewayRouteSpec) != nil {
				return
			}
			id = nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualGateway, Name: "ingress-gw"}
		default:
			r = &v1alpha1.Resource{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "colors-red"}
			r.VirtualNodeSpec = &v1alpha1.VirtualNodeSpec{}
			if json.Unmarshal(spec, r.VirtualNodeSpec) != nil {
				return
			}
			id = nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "greeter"}
		}
		l := base.With(2, []*v1alpha1.Resource{r}, nil)
		for _, fl := range []Flavour{FlavourEnvoy, FlavourProxyless} {
			if fl == FlavourProxyless && id.Kind != nodeid.VirtualNode {
				continue
			}
			v := Translate(l, eps, id, fl)
			validateView(t, v)
			if _, _, err := v.snapshot(newHasher()); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		}
	})
}
