package table

import (
	"fmt"
	"math/rand/v2"
	"testing"

	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
)

// benchTable is a route table of the size a busy sidecar sees: 50
// virtual hosts of 10 routes each, using every kind of match, and a
// catch-all.
func benchTable(t testing.TB) *RouteTable {
	t.Helper()
	rc := &routev3.RouteConfiguration{Name: "bench"}
	for i := range 50 {
		svc := fmt.Sprintf("svc-%d.demo.local", i)
		vh := &routev3.VirtualHost{Name: svc, Domains: []string{svc, svc + ":8080"}}
		for j := range 9 {
			m := &routev3.RouteMatch{}
			switch j % 4 {
			case 0:
				m.PathSpecifier = &routev3.RouteMatch_Path{Path: fmt.Sprintf("/exact/%d", j)}
			case 1:
				m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/api/v%d/", j)}
				m.QueryParameters = []*routev3.QueryParameterMatcher{qp("color", "exact", "red")}
			case 2:
				m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: fmt.Sprintf("/r%d/[0-9]+", j)}}
			case 3:
				m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/h"}
				m.Headers = []*routev3.HeaderMatcher{
					hdr("x-canary", "exact", "1"),
					{Name: "x-n", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: 0, End: 10}}},
				}
			}
			vh.Routes = append(vh.Routes, &routev3.Route{Name: fmt.Sprintf("r%d", j), Match: m, Action: prefixRoute("/", "c").Action})
		}
		vh.Routes = append(vh.Routes, &routev3.Route{
			Name: "default",
			Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers:       []*routev3.HeaderMatcher{hdr(":method", "regex", "GET|POST")},
			},
			Action: prefixRoute("/", "c").Action,
		})
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: "any", Domains: []string{"*"}, Routes: []*routev3.Route{prefixRoute("/", "c")}})
	return compileRoutes(t, rc)
}

func BenchmarkRoute(b *testing.B) {
	rt := benchTable(b)
	reqs := []*testRequest{
		{authority: "svc-17.demo.local:8080", method: "GET", path: "/api/v9/items?id=12&color=red", scheme: "http", headers: map[string]string{"x-canary": "1"}},
		{authority: "SVC-42.Demo.Local", method: "POST", path: "/r6/12345", scheme: "https"},
		{authority: "svc-3.demo.local", method: "GET", path: "/other", scheme: "http"},
		{authority: "unknown.example.com", method: "GET", path: "/", scheme: "http"},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, r := rt.Route(reqs[i&3]); r == nil {
			b.Fatal("no route")
		}
		i++
	}
}

func BenchmarkPick(b *testing.B) {
	c := weightedCluster(b, 20, func(i int) uint32 { return uint32(1 + i%3) })
	rnd := rand.New(rand.NewPCG(1, 2))
	r := &Route{Clusters: []WeightedCluster{{Name: "a", Weight: 80, Cluster: c}, {Name: "b", Weight: 20, Cluster: c}}, TotalWeight: 100}
	ejected := map[int]bool{3: true, 7: true}
	skip := func(i int) bool { return ejected[i] }
	b.ReportAllocs()
	for b.Loop() {
		cl := r.PickCluster(rnd.Uint32())
		if _, ok := cl.PickIndex(rnd.Uint64(), skip, nil); !ok {
			b.Fatal("no endpoint")
		}
	}
}
