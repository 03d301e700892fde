package v1alpha1

// Lookup finds resources in one consistent view of every mesh. The
// resources it returns are shared and must not be modified.
type Lookup interface {
	// Get returns the resource with key k, or nil.
	Get(k Key) *Resource
	// List returns the resources of kind in mesh (every mesh when mesh is
	// empty; ignored for KindMesh) under parent (every parent when parent
	// is empty), sorted by key.
	List(kind Kind, mesh, parent string) []*Resource
}
