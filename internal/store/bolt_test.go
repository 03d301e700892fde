package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

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
	_ = s.Close()
	if _, err := s.Backup(&bytes.Buffer{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Backup after Close = %v, want ErrClosed", err)
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
