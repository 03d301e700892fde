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
	return warnings(l, mesh, nil, false)
}

// notesOf returns the notes of a view of (id, flavour) already built from
// the lookup being warned about, if there is one.
type notesOf func(id nodeid.ID, fl Flavour) ([]Note, bool)

// warnings is Warnings, taking the notes of the views known has built
// instead of translating them again. meshCA: the server runs the mesh CA,
// under which ACM certificates and trust are served.
func warnings(l v1alpha1.Lookup, mesh string, known notesOf, meshCA bool) map[v1alpha1.Key][]string {
	t := newTranslator(l, nil)
	t.meshCA = meshCA
	out := map[v1alpha1.Key][]string{}
	add := func(id nodeid.ID, fl Flavour) {
		notes, ok := []Note(nil), false
		if known != nil {
			notes, ok = known(id, fl)
		}
		if !ok {
			notes = t.view(id, fl).Notes
		}
		for _, n := range notes {
			if !slices.Contains(out[n.Resource], n.Warning()) {
				out[n.Resource] = append(out[n.Resource], n.Warning())
			}
		}
	}
	for _, vn := range l.List(v1alpha1.KindVirtualNode, mesh, "") {
		id := nodeid.ID{Mesh: vn.Mesh, Kind: nodeid.VirtualNode, Name: vn.Name}
		add(id, FlavourEnvoy)
		add(id, FlavourProxyless)
	}
	for _, gw := range l.List(v1alpha1.KindVirtualGateway, mesh, "") {
		add(nodeid.ID{Mesh: gw.Mesh, Kind: nodeid.VirtualGateway, Name: gw.Name}, FlavourEnvoy)
	}
	for _, ws := range out {
		slices.Sort(ws)
	}
	return out
}

// Warnings is the package's Warnings for the server's inputs: the notes
// of the views the server built from l (the connected data planes') are
// taken as they are, and only the other views are translated. Notes do not
// depend on endpoints, so a view built from an earlier input with the
// same resources counts.
func (s *Server) Warnings(l v1alpha1.Lookup, mesh string) map[v1alpha1.Key][]string {
	known := map[string][]Note{}
	s.mu.Lock()
	for _, n := range s.nodes {
		if n.desired != nil && n.desiredFrom != nil && sameLookup(n.desiredFrom, l) {
			known[n.key] = n.desired.Notes
		}
	}
	s.mu.Unlock()
	return warnings(l, mesh, func(id nodeid.ID, fl Flavour) ([]Note, bool) {
		notes, ok := known[nodeKey(id, fl)]
		return notes, ok
	}, s.opts.Secrets != nil)
}
