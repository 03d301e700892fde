package xds

import (
	"fmt"
	"testing"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// BenchmarkWarnings computes the warnings of a mesh of 2000 sidecars, as
// the API does once per write.
func BenchmarkWarnings(b *testing.B) {
	lookup := loadMesh(b, "testdata/mesh.yaml")
	greeter := lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "greeter"})
	var extra []*v1alpha1.Resource
	for i := range 2000 {
		r := greeter.DeepCopy()
		r.Name = fmt.Sprintf("load-%d", i)
		extra = append(extra, r)
	}
	lookup = lookup.With(lookup.Revision()+1, extra, nil)
	b.ReportAllocs()
	for b.Loop() {
		Warnings(lookup, "demo")
	}
}
