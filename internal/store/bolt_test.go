package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

func TestApplyLifecycle(t *testing.T) {
	t.Parallel()
	clock := newClock()
	s, _ := openTemp(t, clock)
	ctx := context.Background()
	t0 := clock.Now().UTC()

	// Create.
	res, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("shop"), vnode("shop", "front.v2_a", 8080)}, nil)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(res) != 2 || res[0].Op != OpCreated || res[1].Op != OpCreated {
		t.Fatalf("create results = %+v", res)
	}
	vn := res[1].Resource
	m := vn.Metadata
	if m.Version != 1 || m.UID == "" || !m.CreatedAt.Equal(t0) || !m.LastUpdatedAt.Equal(t0) {
		t.Fatalf("created metadata = %+v", m)
	}
	if want := "arn:aws:appmesh:meshlens:000000000000:mesh/shop/virtualNode/front.v2_a"; m.Arn != want {
		t.Fatalf("arn = %q, want %q", m.Arn, want)
	}
	if vn.Status == nil || vn.Status.Status != "ACTIVE" {
		t.Fatalf("status = %+v", vn.Status)
	}
	if res[0].Resource.Metadata.UID == m.UID {
		t.Fatal("two resources share a uid")
	}
	if got := s.Snapshot().Revision(); got != 1 {
		t.Fatalf("revision after create = %d, want 1", got)
	}
	uid := m.UID

	// Unchanged: same spec, a later clock, and an explicit matching
	// version — nothing is written.
	clock.Advance(time.Second)
	before := s.Snapshot()
	res, err = s.Apply(ctx, []*v1alpha1.Resource{withVersion(vnode("shop", "front.v2_a", 8080), 1)}, nil)
	if err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	if res[0].Op != OpUnchanged || res[0].Resource.Metadata.Version != 1 || !res[0].Resource.Metadata.LastUpdatedAt.Equal(t0) {
		t.Fatalf("unchanged result = %s %+v", res[0].Op, res[0].Resource.Metadata)
	}
	if s.Snapshot() != before {
		t.Fatal("an unchanged batch swapped the snapshot")
	}

	// Update.
	t1 := clock.Now().UTC()
	res, err = s.Apply(ctx, []*v1alpha1.Resource{vnode("shop", "front.v2_a", 9090)}, nil)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	m = res[0].Resource.Metadata
	if res[0].Op != OpUpdated || m.Version != 2 || m.UID != uid || !m.CreatedAt.Equal(t0) || !m.LastUpdatedAt.Equal(t1) {
		t.Fatalf("update = %s %+v", res[0].Op, m)
	}
	if got := s.Snapshot().Revision(); got != 2 {
		t.Fatalf("revision after update = %d, want 2", got)
	}

	// Tags are part of the identity of a change; their order is not.
	tagged := vnode("shop", "front.v2_a", 9090)
	tagged.Tags = []v1alpha1.Tag{{Key: "team", Value: "a"}, {Key: "tier", Value: "web"}}
	res, err = s.Apply(ctx, []*v1alpha1.Resource{tagged}, nil)
	if err != nil || res[0].Op != OpUpdated || res[0].Resource.Metadata.Version != 3 {
		t.Fatalf("tag update = %v, %+v", err, res)
	}
	reordered := vnode("shop", "front.v2_a", 9090)
	reordered.Tags = []v1alpha1.Tag{{Key: "tier", Value: "web"}, {Key: "team", Value: "a"}}
	res, err = s.Apply(ctx, []*v1alpha1.Resource{reordered}, nil)
	if err != nil || res[0].Op != OpUnchanged {
		t.Fatalf("reordered tags = %v, %+v", err, res)
	}

	// Neither the input nor the results alias the stored resources.
	tagged.VirtualNodeSpec.Listeners[0].PortMapping.Port = 1
	res[0].Resource.VirtualNodeSpec.Listeners[0].PortMapping.Port = 2
	res[0].Resource.Metadata.Version = 99
	stored := s.Snapshot().Get(vnKey("shop", "front.v2_a"))
	if p := stored.VirtualNodeSpec.Listeners[0].PortMapping.Port; p != 9090 || stored.Metadata.Version != 3 {
		t.Fatalf("stored resource was mutated through a caller's pointer: port %d version %d", p, stored.Metadata.Version)
	}
}

func TestApplyUnchangedNormalisesNilSpec(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t, nil)
	ctx := context.Background()
	bare := func() *v1alpha1.Resource { return &v1alpha1.Resource{Kind: v1alpha1.KindMesh, Name: "m"} }
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{bare()}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(ctx, []*v1alpha1.Resource{bare()}, nil)
	if err != nil || res[0].Op != OpUnchanged {
		t.Fatalf("re-applying a spec-less mesh = %v, %+v; want unchanged", err, res)
	}
}

func TestARN(t *testing.T) {
	t.Parallel()
	const p = "arn:aws:appmesh:meshlens:000000000000:"
	tests := []struct {
		key  v1alpha1.Key
		want string
	}{
		{v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: "m"}, p + "mesh/m"},
		{v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: "m", Name: "n"}, p + "mesh/m/virtualNode/n"},
		{v1alpha1.Key{Kind: v1alpha1.KindVirtualService, Mesh: "m", Name: "a.b.local"}, p + "mesh/m/virtualService/a.b.local"},
		{v1alpha1.Key{Kind: v1alpha1.KindVirtualRouter, Mesh: "m", Name: "r"}, p + "mesh/m/virtualRouter/r"},
		{v1alpha1.Key{Kind: v1alpha1.KindVirtualGateway, Mesh: "m", Name: "g"}, p + "mesh/m/virtualGateway/g"},
		{v1alpha1.Key{Kind: v1alpha1.KindRoute, Mesh: "m", Parent: "r", Name: "x"}, p + "mesh/m/virtualRouter/r/route/x"},
		{v1alpha1.Key{Kind: v1alpha1.KindGatewayRoute, Mesh: "m", Parent: "g", Name: "y"}, p + "mesh/m/virtualGateway/g/gatewayRoute/y"},
	}
	for _, tt := range tests {
		if got := ARN(tt.key); got != tt.want {
			t.Errorf("ARN(%v) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestApplyEveryKindFillsARN(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t, nil)
	batch := []*v1alpha1.Resource{
		{Kind: v1alpha1.KindMesh, Name: "m"},
		{Kind: v1alpha1.KindVirtualRouter, Mesh: "m", Name: "r"},
		{Kind: v1alpha1.KindRoute, Mesh: "m", VirtualRouter: "r", Name: "x"},
		{Kind: v1alpha1.KindVirtualGateway, Mesh: "m", Name: "g"},
		{Kind: v1alpha1.KindGatewayRoute, Mesh: "m", VirtualGateway: "g", Name: "y"},
		{Kind: v1alpha1.KindVirtualService, Mesh: "m", Name: "svc"},
	}
	res, err := s.Apply(context.Background(), batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if want := ARN(batch[i].Key()); r.Resource.Metadata.Arn != want {
			t.Errorf("%s: arn %q, want %q", batch[i].Key(), r.Resource.Metadata.Arn, want)
		}
		if r.Resource.Key() != batch[i].Key() {
			t.Errorf("result %d is %s, want %s (batch order)", i, r.Resource.Key(), batch[i].Key())
		}
	}
}

func TestApplyConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name     string
		resource *v1alpha1.Resource
		wantOp   Op
		wantErr  []string // substrings of a conflict error; nil: success
	}{
		{"matching version updates", withVersion(vnode("m", "a", 81), 2), OpUpdated, nil},
		{"stale version", withVersion(vnode("m", "a", 81), 1), "", []string{"VirtualNode m/a", "expected version 1", "stored version is 2"}},
		{"future version", withVersion(vnode("m", "a", 81), 3), "", []string{"expected version 3", "stored version is 2"}},
		{"version on a missing resource", withVersion(vnode("m", "new", 81), 1), "", []string{"VirtualNode m/new", "does not exist"}},
		{"no version is last-writer-wins", vnode("m", "a", 81), OpUpdated, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := openTemp(t, nil)
			for _, port := range []int{80, 8080} { // version 2
				if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m"), vnode("m", "a", port)}, nil); err != nil {
					t.Fatal(err)
				}
			}
			before := s.Snapshot()
			res, err := s.Apply(ctx, []*v1alpha1.Resource{tt.resource}, nil)
			if tt.wantErr == nil {
				if err != nil || res[0].Op != tt.wantOp {
					t.Fatalf("Apply = %v, %+v; want %s", err, res, tt.wantOp)
				}
				return
			}
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("Apply error = %v, want ErrConflict", err)
			}
			for _, sub := range tt.wantErr {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not mention %q", err, sub)
				}
			}
			if s.Snapshot() != before {
				t.Error("a conflicting batch changed the store")
			}
		})
	}
}

func TestApplyRejectsBadBatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		batch []*v1alpha1.Resource
		want  string
	}{
		{"duplicate key", []*v1alpha1.Resource{mesh("m"), vnode("m", "a", 1), vnode("m", "a", 2)}, "appears twice"},
		{"nil item", []*v1alpha1.Resource{mesh("m"), nil}, "item 1 is nil"},
		{"unknown kind", []*v1alpha1.Resource{{Kind: "Nope", Name: "x"}}, "unknown kind"},
		{"no name", []*v1alpha1.Resource{{Kind: v1alpha1.KindMesh}}, "name is empty"},
		{"no mesh", []*v1alpha1.Resource{{Kind: v1alpha1.KindVirtualNode, Name: "n"}}, "mesh is empty"},
		{"route without router", []*v1alpha1.Resource{{Kind: v1alpha1.KindRoute, Mesh: "m", Name: "r"}}, "virtualRouter is empty"},
		{"gateway route without gateway", []*v1alpha1.Resource{{Kind: v1alpha1.KindGatewayRoute, Mesh: "m", Name: "r"}}, "virtualGateway is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := openTemp(t, nil)
			_, err := s.Apply(context.Background(), tt.batch, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply error = %v, want one containing %q", err, tt.want)
			}
			if s.Snapshot().Revision() != 0 || s.Snapshot().Len() != 0 {
				t.Fatal("a rejected batch wrote something")
			}
		})
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	errCheck := errors.New("in use")
	tests := []struct {
		name    string
		key     v1alpha1.Key
		version int64
		check   Check
		wantIs  error
	}{
		{"deletes", vnKey("m", "a"), 0, nil, nil},
		{"deletes at the expected version", vnKey("m", "a"), 2, nil, nil},
		{"not found", vnKey("m", "zz"), 0, nil, ErrNotFound},
		{"stale version", vnKey("m", "a"), 1, nil, ErrConflict},
		{"check refuses", vnKey("m", "a"), 0, func(*Snapshot, []v1alpha1.Key) error { return errCheck }, errCheck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := openTemp(t, nil)
			for _, port := range []int{80, 8080} {
				if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m"), vnode("m", "a", port)}, nil); err != nil {
					t.Fatal(err)
				}
			}
			before := s.Snapshot()
			gone, err := s.Delete(ctx, tt.key, tt.version, tt.check)
			if tt.wantIs != nil {
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("Delete error = %v, want %v", err, tt.wantIs)
				}
				if !strings.Contains(err.Error(), tt.key.Name) && tt.wantIs != errCheck {
					t.Errorf("error %q does not name the key", err)
				}
				if s.Snapshot() != before {
					t.Fatal("a failed delete changed the store")
				}
				return
			}
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if gone.Key() != tt.key || gone.Metadata.Version != 2 || gone.Status.Status != "DELETED" {
				t.Fatalf("deleted = %s %+v %+v", gone.Key(), gone.Metadata, gone.Status)
			}
			after := s.Snapshot()
			if after.Get(tt.key) != nil || after.Revision() != before.Revision()+1 {
				t.Fatalf("after delete: present=%v revision %d", after.Get(tt.key) != nil, after.Revision())
			}
			if before.Get(tt.key).Status.Status != "ACTIVE" {
				t.Fatal("the returned copy aliased the stored resource")
			}
		})
	}
}

// checkError is a typed error, to see that errors.As survives.
type checkError struct{ key v1alpha1.Key }

func (e *checkError) Error() string { return "refused " + e.key.String() }

func TestFailingCheckLeavesStoreAndFileUnchanged(t *testing.T) {
	t.Parallel()
	s, path := openTemp(t, nil)
	ctx := context.Background()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m"), vnode("m", "a", 80)}, nil); err != nil {
		t.Fatal(err)
	}
	before := s.Snapshot()
	wantDump := dump(t, before)
	fileBefore, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	var sawNext *Snapshot
	var sawChanged []v1alpha1.Key
	refuse := func(next *Snapshot, changed []v1alpha1.Key) error {
		sawNext, sawChanged = next, changed
		return &checkError{key: changed[len(changed)-1]}
	}
	_, err = s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", 80), vnode("m", "a2", 81), vnode("m", "b", 82)}, refuse)
	var ce *checkError
	if !errors.As(err, &ce) || ce.key != vnKey("m", "b") {
		t.Fatalf("Apply error = %v, want the check's *checkError", err)
	}
	// The check saw the state as it would have been.
	if sawNext.Revision() != 2 || sawNext.Get(vnKey("m", "b")) == nil || sawNext.Get(vnKey("m", "a")) == nil {
		t.Fatalf("check's next snapshot: revision %d, %d resources", sawNext.Revision(), sawNext.Len())
	}
	if len(sawChanged) != 2 || sawChanged[0] != vnKey("m", "a2") || sawChanged[1] != vnKey("m", "b") {
		t.Fatalf("check's changed keys = %v (unchanged ones must be left out)", sawChanged)
	}

	if _, err := s.Delete(ctx, vnKey("m", "a"), 0, refuse); !errors.As(err, &ce) {
		t.Fatalf("Delete error = %v, want the check's *checkError", err)
	}
	if s.Snapshot() != before {
		t.Fatal("a refused write swapped the snapshot")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fileAfter, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileBefore, fileAfter) {
		t.Error("a refused write changed the data file")
	}
	s2 := openAt(t, path, nil)
	defer s2.Close()
	if got := dump(t, s2.Snapshot()); got != wantDump {
		t.Errorf("reopened state differs:\n got %s\nwant %s", got, wantDump)
	}
}

func TestRevisionSurvivesReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meshlens.db")
	ctx := context.Background()
	var last uint64
	for round := range 3 {
		s := openAt(t, path, nil)
		if got := s.Snapshot().Revision(); got != last {
			t.Fatalf("round %d: revision after reopen = %d, want %d", round, got, last)
		}
		if round > 0 {
			// Deleting and re-creating must still move forward.
			if _, err := s.Delete(ctx, vnKey("m", "a"), 0, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m"), vnode("m", "a", 80+round)}, nil); err != nil {
			t.Fatal(err)
		}
		if got := s.Snapshot().Revision(); got <= last {
			t.Fatalf("round %d: revision %d did not grow past %d", round, got, last)
		}
		last = s.Snapshot().Revision()
		want := dump(t, s.Snapshot())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openAt(t, path, nil)
		if got := dump(t, s.Snapshot()); got != want {
			t.Fatalf("round %d: reopened state differs:\n got %s\nwant %s", round, got, want)
		}
		_ = s.Close()
	}
}

func TestCancelledContextWritesNothing(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply error = %v, want context.Canceled", err)
	}
	if _, err := s.Delete(ctx, v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: "m"}, 0, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Delete error = %v, want context.Canceled", err)
	}
	// Cancelled while the check runs: still nothing written.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancelling := func(*Snapshot, []v1alpha1.Key) error { cancel2(); return nil }
	if _, err := s.Apply(ctx2, []*v1alpha1.Resource{mesh("m")}, cancelling); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply error = %v, want context.Canceled", err)
	}
	if s.Snapshot().Len() != 0 || s.Snapshot().Revision() != 0 {
		t.Fatal("a cancelled write was applied")
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t, nil)
	ctx := context.Background()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("n")}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Delete(ctx, v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: "m"}, 0, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Delete after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Backup(&bytes.Buffer{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Backup after Close = %v, want ErrClosed", err)
	}
	if s.Snapshot().Len() != 1 {
		t.Error("Snapshot after Close lost the last state")
	}
	if _, ok := <-s.Watch(ctx); ok {
		t.Error("Watch after Close delivered a snapshot")
	}
}

func TestOpenInUse(t *testing.T) {
	t.Parallel()
	_, path := openTemp(t, nil)
	start := time.Now()
	s2, err := Open(path, Options{LockTimeout: 100 * time.Millisecond, Logger: quietLog})
	if err == nil {
		_ = s2.Close()
		t.Fatal("a second Open of a held file succeeded")
	}
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("error = %v, want ErrInUse", err)
	}
	if want := fmt.Sprintf("data file %s is in use by another process", path); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second Open took %s", d)
	}
}

func TestOpenRejectsDamage(t *testing.T) {
	t.Parallel()
	good, err := mesh("m").MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	// A valid record with metadata, for the key-mismatch case.
	var withMeta []byte
	{
		s, _ := openTemp(t, nil)
		res, err := s.Apply(context.Background(), []*v1alpha1.Resource{mesh("m")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		withMeta, _ = res[0].Resource.MarshalJSON()
	}
	tests := []struct {
		name   string
		bucket []byte
		key    string
		value  []byte
		want   []string
	}{
		{"undecodable record", bucketResources, "VirtualNode/m//broken.v1", []byte(`{"kind":"VirtualNode","mesh":"m","name":"broken.v1","spec":{"listenerz":[]}}`),
			[]string{"VirtualNode m/broken.v1", "listenerz"}},
		{"not JSON", bucketResources, "Mesh///m", []byte("\x00garbage"), []string{"Mesh m", "decode"}},
		{"record under another key", bucketResources, "Mesh///other", withMeta, []string{"Mesh other", "holds Mesh m"}},
		{"record without metadata", bucketResources, "Mesh///m", good, []string{"Mesh m", "no metadata"}},
		{"bad key", bucketResources, "Mesh/m", withMeta, []string{`"Mesh/m"`, "4 parts"}},
		{"unknown format", bucketMeta, "format", []byte("9"), []string{`format "9"`}},
		{"bad revision", bucketMeta, "revision", []byte("x"), []string{"revision"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, path := openTemp(t, nil)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(tt.bucket).Put([]byte(tt.key), tt.value) })
			_ = db.Close()
			if err != nil {
				t.Fatal(err)
			}
			s2, err := Open(path, Options{Logger: quietLog})
			if err == nil {
				_ = s2.Close()
				t.Fatal("Open accepted a damaged file")
			}
			for _, sub := range tt.want {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not mention %q", err, sub)
				}
			}
			// The file is released: it can be opened again (and fails again).
			if _, err := Open(path, Options{Logger: quietLog, LockTimeout: 100 * time.Millisecond}); errors.Is(err, ErrInUse) {
				t.Error("a failed Open kept the lock")
			}
		})
	}
}

func TestBackup(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t, nil)
	if _, err := s.Apply(context.Background(), []*v1alpha1.Resource{mesh("m"), vnode("m", "a", 80)}, nil); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n == 0 {
		t.Fatalf("Backup = %d, %v", n, err)
	}
	c := openAt(t, copyPath, nil)
	defer c.Close()
	if got, want := dump(t, c.Snapshot()), dump(t, s.Snapshot()); got != want {
		t.Fatalf("backup differs:\n got %s\nwant %s", got, want)
	}
}

// TestConcurrentWritesAndReads runs writers and readers together; under
// -race it shows that reads need no lock and see whole states only.
func TestConcurrentWritesAndReads(t *testing.T) {
	t.Parallel()
	s, path := openTemp(t, nil)
	ctx := context.Background()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				// Writer w owns node w-<i%3>: creates, then updates.
				r := vnode("m", fmt.Sprintf("w%d-%d", w, i%3), 1000+i)
				if _, err := s.Apply(ctx, []*v1alpha1.Resource{r}, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 3 {
		readers.Go(func() {
			var last uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				snap := s.Snapshot()
				if snap.Revision() < last {
					errs <- fmt.Errorf("revision went back from %d to %d", last, snap.Revision())
					return
				}
				last = snap.Revision()
				for _, r := range snap.All() {
					_ = r.Metadata.Version
				}
				_ = snap.List(v1alpha1.KindVirtualNode, "m", "")
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	if want := uint64(1 + writers*perWriter); snap.Revision() != want {
		t.Fatalf("revision = %d, want %d (one per write)", snap.Revision(), want)
	}
	if snap.Len() != 1+writers*3 {
		t.Fatalf("%d resources, want %d", snap.Len(), 1+writers*3)
	}
	for w := range writers {
		for n := range 3 {
			r := snap.Get(vnKey("m", fmt.Sprintf("w%d-%d", w, n)))
			if want := int64(perWriter / 3); r == nil || r.Metadata.Version != want {
				t.Fatalf("w%d-%d: %+v, want version %d", w, n, r, want)
			}
		}
	}
	want := dump(t, snap)
	_ = s.Close()
	s2 := openAt(t, path, nil)
	defer s2.Close()
	if got := dump(t, s2.Snapshot()); got != want {
		t.Fatal("reopened state differs from the last snapshot")
	}
}

func BenchmarkApply(b *testing.B) {
	s, _ := openTemp(b, nil)
	ctx := context.Background()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", fmt.Sprintf("n%d", i%50), i)}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCASecretsSurviveReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db")
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := b.CASecret("mesh/demo/root"); v != nil || err != nil {
		t.Fatalf("empty store: %q, %v", v, err)
	}
	if err := b.PutCASecret("mesh/demo/root", []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if v, err := b.CASecret("mesh/demo/root"); string(v) != "sealed" || err != nil {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}
