package table

import (
	"testing"

	"github.com/meshlens/meshlens/internal/xdsproto"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	endpointv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/endpoint/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
)

// FuzzRouteMatch throws arbitrary requests at a compiled table: matching
// must never panic, and the route it returns must match the request on
// its own.
func FuzzRouteMatch(f *testing.F) {
	rt := benchTable(f)
	f.Add("svc-17.demo.local:8080", "GET", "/api/v9/items?id=12&color=red", "1", "5")
	f.Add("SVC-42.Demo.Local", "POST", "/r6/12345#frag", "", "")
	f.Add("[::1]:80", "", "?%zz=%4", "x", "-9223372036854775808")
	f.Add("", "", "", "", "")
	f.Fuzz(func(t *testing.T, authority, method, path, canary, n string) {
		r := &testRequest{authority: authority, method: method, path: path, scheme: "http",
			headers: map[string]string{"x-canary": canary, "x-n": n, "content-type": "application/grpc"}}
		vh, route := rt.Route(r)
		if route != nil {
			if vh == nil {
				t.Fatal("a route without a virtual host")
			}
			if !route.Match.Matches(r) {
				t.Fatalf("route %s returned but does not match", route.Name)
			}
			route.RewritePath(path)
		}
		queryParam(path, canary)
	})
}

// FuzzCompile decodes arbitrary bytes into one xDS resource, adds it to a
// valid set and compiles: Compile must never panic, whatever it is fed.
func FuzzCompile(f *testing.F) {
	base := validSet(f)
	for _, m := range []xdsproto.Message{base.Listeners[0], base.Listeners[1], base.Routes[0], base.Clusters[0], base.Clusters[1], base.Endpoints[0]} {
		b, err := xdsproto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		var kind byte
		switch m.(type) {
		case *routev3.RouteConfiguration:
			kind = 1
		case *clusterv3.Cluster:
			kind = 2
		case *endpointv3.ClusterLoadAssignment:
			kind = 3
		}
		f.Add(kind, b)
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		var m xdsproto.Message
		switch kind % 4 {
		case 0:
			m = &listenerv3.Listener{}
		case 1:
			m = &routev3.RouteConfiguration{}
		case 2:
			m = &clusterv3.Cluster{}
		case 3:
			m = &endpointv3.ClusterLoadAssignment{}
		}
		if err := m.Unmarshal(data); err != nil {
			return
		}
		compileFuzzed(t, kind, m, validSet(t))
	})
}

// compileFuzzed adds the decoded resource to res and compiles.
func compileFuzzed(t *testing.T, kind byte, m xdsproto.Message, res Resources) {
	switch kind % 4 {
	case 0:
		res.Listeners = append(res.Listeners, m.(*listenerv3.Listener))
	case 1:
		res.Routes = []*routev3.RouteConfiguration{m.(*routev3.RouteConfiguration)}
	case 2:
		res.Clusters = append(res.Clusters, m.(*clusterv3.Cluster))
	case 3:
		res.Endpoints = []*endpointv3.ClusterLoadAssignment{m.(*endpointv3.ClusterLoadAssignment)}
	}
	for _, opts := range []CompileOptions{{}, {Gateway: true, AllowMissing: true}} {
		snap, err := Compile(res, opts)
		if err != nil {
			continue
		}
		for _, l := range snap.Listeners {
			l.MatchChain(ConnInfo{Dest: l.Address, TransportProtocol: "tls", ServerName: "a.b", ApplicationProtocols: []string{"h2"}})
			for _, ch := range append(l.Chains, l.Default) {
				if ch != nil && ch.HTTP != nil {
					ch.HTTP.Routes.Route(&testRequest{authority: "svc", path: "/a?b=c"})
				}
			}
		}
		for _, c := range snap.Clusters {
			c.Pick(42)
		}
	}
}
