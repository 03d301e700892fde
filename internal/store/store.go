// Package store keeps meshlens resources durably and hands out consistent,
// immutable snapshots of them. The Store interface is what the control
// plane uses; Open returns the embedded bbolt implementation and OpenEtcd
// one that keeps the resources in an etcd cluster shared by several
// control-plane replicas. A Kubernetes-backed implementation can satisfy
// the same interface later.
package store

import (
	"context"
	"errors"
	"sort"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// Errors callers branch on. They are wrapped with the resource's key.
var (
	// ErrNotFound: the resource does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the expected version differs from the stored one
	// (App Mesh's ConflictException).
	ErrConflict = errors.New("version conflict")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// Op says what Apply did with one resource.
type Op string

// The outcomes of applying one resource.
const (
	OpCreated   Op = "created"
	OpUpdated   Op = "updated"
	OpUnchanged Op = "unchanged"
	OpDeleted   Op = "deleted"
)

// Result is the outcome for one resource of a batch.
type Result struct {
	Op       Op                 `json:"op"`
	Resource *v1alpha1.Resource `json:"resource"`
}

// Check is called, inside the write, with the snapshot as it would be once
// the batch is committed and the keys the batch changes. An error aborts
// the whole batch: nothing is written. The control plane uses it for the
// rules that span resources (references, ResourceInUse).
type Check func(next *Snapshot, changed []v1alpha1.Key) error

// Store is a durable, versioned set of resources.
//
// Every write is atomic (a batch applies whole or not at all) and durable
// once it returns nil: it survives the process being killed. Writes are
// serialised; reads never block on them.
type Store interface {
	// Snapshot returns the current state as this process knows it, at
	// once. With a shared store (etcd) it may lag a write another
	// replica acknowledged a moment ago; use Current where that matters.
	Snapshot() *Snapshot

	// Current returns a state that holds every write acknowledged, by any
	// process, before the call: a linearizable read. The embedded store
	// answers at once; the etcd store asks the cluster's quorum for the
	// latest revision and waits until its watched state has caught up.
	Current(ctx context.Context) (*Snapshot, error)

	// Apply creates or updates every resource of the batch. A resource
	// whose Metadata.Version is set is only written if that is the stored
	// version (ErrConflict otherwise). The store fills in Metadata (arn,
	// uid, version, createdAt, lastUpdatedAt) and Status; a resource whose
	// spec and tags are unchanged keeps its version (OpUnchanged).
	Apply(ctx context.Context, batch []*v1alpha1.Resource, check Check) ([]Result, error)

	// Delete removes one resource. expectedVersion, when not zero, must be
	// the stored version. It returns the deleted resource.
	Delete(ctx context.Context, key v1alpha1.Key, expectedVersion int64, check Check) (*v1alpha1.Resource, error)

	// Watch returns a channel that receives the current snapshot at once
	// and then the newest snapshot after every committed change. A slow
	// reader misses intermediate snapshots, never the latest. The channel
	// closes when ctx ends or the store closes.
	Watch(ctx context.Context) <-chan *Snapshot

	// CASecret returns what PutCASecret stored under name, or nil.
	CASecret(name string) ([]byte, error)
	// PutCASecret stores the mesh CA's sealed secret v under name,
	// durably, unless one is stored there already (the first writer
	// wins; the CA reads the stored value back).
	PutCASecret(name string, v []byte) error

	// Close releases the store.
	Close() error
}

// Snapshot is one consistent, immutable view of every resource, at a
// revision that grows with every committed change. Its resources are
// shared: callers must not modify them.
type Snapshot struct {
	revision  uint64
	resources map[v1alpha1.Key]*v1alpha1.Resource
	sorted    []*v1alpha1.Resource // every resource, sorted by key
}

var _ v1alpha1.Lookup = (*Snapshot)(nil)

// NewSnapshot builds a snapshot of resources at revision. It takes
// ownership of the resources.
func NewSnapshot(revision uint64, resources []*v1alpha1.Resource) *Snapshot {
	s := &Snapshot{revision: revision, resources: make(map[v1alpha1.Key]*v1alpha1.Resource, len(resources))}
	for _, r := range resources {
		s.resources[r.Key()] = r
	}
	s.sorted = make([]*v1alpha1.Resource, 0, len(s.resources))
	for _, r := range s.resources {
		s.sorted = append(s.sorted, r)
	}
	sort.Slice(s.sorted, func(i, j int) bool { return KeyLess(s.sorted[i].Key(), s.sorted[j].Key()) })
	return s
}

// Revision is the snapshot's revision; 0 is the empty store.
func (s *Snapshot) Revision() uint64 { return s.revision }

// Len is the number of resources.
func (s *Snapshot) Len() int { return len(s.sorted) }

// Get returns the resource with key k, or nil.
func (s *Snapshot) Get(k v1alpha1.Key) *v1alpha1.Resource { return s.resources[k] }

// List returns the resources of kind in mesh under parent; an empty mesh or
// parent matches every one.
//
// Resources are sorted by kind, mesh, parent and name, so the resources of
// a kind (in a mesh, under a parent) are a range of them, found by binary
// search: translating a mesh lists the routes of every router, and a scan
// of every resource for each was a fifth of a route change's work.
func (s *Snapshot) List(kind v1alpha1.Kind, mesh, parent string) []*v1alpha1.Resource {
	ki := kindIndex(kind)
	// The range starts at the first key not less than from, and ends at
	// the first key of another kind (or, by mesh, of another mesh or
	// parent). Unknown kinds sort together whatever their kind, so their
	// range is every unknown kind's.
	from := v1alpha1.Key{Kind: kind}
	byMesh := ki < len(v1alpha1.Kinds) && kind != v1alpha1.KindMesh && mesh != ""
	if byMesh {
		from.Mesh, from.Parent = mesh, parent
	}
	i := sort.Search(len(s.sorted), func(i int) bool {
		k := s.sorted[i].Key()
		if ki == len(v1alpha1.Kinds) {
			return kindIndex(k.Kind) == ki
		}
		return !KeyLess(k, from)
	})
	var out []*v1alpha1.Resource
	for _, r := range s.sorted[i:] {
		k := r.Key()
		if kindIndex(r.Kind) != ki || byMesh && (k.Mesh != mesh || parent != "" && k.Parent != parent) {
			break
		}
		if r.Kind != kind || kind != v1alpha1.KindMesh && mesh != "" && k.Mesh != mesh || parent != "" && k.Parent != parent {
			continue
		}
		out = append(out, r)
	}
	return out
}

// All returns every resource, sorted by key.
func (s *Snapshot) All() []*v1alpha1.Resource { return s.sorted }

// With returns a new snapshot at revision rev with the given resources put
// (replacing those with the same key) and the given keys removed.
func (s *Snapshot) With(rev uint64, put []*v1alpha1.Resource, remove []v1alpha1.Key) *Snapshot {
	m := make(map[v1alpha1.Key]*v1alpha1.Resource, len(s.resources)+len(put))
	for k, r := range s.resources {
		m[k] = r
	}
	for _, k := range remove {
		delete(m, k)
	}
	for _, r := range put {
		m[r.Key()] = r
	}
	all := make([]*v1alpha1.Resource, 0, len(m))
	for _, r := range m {
		all = append(all, r)
	}
	return NewSnapshot(rev, all)
}

// KeyLess orders keys by kind (in v1alpha1.Kinds order), mesh, parent, name.
func KeyLess(a, b v1alpha1.Key) bool {
	if a.Kind != b.Kind {
		return kindIndex(a.Kind) < kindIndex(b.Kind)
	}
	if a.Mesh != b.Mesh {
		return a.Mesh < b.Mesh
	}
	if a.Parent != b.Parent {
		return a.Parent < b.Parent
	}
	return a.Name < b.Name
}

func kindIndex(k v1alpha1.Kind) int {
	for i, x := range v1alpha1.Kinds {
		if x == k {
			return i
		}
	}
	return len(v1alpha1.Kinds)
}
