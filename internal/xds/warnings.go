package xds

import (
	"slices"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// Warnings translates every virtual node (for Envoy and for proxyless
// gRPC clients) and every virtual gateway of a mesh, or of every mesh when
// mesh is empty, and returns the notes of each resource as warnings (field
// path and message), sorted. It needs no connected data plane and no
// endpoints: notes depend on the resources alone. The API returns them
// when a resource is applied, read or described.
func Warnings(l v1alpha1.Lookup, mesh string) map[v1alpha1.Key][]string {
	return WarningsWithMeshCA(l, mesh, false)
}

// WarningsWithMeshCA is Warnings for a control plane that runs the mesh
// CA (meshCA), under which ACM certificates and trust are served.
func WarningsWithMeshCA(l v1alpha1.Lookup, mesh string, meshCA bool) map[v1alpha1.Key][]string {
	t := newTranslator(l, nil)
	t.meshCA = meshCA
	out := map[v1alpha1.Key][]string{}
	add := func(v *View) {
		for _, n := range v.Notes {
			if !slices.Contains(out[n.Resource], n.Warning()) {
				out[n.Resource] = append(out[n.Resource], n.Warning())
			}
		}
	}
	for _, vn := range l.List(v1alpha1.KindVirtualNode, mesh, "") {
		id := nodeid.ID{Mesh: vn.Mesh, Kind: nodeid.VirtualNode, Name: vn.Name}
		add(t.view(id, FlavourEnvoy))
		add(t.view(id, FlavourProxyless))
	}
	for _, gw := range l.List(v1alpha1.KindVirtualGateway, mesh, "") {
		add(t.view(nodeid.ID{Mesh: gw.Mesh, Kind: nodeid.VirtualGateway, Name: gw.Name}, FlavourEnvoy))
	}
	for _, ws := range out {
		slices.Sort(ws)
	}
	return out
}
