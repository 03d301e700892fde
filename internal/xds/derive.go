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
// (loadAssignment); they and the endpoints asked for start empty, but a
// load assignment t (or a translator t derives from) built from the same
// endpoints as the new ones is handed out again, the same object: an
// endpoint change encodes only the load assignments it changed.
func (t *translator) derive(eps Endpoints) *translator {
	n := newTranslator(t.lookup, eps)
	t.mu.Lock()
	defer t.mu.Unlock()
	n.routeSets = maps.Clone(t.routeSets)
	n.vhosts = maps.Clone(t.vhosts)
	n.refused = maps.Clone(t.refused)
	n.apiRoutes = maps.Clone(t.apiRoutes)
	n.clusters = maps.Clone(t.clusters)
	n.prevClas = make(map[string]claSource, len(t.prevClas)+len(t.claFrom))
	maps.Copy(n.prevClas, t.prevClas)
	maps.Copy(n.prevClas, t.claFrom)
	return n
}
