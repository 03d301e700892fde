package v1alpha1

import (
	"errors"
	"os"
	"slices"
	"testing"
)

// world is a Lookup over a map, as the store's snapshot is over its tree.
type world map[Key]*Resource

func (w world) Get(k Key) *Resource { return w[k] }

func (w world) List(kind Kind, mesh, parent string) []*Resource {
	var out []*Resource
	for _, r := range w {
		k := r.Key()
		if r.Kind != kind || kind != KindMesh && mesh != "" && k.Mesh != mesh || parent != "" && k.Parent != parent {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Resource) int { return compareKeys(a.Key(), b.Key()) })
	return out
}

func (w world) put(rs ...*Resource) {
	for _, r := range rs {
		w[r.Key()] = r
	}
}

func newWorld(rs []*Resource) world {
	w := world{}
	w.put(rs...)
	return w
}

// baseWorld is one resource of every kind, all referring to each other:
// the bases of validate_test.go.
func baseWorld(t *testing.T) world {
	w := world{}
	for kind := range bases {
		w.put(base(t, kind))
	}
	return w
}

var (
	meshKey    = Key{Kind: KindMesh, Name: "demo"}
	nodeKey    = Key{Kind: KindVirtualNode, Mesh: "demo", Name: "node"}
	routerKey  = Key{Kind: KindVirtualRouter, Mesh: "demo", Name: "router"}
	routeKey   = Key{Kind: KindRoute, Mesh: "demo", Parent: "router", Name: "route"}
	serviceKey = Key{Kind: KindVirtualService, Mesh: "demo", Name: "svc.demo.local"}
	gatewayKey = Key{Kind: KindVirtualGateway, Mesh: "demo", Name: "gateway"}
	gRouteKey  = Key{Kind: KindGatewayRoute, Mesh: "demo", Parent: "gateway", Name: "groute"}
)

func TestBaseWorldReferences(t *testing.T) {
	t.Parallel()
	w := baseWorld(t)
	if err := CheckReferences(w, slices.Collect(func(yield func(Key) bool) {
		for k := range w {
			if !yield(k) {
				return
			}
		}
	})); err != nil {
		t.Fatal(err)
	}
}

func TestCompleteReferences(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/complete.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	var keys []Key
	for _, r := range rs {
		keys = append(keys, r.Key())
	}
	if err := CheckReferences(newWorld(rs), keys); err != nil {
		t.Fatalf("testdata/complete.yaml: %v", err)
	}
}

// TestCheckReferences has one case per rule: change changes the base
// world and returns the keys it changed.
func TestCheckReferences(t *testing.T) {
	t.Parallel()
	route := func(w world) *Resource { return w[routeKey] }
	groute := func(w world) *Resource { return w[gRouteKey] }
	cases := []struct {
		name   string
		change func(t *testing.T, w world) []Key
		want   string
		is     error
	}{
		{"valid", func(t *testing.T, w world) []Key { return []Key{nodeKey} }, "", nil},
		{"mesh name differing only in case", func(t *testing.T, w world) []Key {
			r := base(t, KindMesh)
			r.Name = "Demo"
			w.put(r)
			return []Key{r.Key()}
		}, "Mesh Demo: name: differs from mesh demo only in case; the two would share the mesh CA's trust domain spiffe://demo, and a workload of one could prove an identity of the other: choose another name", ErrInvalidReference},
		{"mesh missing", func(t *testing.T, w world) []Key {
			r := base(t, KindVirtualNode)
			r.Mesh, r.Name = "nope", "orphan"
			w.put(r)
			return []Key{r.Key()}
		}, "VirtualNode nope/orphan: mesh: Mesh nope not found", ErrReferenceNotFound},
		{"route router missing", func(t *testing.T, w world) []Key {
			r := base(t, KindRoute)
			r.VirtualRouter = "ghost"
			w.put(r)
			return []Key{r.Key()}
		}, "Route demo/ghost/route: virtualRouter: VirtualRouter demo/ghost not found", ErrReferenceNotFound},
		{"route target missing", func(t *testing.T, w world) []Key {
			route(w).RouteSpec.HTTPRoute.Action.WeightedTargets[0].VirtualNode = "greeting-v3"
			return []Key{routeKey}
		}, "Route demo/router/route: spec.httpRoute.action.weightedTargets[0].virtualNode: VirtualNode demo/greeting-v3 not found", ErrReferenceNotFound},
		{"route protocol", func(t *testing.T, w world) []Key {
			s := route(w).RouteSpec
			s.HTTP2Route, s.HTTPRoute = s.HTTPRoute, nil
			return []Key{routeKey}
		}, "Route demo/router/route: spec.http2Route: VirtualRouter demo/router has no http2 listener", ErrInvalidReference},
		{"route match port", func(t *testing.T, w world) []Key {
			route(w).RouteSpec.HTTPRoute.Match.Port = 9090
			return []Key{routeKey}
		}, "Route demo/router/route: spec.httpRoute.match.port: VirtualRouter demo/router has no http listener on port 9090", ErrInvalidReference},
		{"router update breaks route protocol", func(t *testing.T, w world) []Key {
			w[routerKey].VirtualRouterSpec.Listeners[0].PortMapping.Protocol = "grpc"
			return []Key{routerKey}
		}, "Route demo/router/route: spec.httpRoute: VirtualRouter demo/router has no http listener", ErrInvalidReference},
		{"router with several listeners needs route ports", func(t *testing.T, w world) []Key {
			s := w[routerKey].VirtualRouterSpec
			s.Listeners = append(s.Listeners, VirtualRouterListener{PortMapping: &PortMapping{Port: 9090, Protocol: "grpc"}})
			return []Key{routerKey}
		}, "Route demo/router/route: spec.httpRoute.match.port: is required because VirtualRouter demo/router has more than one listener", ErrInvalidReference},
		{"tcp route match port required", func(t *testing.T, w world) []Key {
			s := w[routerKey].VirtualRouterSpec
			s.Listeners = append(s.Listeners, VirtualRouterListener{PortMapping: &PortMapping{Port: 7000, Protocol: "tcp"}})
			rs := route(w).RouteSpec
			rs.HTTPRoute, rs.TCPRoute = nil, &TCPRoute{Action: &TCPRouteAction{WeightedTargets: rs.HTTPRoute.Action.WeightedTargets}}
			return []Key{routeKey}
		}, "Route demo/router/route: spec.tcpRoute.match.port: is required because VirtualRouter demo/router has more than one listener", ErrInvalidReference},
		{"route target port", func(t *testing.T, w world) []Key {
			route(w).RouteSpec.HTTPRoute.Action.WeightedTargets[0].Port = 9090
			return []Key{routeKey}
		}, "Route demo/router/route: spec.httpRoute.action.weightedTargets[0].port: VirtualNode demo/node has no listener on port 9090", ErrInvalidReference},
		{"node with several listeners needs target ports", func(t *testing.T, w world) []Key {
			s := w[nodeKey].VirtualNodeSpec
			s.Listeners = append(s.Listeners, Listener{PortMapping: &PortMapping{Port: 9090, Protocol: "grpc"}})
			return []Key{nodeKey}
		}, "Route demo/router/route: spec.httpRoute.action.weightedTargets[0].port: is required because VirtualNode demo/node has more than one listener", ErrInvalidReference},
		{"provider node missing", func(t *testing.T, w world) []Key {
			w[serviceKey].VirtualServiceSpec.Provider.VirtualNode.VirtualNodeName = "ghost"
			return []Key{serviceKey}
		}, "VirtualService demo/svc.demo.local: spec.provider.virtualNode.virtualNodeName: VirtualNode demo/ghost not found", ErrReferenceNotFound},
		{"provider router missing", func(t *testing.T, w world) []Key {
			w[serviceKey].VirtualServiceSpec.Provider = &VirtualServiceProvider{VirtualRouter: &VirtualRouterServiceProvider{VirtualRouterName: "ghost"}}
			return []Key{serviceKey}
		}, "VirtualService demo/svc.demo.local: spec.provider.virtualRouter.virtualRouterName: VirtualRouter demo/ghost not found", ErrReferenceNotFound},
		{"backends may name missing services", func(t *testing.T, w world) []Key {
			w[nodeKey].VirtualNodeSpec.Backends = []Backend{{VirtualService: &VirtualServiceBackend{VirtualServiceName: "later.demo.local"}}}
			return []Key{nodeKey}
		}, "", nil},
		{"gateway route gateway missing", func(t *testing.T, w world) []Key {
			r := base(t, KindGatewayRoute)
			r.VirtualGateway = "ghost"
			w.put(r)
			return []Key{r.Key()}
		}, "GatewayRoute demo/ghost/groute: virtualGateway: VirtualGateway demo/ghost not found", ErrReferenceNotFound},
		{"gateway route target missing", func(t *testing.T, w world) []Key {
			groute(w).GatewayRouteSpec.HTTPRoute.Action.Target.VirtualService.VirtualServiceName = "ghost.demo.local"
			return []Key{gRouteKey}
		}, "GatewayRoute demo/gateway/groute: spec.httpRoute.action.target.virtualService.virtualServiceName: VirtualService demo/ghost.demo.local not found", ErrReferenceNotFound},
		{"gateway route protocol", func(t *testing.T, w world) []Key {
			s := groute(w).GatewayRouteSpec
			s.HTTP2Route, s.HTTPRoute = s.HTTPRoute, nil
			return []Key{gRouteKey}
		}, "GatewayRoute demo/gateway/groute: spec.http2Route: VirtualGateway demo/gateway has no http2 listener", ErrInvalidReference},
		{"gateway route match port", func(t *testing.T, w world) []Key {
			groute(w).GatewayRouteSpec.HTTPRoute.Match.Port = 8443
			return []Key{gRouteKey}
		}, "GatewayRoute demo/gateway/groute: spec.httpRoute.match.port: VirtualGateway demo/gateway has no http listener on port 8443", ErrInvalidReference},
		{"gateway with several listeners needs match ports", func(t *testing.T, w world) []Key {
			s := w[gatewayKey].VirtualGatewaySpec
			s.Listeners = append(s.Listeners, VirtualGatewayListener{PortMapping: &PortMapping{Port: 8443, Protocol: "http"}})
			return []Key{gatewayKey}
		}, "GatewayRoute demo/gateway/groute: spec.httpRoute.match.port: is required because VirtualGateway demo/gateway has more than one listener", ErrInvalidReference},
		{"gateway route target port on node", func(t *testing.T, w world) []Key {
			groute(w).GatewayRouteSpec.HTTPRoute.Action.Target.Port = 9090
			return []Key{gRouteKey}
		}, "GatewayRoute demo/gateway/groute: spec.httpRoute.action.target.port: VirtualNode demo/node has no listener on port 9090", ErrInvalidReference},
		{"gateway route target port on router", func(t *testing.T, w world) []Key {
			w[serviceKey].VirtualServiceSpec.Provider = &VirtualServiceProvider{VirtualRouter: &VirtualRouterServiceProvider{VirtualRouterName: "router"}}
			groute(w).GatewayRouteSpec.HTTPRoute.Action.Target.Port = 8081
			return []Key{serviceKey, gRouteKey}
		}, "GatewayRoute demo/gateway/groute: spec.httpRoute.action.target.port: VirtualRouter demo/router has no listener on port 8081", ErrInvalidReference},
		{"gateway route target port without provider", func(t *testing.T, w world) []Key {
			w[serviceKey].VirtualServiceSpec.Provider = nil
			groute(w).GatewayRouteSpec.HTTPRoute.Action.Target.Port = 8080
			return []Key{gRouteKey}
		}, "GatewayRoute demo/gateway/groute: spec.httpRoute.action.target.port: VirtualService demo/svc.demo.local has no provider with a listener on port 8080", ErrInvalidReference},
		{"provider with several listeners needs target ports", func(t *testing.T, w world) []Key {
			delete(w, routeKey)
			s := w[nodeKey].VirtualNodeSpec
			s.Listeners = append(s.Listeners, Listener{PortMapping: &PortMapping{Port: 9090, Protocol: "grpc"}})
			return []Key{routeKey, nodeKey}
		}, "GatewayRoute demo/gateway/groute: spec.httpRoute.action.target.port: is required because VirtualNode demo/node has more than one listener", ErrInvalidReference},
		{"first problem in key order", func(t *testing.T, w world) []Key {
			groute(w).GatewayRouteSpec.HTTPRoute.Action.Target.VirtualService.VirtualServiceName = "ghost.demo.local"
			w[serviceKey].VirtualServiceSpec.Provider.VirtualNode.VirtualNodeName = "ghost"
			route(w).RouteSpec.HTTPRoute.Action.WeightedTargets[0].VirtualNode = "ghost"
			return []Key{gRouteKey, serviceKey, routeKey}
		}, "Route demo/router/route: spec.httpRoute.action.weightedTargets[0].virtualNode: VirtualNode demo/ghost not found", ErrReferenceNotFound},
		{"other meshes are not checked", func(t *testing.T, w world) []Key {
			r := base(t, KindVirtualNode)
			r.Mesh = "broken" // exists nowhere, but the batch did not touch it
			w.put(r)
			return []Key{nodeKey}
		}, "", nil},

		// Deletes.
		{"delete mesh in use", func(t *testing.T, w world) []Key {
			delete(w, meshKey)
			return []Key{meshKey}
		}, "Mesh demo is in use by VirtualNode demo/node, VirtualRouter demo/router, Route demo/router/route, VirtualService demo/svc.demo.local, VirtualGateway demo/gateway and 1 more", ErrResourceInUse},
		{"delete node in use", func(t *testing.T, w world) []Key {
			delete(w, nodeKey)
			return []Key{nodeKey}
		}, "VirtualNode demo/node is in use by Route demo/router/route, VirtualService demo/svc.demo.local", ErrResourceInUse},
		{"delete router in use", func(t *testing.T, w world) []Key {
			delete(w, routerKey)
			return []Key{routerKey}
		}, "VirtualRouter demo/router is in use by Route demo/router/route", ErrResourceInUse},
		{"delete router that provides a service", func(t *testing.T, w world) []Key {
			w[serviceKey].VirtualServiceSpec.Provider = &VirtualServiceProvider{VirtualRouter: &VirtualRouterServiceProvider{VirtualRouterName: "router"}}
			delete(w, routerKey)
			delete(w, routeKey)
			return []Key{routeKey, routerKey}
		}, "VirtualRouter demo/router is in use by VirtualService demo/svc.demo.local", ErrResourceInUse},
		{"delete service in use", func(t *testing.T, w world) []Key {
			delete(w, serviceKey)
			return []Key{serviceKey}
		}, "VirtualService demo/svc.demo.local is in use by GatewayRoute demo/gateway/groute", ErrResourceInUse},
		{"delete gateway in use", func(t *testing.T, w world) []Key {
			delete(w, gatewayKey)
			return []Key{gatewayKey}
		}, "VirtualGateway demo/gateway is in use by GatewayRoute demo/gateway/groute", ErrResourceInUse},
		{"delete service named only as a backend", func(t *testing.T, w world) []Key {
			delete(w, gRouteKey)
			delete(w, serviceKey)
			w[nodeKey].VirtualNodeSpec.Backends = []Backend{{VirtualService: &VirtualServiceBackend{VirtualServiceName: "svc.demo.local"}}}
			return []Key{serviceKey, gRouteKey}
		}, "", nil},
		{"delete routes", func(t *testing.T, w world) []Key {
			delete(w, routeKey)
			delete(w, gRouteKey)
			return []Key{routeKey, gRouteKey}
		}, "", nil},
		{"delete a router with its routes", func(t *testing.T, w world) []Key {
			delete(w, routerKey)
			delete(w, routeKey)
			return []Key{routerKey, routeKey}
		}, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := baseWorld(t)
			changed := tc.change(t, w)
			err := CheckReferences(w, changed)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("CheckReferences:\n got: %s\nwant: %s", got, tc.want)
			}
			if tc.is == nil {
				return
			}
			for _, sentinel := range []error{ErrResourceInUse, ErrReferenceNotFound, ErrInvalidReference} {
				if errors.Is(err, sentinel) != (sentinel == tc.is) {
					t.Errorf("errors.Is(err, %v) = %v", sentinel, !(sentinel == tc.is))
				}
			}
			var inUse *InUseError
			var ref *ReferenceError
			if !errors.As(err, &inUse) && !errors.As(err, &ref) {
				t.Errorf("error is %T, want *InUseError or *ReferenceError", err)
			}
		})
	}
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	w := baseWorld(t)
	w[nodeKey].VirtualNodeSpec.Backends = []Backend{{VirtualService: &VirtualServiceBackend{VirtualServiceName: "svc.demo.local"}}}
	cases := []struct {
		key  Key
		want []Key
	}{
		{meshKey, []Key{nodeKey, routerKey, routeKey, serviceKey, gatewayKey, gRouteKey}},
		{nodeKey, []Key{routeKey, serviceKey}},
		{routerKey, []Key{routeKey}},
		{serviceKey, []Key{nodeKey, gRouteKey}}, // the backend is listed
		{gatewayKey, []Key{gRouteKey}},
		{routeKey, nil},
		{gRouteKey, nil},
		{Key{Kind: KindMesh, Name: "other"}, nil},
	}
	for _, tc := range cases {
		if got := Referrers(w, tc.key); !slices.Equal(got, tc.want) {
			t.Errorf("Referrers(%s) = %v, want %v", tc.key, got, tc.want)
		}
	}
}

func TestInUseErrorLists(t *testing.T) {
	t.Parallel()
	e := &InUseError{Key: nodeKey, By: []Key{routeKey}}
	if got, want := e.Error(), "VirtualNode demo/node is in use by Route demo/router/route"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
