package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/etcdtest"
)

func openEtcd(t *testing.T, endpoints []string, prefix string, tune func(*EtcdOptions)) *Etcd {
	t.Helper()
	opts := EtcdOptions{Endpoints: endpoints, Prefix: prefix, Logger: quietLog}
	if tune != nil {
		tune(&opts)
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

// TestEtcdRefusesBatchOverLimits: a batch that etcd would refuse (more
// operations or bytes than one transaction takes) is refused whole with
// an error naming the limit, and nothing is written.
func TestEtcdRefusesBatchOverLimits(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := context.Background()
	big := func(n int) []*v1alpha1.Resource {
		batch := []*v1alpha1.Resource{mesh("m")}
		for i := range n - 1 {
			batch = append(batch, vnode("m", fmt.Sprintf("n%03d", i), 80))
		}
		return batch
	}
	tests := []struct {
		name  string
		tune  func(*EtcdOptions)
		batch []*v1alpha1.Resource
		want  string
	}{
		// 127 resources + the revision key = 128 operations: fits.
		{"at the operation limit", nil, big(127), ""},
		{"over the operation limit", nil, big(128), "etcd allows 128 (--max-txn-ops)"},
		{"over the request size", func(o *EtcdOptions) { o.MaxRequestBytes = 4096 }, big(20), "etcd takes at most 4096 bytes in one request (--max-request-bytes)"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openEtcd(t, c.Endpoints(), fmt.Sprintf("/limits/%d/", i), tt.tune)
			res, err := s.Apply(ctx, tt.batch, nil)
			if tt.want == "" {
				if err != nil || len(res) != len(tt.batch) {
					t.Fatalf("Apply = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply error = %v, want ErrTooLarge naming %q", err, tt.want)
			}
			if cur, _ := s.Current(ctx); cur.Revision() != 0 || cur.Len() != 0 {
				t.Fatal("a refused batch wrote something")
			}
		})
	}
}

// TestEtcdWatchSurvivesMemberLoss: a replica whose only etcd member
// dies keeps its last state, and when the member comes back its watch
// resumes from the last revision it saw (no re-list); if the history
// it missed was compacted meanwhile, it re-lists and still converges.
func TestEtcdWatchSurvivesMemberLoss(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ctx := context.Background()
	a := c.Members[0]
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compacted=%v", compact), func(t *testing.T) {
			prefix := fmt.Sprintf("/survive/%v/", compact)
			writer := openEtcd(t, []string{c.Members[1].ClientURL, c.Members[2].ClientURL}, prefix, nil)
			reader := openEtcd(t, []string{a.ClientURL}, prefix, nil)
			if _, err := writer.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the reader to see the mesh", func() bool { return reader.Snapshot().Revision() == 1 })

			a.Kill()
			for i := range 5 {
				if _, err := writer.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", i)}, nil); err != nil {
					t.Fatal(err)
				}
			}
			if compact {
				if _, err := etcdtest.Compact(ctx, writer.Client()); err != nil {
					t.Fatal(err)
				}
			}
			if got := reader.Snapshot().Revision(); got != 1 {
				t.Fatalf("the cut-off reader moved to revision %d", got)
			}
			if err := c.Restart(a); err != nil {
				t.Fatal(err)
			}
			want := dump(t, writer.Snapshot())
			deadline := time.Now().Add(20 * time.Second)
			for dump(t, reader.Snapshot()) != want {
				if time.Now().After(deadline) {
					t.Fatalf("reader stuck at revision %d, want %d", reader.Snapshot().Revision(), writer.Snapshot().Revision())
				}
				time.Sleep(20 * time.Millisecond)
			}
			relists := reader.relists.Load()
			if compact && relists == 0 {
				t.Error("the reader caught up over a compacted history without re-listing")
			}
			// A restarted member can take over freshInterval to serve
			// the watch again; the freshness check then restarts it
			// from a list, which is that check's work, not a failed
			// resumption.
			if stalls := reader.stallRestarts.Load(); !compact && relists > stalls {
				t.Errorf("the reader re-listed %d times (%d after a stalled watch); its watch should have resumed", relists, stalls)
			}
		})
	}
}

// TestEtcdRefusesOtherFormat: a prefix written in another layout is
// refused, not misread.
func TestEtcdRefusesOtherFormat(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cl := c.Client(t)
	if _, err := cl.Put(context.Background(), "/fmt/store/format", "9"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := OpenEtcd(ctx, EtcdOptions{Endpoints: c.Endpoints(), Prefix: "/fmt/", Logger: quietLog})
	if err == nil || !strings.Contains(err.Error(), `data format "9"`) {
		t.Fatalf("OpenEtcd = %v, want a format error", err)
	}
}

// TestEtcdSnapshotRestore: a backup taken with etcdctl snapshot save
// while the store serves, restored with etcdctl snapshot restore into a
// new cluster, opens as the state at the backup.
func TestEtcdSnapshotRestore(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := context.Background()
	s := openEtcd(t, c.Endpoints(), "", nil)
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m"), vnode("m", "a", 80)}, nil); err != nil {
		t.Fatal(err)
	}
	want := dump(t, s.Snapshot())
	snap := t.TempDir() + "/backup.db"
	c.Members[0].SaveSnapshot(t, snap)
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", "after-backup", 81)}, nil); err != nil {
		t.Fatal(err)
	}

	restored := etcdtest.StartRestored(t, snap)
	r := openEtcd(t, restored.Endpoints(), "", nil)
	if got := dump(t, r.Snapshot()); got != want {
		t.Fatalf("restored state differs:\n got %s\nwant %s", got, want)
	}
	// And it takes writes, moving on from the backup's revision.
	res, err := r.Apply(ctx, []*v1alpha1.Resource{vnode("m", "a", 82)}, nil)
	if err != nil || res[0].Resource.Metadata.Version != 2 || r.Snapshot().Revision() != 2 {
		t.Fatalf("write after restore = %v, %+v at revision %d", err, res, r.Snapshot().Revision())
	}
}

// TestEtcdStalledWatchIsRestarted: a watch that delivers nothing while
// the cluster's revision moves on (a stream stuck on a member that stopped
// answering without closing its connection) is found by the once-a-second
// quorum read of the revision, and the replica re-lists and catches up
// without any read asking it to.
func TestEtcdStalledWatchIsRestarted(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := context.Background()
	writer := openEtcd(t, c.Endpoints(), "/stalled/", nil)
	reader := openEtcd(t, c.Endpoints(), "/stalled/", nil)
	reader.stalled.Store(true)
	if _, err := writer.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	for reader.Snapshot().Revision() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled reader never caught up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if reader.relists.Load() == 0 {
		t.Fatal("caught up without re-listing, so the stall was not simulated")
	}
	t.Logf("caught up %s after the write", time.Since(start).Round(10*time.Millisecond))
}
