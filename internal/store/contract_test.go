package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/etcdtest"
)

// The store contract: every test here runs against each backend, the
// embedded bbolt file and an etcd cluster of real etcd processes, so the
// two keep the same guarantees (docs/store.md).

// backend opens stores of one implementation.
type backend struct {
	name string
	// shared: two stores may be open on the same data at once (replicas).
	shared bool
	// open returns a new, empty store, closed at cleanup.
	open func(t *testing.T, clock *fakeClock) opened
}

// opened is a store and the way to open another one on the same data:
// after Close (a restart) or, for a shared backend, beside it (a replica).
type opened struct {
	Store
	reopen func(t *testing.T) Store
}

var contract = []struct {
	name string
	fn   func(*testing.T, backend)
}{
	{"ApplyLifecycle", testApplyLifecycle},
	{"ApplyUnchangedNormalisesNilSpec", testApplyUnchangedNormalisesNilSpec},
	{"ApplyEveryKindFillsARN", testApplyEveryKindFillsARN},
	{"ApplyConflict", testApplyConflict},
	{"ApplyRejectsBadBatch", testApplyRejectsBadBatch},
	{"Delete", testDelete},
	{"FailingCheckLeavesStoreUnchanged", testFailingCheckLeavesStoreUnchanged},
	{"RevisionSurvivesReopen", testRevisionSurvivesReopen},
	{"CancelledContextWritesNothing", testCancelledContextWritesNothing},
	{"Closed", testClosed},
	{"ConcurrentWritesAndReads", testConcurrentWritesAndReads},
	{"WatchDeliversInitialThenLatest", testWatchDeliversInitialThenLatest},
	{"WatchCloses", testWatchCloses},
	{"WatchWithConcurrentWrites", testWatchWithConcurrentWrites},
	{"ReplicasShareOneState", testReplicasShareOneState},
	{"CurrentIsLinearizable", testCurrentIsLinearizable},
	{"CASecretFirstWriterWins", testCASecretFirstWriterWins},
}

// TestStoreContract runs the contract against bbolt and against a real
// one-member etcd cluster (each test on a key prefix of its own).
func TestStoreContract(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { runContract(t, boltBackend()) })
	t.Run("etcd", func(t *testing.T) { runContract(t, etcdBackend(etcdtest.Start(t, 1))) })
}

func runContract(t *testing.T, b backend) {
	for _, c := range contract {
		t.Run(c.name, func(t *testing.T) { c.fn(t, b) })
	}
}

func boltBackend() backend {
	return backend{name: "bolt", open: func(t *testing.T, clock *fakeClock) opened {
		s, path := openTemp(t, clock)
		return opened{Store: s, reopen: func(t *testing.T) Store {
			s := openAt(t, path, clock)
			t.Cleanup(func() { _ = s.Close() })
			return s
		}}
	}}
}

var prefixSeq atomic.Int64

func etcdBackend(c *etcdtest.Cluster) backend {
	return backend{name: "etcd", shared: true, open: func(t *testing.T, clock *fakeClock) opened {
		prefix := fmt.Sprintf("/contract/%d/", prefixSeq.Add(1))
		open := func(t *testing.T) Store {
			t.Helper()
			opts := EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix, Logger: quietLog}
			if clock != nil {
				opts.Now = clock.Now
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := OpenEtcd(ctx, opts)
			if err != nil {
				t.Fatalf("OpenEtcd: %v", err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		return opened{Store: open(t), reopen: open}
	}}
}

func testApplyLifecycle(t *testing.T, b backend) {
	t.Parallel()
	clock := newClock()
	s := b.open(t, clock).Store
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

func testApplyUnchangedNormalisesNilSpec(t *testing.T, b backend) {
	t.Parallel()
	s := b.open(t, nil).Store
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

func testApplyEveryKindFillsARN(t *testing.T, b backend) {
	t.Parallel()
	s := b.open(t, nil).Store
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

func testApplyConflict(t *testing.T, b backend) {
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
			s := b.open(t, nil).Store
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

func testApplyRejectsBadBatch(t *testing.T, b backend) {
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
			s := b.open(t, nil).Store
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

func testDelete(t *testing.T, b backend) {
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
			s := b.open(t, nil).Store
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

func testRevisionSurvivesReopen(t *testing.T, b backend) {
	t.Parallel()
	o := b.open(t, nil)
	_ = o.Close()
	ctx := context.Background()
	var last uint64
	for round := range 3 {
		s := o.reopen(t)
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
		s = o.reopen(t)
		if got := dump(t, s.Snapshot()); got != want {
			t.Fatalf("round %d: reopened state differs:\n got %s\nwant %s", round, got, want)
		}
		_ = s.Close()
	}
}

func testCancelledContextWritesNothing(t *testing.T, b backend) {
	t.Parallel()
	s := b.open(t, nil).Store
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

func testClosed(t *testing.T, b backend) {
	t.Parallel()
	s := b.open(t, nil).Store
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
	if s.Snapshot().Len() != 1 {
		t.Error("Snapshot after Close lost the last state")
	}
	if _, ok := <-s.Watch(ctx); ok {
		t.Error("Watch after Close delivered a snapshot")
	}
}

// testConcurrentWritesAndReads runs writers and readers together; under
// -race it shows that reads need no lock and see whole states only.
func testConcurrentWritesAndReads(t *testing.T, b backend) {
	t.Parallel()
	o := b.open(t, nil)
	s := o.Store
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
	s2 := o.reopen(t)
	defer s2.Close()
	if got := dump(t, s2.Snapshot()); got != want {
		t.Fatal("reopened state differs from the last snapshot")
	}
}

func testWatchDeliversInitialThenLatest(t *testing.T, b backend) {
	t.Parallel()
	s := b.open(t, nil).Store
	ctx := context.Background()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		t.Fatal(err)
	}
	ch := s.Watch(t.Context())
	if got := recv(t, ch); got != s.Snapshot() || got.Revision() != 1 {
		t.Fatalf("initial snapshot at revision %d, want the current one (1)", got.Revision())
	}
	if _, ok := pending(ch); ok {
		t.Fatal("a second snapshot before any write")
	}

	if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", 1)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch); got.Revision() != 2 || got.Get(vnKey("m", "a")) == nil {
		t.Fatalf("after a write: revision %d", got.Revision())
	}

	// A slow reader: five writes, one pending snapshot, the newest.
	for i := range 5 {
		if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", 10+i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := recv(t, ch); got != s.Snapshot() || got.Revision() != 7 {
		t.Fatalf("coalesced snapshot at revision %d, want 7", got.Revision())
	}
	if s, ok := pending(ch); ok {
		t.Fatalf("an older snapshot (revision %d) was queued behind the newest", s.Revision())
	}

	// Unchanged writes and refused writes wake nobody.
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", 14)}, nil); err != nil {
		t.Fatal(err)
	}
	refuse := func(*Snapshot, []v1alpha1.Key) error { return fmt.Errorf("no") }
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "b", 1)}, refuse); err == nil {
		t.Fatal("refused write succeeded")
	}
	if _, ok := pending(ch); ok {
		t.Fatal("a write that changed nothing woke the watcher")
	}

	// Deletes are changes too.
	if _, err := s.Delete(ctx, vnKey("m", "a"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch); got.Revision() != 8 || got.Get(vnKey("m", "a")) != nil {
		t.Fatalf("after delete: revision %d", got.Revision())
	}
}

func testWatchCloses(t *testing.T, b backend) {
	t.Parallel()
	t.Run("on cancel", func(t *testing.T) {
		t.Parallel()
		s := b.open(t, nil).Store
		ctx, cancel := context.WithCancel(context.Background())
		ch := s.Watch(ctx)
		other := s.Watch(t.Context())
		recv(t, ch)
		cancel()
		closedSoon(t, ch)
		// Other watchers carry on.
		recv(t, other)
		if _, err := s.Apply(context.Background(), []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, other); got.Revision() != 1 {
			t.Fatalf("other watcher got revision %d", got.Revision())
		}
	})
	t.Run("ctx already done", func(t *testing.T) {
		t.Parallel()
		s := b.open(t, nil).Store
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		closedSoon(t, s.Watch(ctx))
	})
	t.Run("on store close", func(t *testing.T) {
		t.Parallel()
		s := b.open(t, nil).Store
		ch := s.Watch(t.Context())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		closedSoon(t, ch)
	})
}

// testWatchWithConcurrentWrites: every watcher sees revisions only grow
// and ends on the last one, while watches come and go.
func testWatchWithConcurrentWrites(t *testing.T, b backend) {
	t.Parallel()
	s := b.open(t, nil).Store
	ctx := context.Background()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		t.Fatal(err)
	}
	const writes = 40
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range writes {
			if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", fmt.Sprintf("n%d", i%4), i)}, nil); err != nil {
				t.Error(err)
				return
			}
		}
	})
	final := uint64(1 + writes)
	for w := range 4 {
		wg.Go(func() {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var last uint64
			for snap := range s.Watch(wctx) {
				if snap.Revision() < last {
					t.Errorf("watcher %d: revision went back from %d to %d", w, last, snap.Revision())
					return
				}
				last = snap.Revision()
				if last == final {
					return
				}
			}
			t.Errorf("watcher %d: channel closed at revision %d", w, last)
		})
	}
	// Short-lived watches racing with the writes.
	wg.Go(func() {
		for range 30 {
			wctx, cancel := context.WithCancel(ctx)
			ch := s.Watch(wctx)
			<-ch
			cancel()
		}
	})
	wg.Wait()
}

// testFailingCheckLeavesStoreUnchanged: a refused batch writes nothing,
// and the check saw the state as it would have been.
func testFailingCheckLeavesStoreUnchanged(t *testing.T, b backend) {
	t.Parallel()
	o := b.open(t, nil)
	s := o.Store
	ctx := context.Background()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m"), vnode("m", "a", 80)}, nil); err != nil {
		t.Fatal(err)
	}
	before := s.Snapshot()
	wantDump := dump(t, before)
	var sawNext *Snapshot
	var sawChanged []v1alpha1.Key
	refuse := func(next *Snapshot, changed []v1alpha1.Key) error {
		sawNext, sawChanged = next, changed
		return &checkError{key: changed[len(changed)-1]}
	}
	_, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", 80), vnode("m", "a2", 81), vnode("m", "b", 82)}, refuse)
	var ce *checkError
	if !errors.As(err, &ce) || ce.key != vnKey("m", "b") {
		t.Fatalf("Apply error = %v, want the check's *checkError", err)
	}
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
	if got := dump(t, o.reopen(t).Snapshot()); got != wantDump {
		t.Errorf("reopened state differs:\n got %s\nwant %s", got, wantDump)
	}
}

// testReplicasShareOneState: two stores on the same data (two control
// plane replicas) write concurrently; every write lands exactly once,
// each store's version checks and checks see the other's writes, and
// both end on the same state.
func testReplicasShareOneState(t *testing.T, b backend) {
	if !b.shared {
		t.Skip(b.name + ": one process owns the data")
	}
	t.Parallel()
	o := b.open(t, nil)
	s1, s2 := o.Store, o.reopen(t)
	ctx := context.Background()
	if _, err := s1.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		t.Fatal(err)
	}
	// s2's check sees s1's mesh at once (its state is read fresh).
	needMesh := func(next *Snapshot, _ []v1alpha1.Key) error {
		if next.Get(v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: "m"}) == nil {
			return errors.New("mesh m missing")
		}
		return nil
	}
	if _, err := s2.Apply(ctx, []*v1alpha1.Resource{vnode("m", "x", 1)}, needMesh); err != nil {
		t.Fatalf("replica 2's check did not see replica 1's write: %v", err)
	}
	// Optimistic concurrency across replicas: version 1 was read on s2,
	// s1 moves it to 2, s2's write at 1 conflicts.
	if _, err := s1.Apply(ctx, []*v1alpha1.Resource{vnode("m", "x", 2)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Apply(ctx, []*v1alpha1.Resource{withVersion(vnode("m", "x", 3), 1)}, nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write through the other replica = %v, want ErrConflict", err)
	}

	const writers, perWriter = 4, 12
	// wrote counts each writer's applies that succeeded (each writer its
	// own element): under load a writer can lose every race for "hot".
	var wrote [writers]int64
	var wg sync.WaitGroup
	for w := range writers {
		s := []Store{s1, s2}[w%2]
		wg.Go(func() {
			for i := range perWriter {
				// Every writer updates the shared node "hot" too: the
				// increments must not be lost.
				cur, err := s.Current(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				port := 1000 + w*100 + i
				batch := []*v1alpha1.Resource{vnode("m", fmt.Sprintf("w%d", w), port)}
				if hot := cur.Get(vnKey("m", "hot")); hot != nil {
					batch = append(batch, withVersion(vnode("m", "hot", port), hot.Metadata.Version))
				} else {
					batch = append(batch, vnode("m", "hot", port))
				}
				_, err = s.Apply(ctx, batch, nil)
				if err != nil && !errors.Is(err, ErrConflict) {
					t.Error(err)
					return
				}
				if err == nil {
					wrote[w]++
				}
			}
		})
	}
	wg.Wait()
	c1, err := s1.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := s2.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d1, d2 := dump(t, c1), dump(t, c2); d1 != d2 {
		t.Fatalf("replicas disagree:\n%s\n%s", d1, d2)
	}
	for w := range writers {
		// A writer's node exists once one of its applies succeeded, at
		// a version of at least its successes and at most its tries.
		r := c1.Get(vnKey("m", fmt.Sprintf("w%d", w)))
		if wrote[w] == 0 && r != nil || wrote[w] > 0 && (r == nil || r.Metadata.Version < wrote[w] || r.Metadata.Version > perWriter) {
			t.Fatalf("w%d after %d successful applies: %+v", w, wrote[w], r)
		}
	}
	// Every committed write moved the revision by exactly one: the
	// writes that succeeded are counted by the versions they made.
	var versions int64
	for _, r := range c1.All() {
		if r.Kind == v1alpha1.KindVirtualNode {
			versions += r.Metadata.Version
		}
	}
	// Revision = 1 (mesh) + one per write; a write created/updated
	// w<n> and usually hot. Revision can only be bounded here.
	if c1.Revision() < uint64(3) || int64(c1.Revision()) > 1+versions {
		t.Fatalf("revision %d with %d versions in total", c1.Revision(), versions)
	}
	// s2's watch delivers the final state.
	for snap := range s2.Watch(t.Context()) {
		if snap.Revision() == c1.Revision() {
			if dump(t, snap) != dump(t, c1) {
				t.Fatal("watched state differs at the same revision")
			}
			break
		}
	}
}

// testCurrentIsLinearizable: a read through Current, on any replica,
// sees every write acknowledged before it started.
func testCurrentIsLinearizable(t *testing.T, b backend) {
	t.Parallel()
	o := b.open(t, nil)
	s1 := o.Store
	s2 := s1
	if b.shared {
		s2 = o.reopen(t)
	}
	ctx := context.Background()
	if _, err := s1.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		res, err := s1.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := s2.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := cur.Get(vnKey("m", "a"))
		if got == nil || got.Metadata.Version != res[0].Resource.Metadata.Version {
			t.Fatalf("write %d: Current on the other replica = %+v, want version %d", i, got, res[0].Resource.Metadata.Version)
		}
	}
}

// testCASecretFirstWriterWins: a CA secret is durable, and a second
// write under the same name (another replica that generated its own root
// at the same moment) leaves the first in place.
func testCASecretFirstWriterWins(t *testing.T, b backend) {
	t.Parallel()
	o := b.open(t, nil)
	if v, err := o.CASecret("mesh/m/root"); err != nil || v != nil {
		t.Fatalf("CASecret before any write = %q, %v; want nil, nil", v, err)
	}
	if err := o.PutCASecret("mesh/m/root", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := o.PutCASecret("mesh/m/root", []byte("second")); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	s := o.reopen(t)
	defer s.Close()
	if v, err := s.CASecret("mesh/m/root"); err != nil || string(v) != "first" {
		t.Fatalf("CASecret after reopen = %q, %v; want first", v, err)
	}
}
