package v1alpha1

import (
	"os"
	"testing"
	"bytes"
)

func TestScratchSmoke(t *testing.T) {
	data, _ := os.ReadFile("testdata/complete.yaml")
	rs, err := Decode(data)
	if err != nil { t.Fatal(err) }
	for _, r := range rs {
		if err := r.Validate(); err != nil { t.Errorf("%s: %v", r.Key(), err) }
	}
	var keys []Key
	for _, r := range rs { keys = append(keys, r.Key()) }
	if err := CheckReferences(mapLookupScratch(rs), keys); err != nil { t.Error(err) }
	var b bytes.Buffer
	Encode(&b, rs[:4], "yaml")
	t.Log(b.String())
}

type scratchLookup map[Key]*Resource
func mapLookupScratch(rs []*Resource) scratchLookup { m := scratchLookup{}; for _, r := range rs { m[r.Key()] = r }; return m }
func (m scratchLookup) Get(k Key) *Resource { return m[k] }
func (m scratchLookup) List(kind Kind, mesh, parent string) []*Resource {
	var out []*Resource
	for _, r := range m { if r.Kind == kind && (mesh == "" || r.Mesh == mesh) && (parent == "" || r.Key().Parent == parent) { out = append(out, r) } }
	return out
}
