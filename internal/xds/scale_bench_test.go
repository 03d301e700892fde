package xds

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlens/meshlens/internal/nodeid"
)

// scaleMesh writes the mesh meshbench's control-plane simulation loads:
// services virtual services, each with its own router, route and node,
// every node calling service 0 and the next backends-1 services.
func scaleMesh(t testing.TB, services, backends, weightA, weightB int) string {
	var b strings.Builder
	b.WriteString("kind: Mesh\nname: scale\nspec:\n  egressFilter: {type: DROP_ALL}\n")
	for i := range services {
		fmt.Fprintf(&b, "---\nkind: VirtualNode\nmesh: scale\nname: n-%d\nspec:\n  listeners: [{portMapping: {port: 8080, protocol: http}}]\n  serviceDiscovery: {awsCloudMap: {namespaceName: scale.local, serviceName: n-%d}}\n  backends:\n", i, i)
		seen := map[int]bool{}
		for _, s := range append([]int{0}, func() []int {
			out := make([]int, backends)
			for k := range out {
				out[k] = i + 1 + k
			}
			return out
		}()...) {
			s %= services
			if seen[s] {
				continue
			}
			seen[s] = true
			fmt.Fprintf(&b, "    - virtualService: {virtualServiceName: svc-%d.scale.local}\n", s)
		}
		fmt.Fprintf(&b, "---\nkind: VirtualRouter\nmesh: scale\nname: r-%d\nspec:\n  listeners: [{portMapping: {port: 8080, protocol: http}}]\n", i)
		wa, wb := 90, 10
		if i == 0 {
			wa, wb = weightA, weightB
		}
		fmt.Fprintf(&b, "---\nkind: Route\nmesh: scale\nvirtualRouter: r-%d\nname: rt-%d\nspec:\n  httpRoute:\n    match: {prefix: /}\n    action:\n      weightedTargets:\n        - {virtualNode: n-%d, weight: %d}\n        - {virtualNode: n-%d, weight: %d}\n",
			i, i, i, wa, (i+1)%services, wb)
		fmt.Fprintf(&b, "---\nkind: VirtualService\nmesh: scale\nname: svc-%d.scale.local\nspec:\n  provider: {virtualRouter: {virtualRouterName: r-%d}}\n", i, i)
	}
	path := filepath.Join(t.TempDir(), "scale.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// BenchmarkRouteChangeBuild builds, encodes and prepares for the
// state-of-the-world cache the Envoy views of 1000 sidecars of distinct
// virtual nodes from a fresh input, as a route change does.
func BenchmarkRouteChangeBuild(b *testing.B) {
	lookup := loadMesh(b, scaleMesh(b, 1000, 5, 90, 10))
	eps := staticEndpoints{}
	for i := range 1000 {
		for k := range 10 {
			eps[fmt.Sprintf("scale/n-%d", i)] = append(eps[fmt.Sprintf("scale/n-%d", i)], Endpoint{Address: fmt.Sprintf("127.1.%d.%d", i/25, k+1), Port: 8080, Healthy: true})
		}
	}
	c := newSotwCache(nodeHash{}, cacheLogger{}, nil)
	b.ReportAllocs()
	for b.Loop() {
		tr := newTranslator(lookup, eps)
		h := newHasher()
		for i := range 1000 {
			v := tr.view(nodeid.ID{Mesh: "scale", Kind: nodeid.VirtualNode, Name: fmt.Sprintf("n-%d", i)}, FlavourEnvoy)
			snap, _, err := v.snapshot(h)
			if err != nil {
				b.Fatal(err)
			}
			c.prepare(snap)
		}
	}
}

// BenchmarkEndpointChangeBuild rebuilds the load assignments of the
// Envoy views of 1000 sidecars of distinct virtual nodes and their
// snapshots, as an endpoint change does: listeners, routes and clusters
// are those of the views already served.
func BenchmarkEndpointChangeBuild(b *testing.B) {
	lookup := loadMesh(b, scaleMesh(b, 1000, 5, 90, 10))
	eps := staticEndpoints{}
	for i := range 1000 {
		for k := range 10 {
			eps[fmt.Sprintf("scale/n-%d", i)] = append(eps[fmt.Sprintf("scale/n-%d", i)], Endpoint{Address: fmt.Sprintf("127.1.%d.%d", i/25, k+1), Port: 8080, Healthy: true})
		}
	}
	tr := newTranslator(lookup, eps)
	h := newHasher()
	views := make([]*View, 1000)
	for i := range views {
		views[i] = tr.view(nodeid.ID{Mesh: "scale", Kind: nodeid.VirtualNode, Name: fmt.Sprintf("n-%d", i)}, FlavourEnvoy)
		if _, _, err := views[i].snapshot(h); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for k := 0; b.Loop(); k++ {
		next := staticEndpoints{}
		for n, e := range eps {
			next[n] = e
		}
		next["scale/n-0"] = append(eps["scale/n-0"][:10:10], Endpoint{Address: fmt.Sprintf("127.2.0.%d", k%250+1), Port: 8080, Healthy: true})
		d := tr.derive(next)
		for _, v := range views {
			if _, _, err := d.withEndpoints(v).snapshot(h); err != nil {
				b.Fatal(err)
			}
		}
	}
}
