package xds

import (
	"maps"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

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
	n := t.follow(t.lookup, eps)
	t.mu.Lock()
	defer t.mu.Unlock()
	n.routeSets = maps.Clone(t.routeSets)
	n.vhosts = maps.Clone(t.vhosts)
	n.refused = maps.Clone(t.refused)
	n.apiRoutes = maps.Clone(t.apiRoutes)
	n.apiListeners = maps.Clone(t.apiListeners)
	n.clusters = maps.Clone(t.clusters)
	// The clusters above are handed out without being built again: they
	// stay in use.
	for k, c := range t.clusterFrom {
		c.gen = n.gen
		n.clusterFrom[k] = c
	}
	return n
}

// follow returns a translator for a new input (lookup and endpoints) that
// hands out t's outbound clusters and load assignments again where they
// are built from the same arguments: a change of resources, which builds
// every view of its mesh again, encodes only the clusters and load
// assignments it changed. What no translator handed out for
// keepGenerations inputs is let go.
func (t *translator) follow(l v1alpha1.Lookup, eps Endpoints) *translator {
	n := newTranslator(l, eps)
	n.gen = t.gen + 1
	t.mu.Lock()
	defer t.mu.Unlock()
	n.prevClas = carry(n.gen, func(e claSource) uint64 { return e.gen }, t.prevClas, t.claFrom)
	n.prevClusters = carry(n.gen, func(e builtCluster) uint64 { return e.gen }, t.prevClusters, t.clusterFrom)
	return n
}

// carry merges older and newer (newer wins), keeping the entries handed
// out within keepGenerations of gen.
func carry[V any](gen uint64, genOf func(V) uint64, older, newer map[string]V) map[string]V {
	out := make(map[string]V, len(older)+len(newer))
	for _, m := range []map[string]V{older, newer} {
		for k, v := range m {
			if genOf(v)+keepGenerations >= gen {
				out[k] = v
			}
		}
	}
	return out
}
