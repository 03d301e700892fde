package xds

import "maps"

// derive returns a translator for the same lookup as t and new endpoints.
// It starts with every object t built that does not depend on endpoints
// (compiled routes, virtual hosts, clusters), so that an input that only
// moved endpoints rebuilds views out of the same objects, whose encodings
// the server's hasher already holds: only the load assignments are built
// and marshalled again.
//
// Load assignments are the only objects built from endpoints
// (loadAssignment); they and the endpoints asked for start empty.
func (t *translator) derive(eps Endpoints) *translator {
	n := newTranslator(t.lookup, eps)
	t.mu.Lock()
	defer t.mu.Unlock()
	n.routeSets = maps.Clone(t.routeSets)
	n.vhosts = maps.Clone(t.vhosts)
	n.refused = maps.Clone(t.refused)
	n.apiRoutes = maps.Clone(t.apiRoutes)
	n.clusters = maps.Clone(t.clusters)
	return n
}
