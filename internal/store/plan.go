package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// applyPlan is what a batch would write on top of one snapshot: both
// backends compute it the same way, so they fill metadata, detect
// conflicts and word their errors alike.
type applyPlan struct {
	results []Result
	puts    []*v1alpha1.Resource // the stored form of every changed resource
	changed []v1alpha1.Key       // their keys, in batch order
	records [][]byte             // their encoded records
}

// planApply works out the outcome of every resource of batch against cur
// at time now: the version checks, the metadata, and the records to
// write. It writes nothing.
func planApply(cur *Snapshot, batch []*v1alpha1.Resource, now time.Time) (*applyPlan, error) {
	now = now.UTC().Truncate(time.Millisecond)
	p := &applyPlan{results: make([]Result, len(batch))}
	seen := make(map[v1alpha1.Key]int, len(batch))
	for i, in := range batch {
		if in == nil {
			return nil, fmt.Errorf("apply: batch item %d is nil", i)
		}
		k := in.Key()
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("apply: batch item %d: %w", i, err)
		}
		if j, dup := seen[k]; dup {
			return nil, fmt.Errorf("apply: %s appears twice in the batch (items %d and %d)", k, j, i)
		}
		seen[k] = i

		old := cur.Get(k)
		if want := expectedVersion(in); want > 0 {
			switch {
			case old == nil:
				return nil, fmt.Errorf("apply %s: expected version %d, but it does not exist: %w", k, want, ErrConflict)
			case old.Metadata.Version != want:
				return nil, fmt.Errorf("apply %s: expected version %d, stored version is %d: %w", k, want, old.Metadata.Version, ErrConflict)
			}
		}

		// Copy first: the copy is what is stored, and its spec is in
		// normal form (a nil spec becomes an empty one), so comparing it
		// is stable.
		r := in.DeepCopy()
		if old != nil && v1alpha1.SpecEqual(old, r) && tagsEqual(old.Tags, r.Tags) {
			p.results[i] = Result{Op: OpUnchanged, Resource: old.DeepCopy()}
			continue
		}
		op := OpCreated
		meta := &v1alpha1.Metadata{Arn: ARN(k), UID: uuid.NewString(), Version: 1, CreatedAt: now, LastUpdatedAt: now}
		if old != nil {
			op = OpUpdated
			meta.UID = old.Metadata.UID
			meta.Version = old.Metadata.Version + 1
			meta.CreatedAt = old.Metadata.CreatedAt
		}
		r.Metadata = meta
		r.Status = &v1alpha1.Status{Status: "ACTIVE"}
		rec, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("apply %s: encode: %w", k, err)
		}
		result, err := decodeRecord(EncodeKey(k), rec)
		if err != nil {
			return nil, fmt.Errorf("apply %s: %w", k, err)
		}
		p.results[i] = Result{Op: op, Resource: result}
		p.puts = append(p.puts, r)
		p.changed = append(p.changed, k)
		p.records = append(p.records, rec)
	}
	return p, nil
}

// planDelete returns the resource a delete of key would remove from cur,
// or the not-found or conflict error.
func planDelete(cur *Snapshot, key v1alpha1.Key, expectedVersion int64) (*v1alpha1.Resource, error) {
	old := cur.Get(key)
	if old == nil {
		return nil, fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	if expectedVersion != 0 && expectedVersion != old.Metadata.Version {
		return nil, fmt.Errorf("delete %s: expected version %d, stored version is %d: %w", key, expectedVersion, old.Metadata.Version, ErrConflict)
	}
	return old, nil
}

// deletedCopy is the caller's copy of a deleted resource, with status
// DELETED as App Mesh reports a deleted resource.
func deletedCopy(old *v1alpha1.Resource) *v1alpha1.Resource {
	gone := old.DeepCopy()
	gone.Status = &v1alpha1.Status{Status: "DELETED"}
	return gone
}

// expectedVersion is the version a caller says it last read, or 0.
func expectedVersion(r *v1alpha1.Resource) int64 {
	if r.Metadata == nil {
		return 0
	}
	return r.Metadata.Version
}

// tagsEqual compares tag lists as sets: App Mesh tags are keyed, so their
// order carries no meaning and reordering them is no change.
func tagsEqual(a, b []v1alpha1.Tag) bool {
	if len(a) != len(b) {
		return false
	}
	less := func(x, y v1alpha1.Tag) int {
		if c := strings.Compare(x.Key, y.Key); c != 0 {
			return c
		}
		return strings.Compare(x.Value, y.Value)
	}
	a = slices.SortedFunc(slices.Values(a), less)
	b = slices.SortedFunc(slices.Values(b), less)
	return slices.Equal(a, b)
}
