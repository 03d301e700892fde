package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// listScan is List as a scan of every resource: what List must return.
func listScan(s *Snapshot, kind v1alpha1.Kind, mesh, parent string) []*v1alpha1.Resource {
	var out []*v1alpha1.Resource
	for _, r := range s.sorted {
		if r.Kind != kind {
			continue
		}
		k := r.Key()
		if kind != v1alpha1.KindMesh && mesh != "" && k.Mesh != mesh {
			continue
		}
		if parent != "" && k.Parent != parent {
			continue
		}
		out = append(out, r)
	}
	return out
}

// TestListIsScan: on random snapshots of every kind (and two unknown
// ones), List, which binary-searches the sorted resources, returns
// exactly what a scan of every resource does, for every kind, mesh and
// parent, set or not.
func TestListIsScan(t *testing.T) {
	t.Parallel()
	kinds := append(slices.Clone(v1alpha1.Kinds), "Unknown", "Other")
	meshes := []string{"", "a", "b", "c"}
	parents := []string{"", "r1", "r2", "r3"}
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 3))
		var rs []*v1alpha1.Resource
		for i := range r.IntN(60) {
			res := &v1alpha1.Resource{Kind: kinds[r.IntN(len(kinds))], Mesh: meshes[1+r.IntN(3)], Name: fmt.Sprintf("n%d", i%7)}
			switch res.Kind {
			case v1alpha1.KindRoute:
				res.VirtualRouter = parents[1+r.IntN(3)]
			case v1alpha1.KindGatewayRoute:
				res.VirtualGateway = parents[1+r.IntN(3)]
			}
			rs = append(rs, res)
		}
		s := NewSnapshot(1, rs)
		for _, k := range kinds {
			for _, m := range meshes {
				for _, p := range parents {
					if got, want := s.List(k, m, p), listScan(s, k, m, p); !slices.Equal(got, want) {
						t.Fatalf("seed %d: List(%s, %q, %q) = %d resources, want %d", seed, k, m, p, len(got), len(want))
					}
				}
			}
		}
	}
}
