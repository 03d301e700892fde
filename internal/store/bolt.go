package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// ErrInUse is wrapped by Open when another process holds the data file's
// lock; the message reads "data file PATH is in use by another process".
var ErrInUse = errors.New("in use by another process")

// FormatVersion is the layout version this build writes and reads. It is
// kept in the meta bucket so that a future layout change is detected on
// Open instead of being misread.
const FormatVersion = "1"

// DefaultLockTimeout is how long Open waits for the data file's lock.
const DefaultLockTimeout = 2 * time.Second

// Bucket and meta key names of the bbolt layout (see docs/store.md).
var (
	bucketResources = []byte("resources")
	bucketMeta      = []byte("meta")
	metaFormat      = []byte("format")
	metaRevision    = []byte("revision")
)

// Options tunes Open. The zero value is the production setting.
type Options struct {
	// LockTimeout bounds the wait for the data file's lock, held by a
	// process that has it open; 0 means DefaultLockTimeout. A finite wait
	// turns a second server on the same data dir into a clear error
	// instead of a hang.
	LockTimeout time.Duration

	// Logger receives the rare events (open, creation); nil means
	// slog.Default().
	Logger *slog.Logger

	// Now is the clock for createdAt and lastUpdatedAt; nil means
	// time.Now. Tests set it for reproducible timestamps.
	Now func() time.Time
}

// Bolt is the embedded Store: one bbolt file holding every resource, and
// an in-memory snapshot of it that reads are served from.
//
// Writes (Apply, Delete) are serialised by a mutex and each is one fsynced
// bbolt transaction; the snapshot is swapped only after the commit, so a
// reader never sees a change that is not on disk. Reads (Snapshot) are an
// atomic load and never wait for a write.
type Bolt struct {
	path string
	db   *bolt.DB
	log  *slog.Logger
	now  func() time.Time

	mu     sync.Mutex // serialises writes and Close
	closed atomic.Bool
	hub    // the current snapshot and the watches
}

var _ Store = (*Bolt)(nil)

// Open opens (creating it if needed) the data file at path, whose
// directory must exist, and loads every resource into memory. A record
// that does not decode is an error naming its key: the store never starts
// with a silently partial state.
func Open(path string, opts Options) (*Bolt, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}

	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("data file %s is %w (lock not acquired within %s)", path, ErrInUse, timeout)
		}
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	}
	if created {
		// bbolt fsyncs the file but not the directory entry that names
		// it; without this a power loss could lose a new store whole.
		if err := syncDir(filepath.Dir(path)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open data file %s: %w", path, err)
		}
	}

	b := &Bolt{path: path, db: db, log: logger, now: now}
	snap, err := b.load()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	}
	b.snap.Store(snap)
	if created {
		logger.Info("store created", "path", path, "format", FormatVersion)
	} else {
		logger.Info("store opened", "path", path, "revision", snap.Revision(), "resources", snap.Len())
	}
	return b, nil
}

// load makes sure the buckets exist and the format is one this build
// reads, then decodes every record into a snapshot.
func (b *Bolt) load() (*Snapshot, error) {
	err := b.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("create meta bucket: %w", err)
		}
		if _, err := tx.CreateBucketIfNotExists(bucketResources); err != nil {
			return fmt.Errorf("create resources bucket: %w", err)
		}
		switch f := meta.Get(metaFormat); {
		case f == nil:
			if err := meta.Put(metaFormat, []byte(FormatVersion)); err != nil {
				return fmt.Errorf("write format version: %w", err)
			}
		case string(f) != FormatVersion:
			return fmt.Errorf("data format %q is not one this build reads (%s)", f, FormatVersion)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	var (
		rev       uint64
		resources []*v1alpha1.Resource
	)
	err = b.db.View(func(tx *bolt.Tx) error {
		var err error
		if rev, err = decodeRevision(tx.Bucket(bucketMeta).Get(metaRevision)); err != nil {
			return err
		}
		return tx.Bucket(bucketResources).ForEach(func(k, v []byte) error {
			r, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			resources = append(resources, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return NewSnapshot(rev, resources), nil
}

// decodeRecord turns one record of the resources bucket back into a
// resource and checks that it is filed under its own key.
func decodeRecord(k, v []byte) (*v1alpha1.Resource, error) {
	key, err := DecodeKey(k)
	if err != nil {
		return nil, fmt.Errorf("record %q: %w", k, err)
	}
	var r v1alpha1.Resource
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("record %s: decode: %w", key, err)
	}
	if r.Key() != key {
		return nil, fmt.Errorf("record %s: holds %s", key, r.Key())
	}
	if r.Metadata == nil {
		return nil, fmt.Errorf("record %s: no metadata", key)
	}
	return &r, nil
}

// decodeRevision reads the meta bucket's revision; absent means 0.
func decodeRevision(v []byte) (uint64, error) {
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("meta revision: want 8 bytes, have %d", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func encodeRevision(rev uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, rev)
}

// Path is the data file's path.
func (b *Bolt) Path() string { return b.path }

// Snapshot returns the current state. It stays valid (and unchanged)
// after later writes and after Close.
func (b *Bolt) Snapshot() *Snapshot { return b.snap.Load() }

// Current returns the current state: one process owns the file, so what
// it holds is every acknowledged write.
func (b *Bolt) Current(context.Context) (*Snapshot, error) { return b.snap.Load(), nil }

// Apply creates or updates the batch's resources in one transaction; see
// Store.Apply. The resources of the batch are copied, never kept, and
// the resources in the results are the caller's own copies.
//
// A check error is returned as it is, so that errors.Is and errors.As see
// what check returned.
func (b *Bolt) Apply(ctx context.Context, batch []*v1alpha1.Resource, check Check) ([]Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, fmt.Errorf("apply: %w", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}

	cur := b.snap.Load()
	p, err := planApply(cur, batch, b.now())
	if err != nil {
		return nil, err
	}
	if len(p.puts) == 0 {
		return p.results, nil
	}
	next := cur.With(cur.Revision()+1, p.puts, nil)
	if check != nil {
		if err := check(next, p.changed); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	changed, records, results := p.changed, p.records, p.results
	err = b.db.Update(func(tx *bolt.Tx) error {
		bucket := tx.Bucket(bucketResources)
		for i, k := range changed {
			if err := bucket.Put(EncodeKey(k), records[i]); err != nil {
				return fmt.Errorf("put %s: %w", k, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(metaRevision, encodeRevision(next.Revision()))
	})
	if err != nil {
		return nil, fmt.Errorf("apply: commit: %w", err)
	}
	b.publish(next)
	return results, nil
}

// Delete removes the resource with key; see Store.Delete. The returned
// resource is the caller's copy, with status DELETED as App Mesh reports
// a deleted resource.
func (b *Bolt) Delete(ctx context.Context, key v1alpha1.Key, expectedVersion int64, check Check) (*v1alpha1.Resource, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, fmt.Errorf("delete %s: %w", key, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("delete %s: %w", key, err)
	}
	cur := b.snap.Load()
	old, err := planDelete(cur, key, expectedVersion)
	if err != nil {
		return nil, err
	}
	next := cur.With(cur.Revision()+1, nil, []v1alpha1.Key{key})
	if check != nil {
		if err := check(next, []v1alpha1.Key{key}); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("delete %s: %w", key, err)
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketResources).Delete(EncodeKey(key)); err != nil {
			return fmt.Errorf("delete record: %w", err)
		}
		return tx.Bucket(bucketMeta).Put(metaRevision, encodeRevision(next.Revision()))
	})
	if err != nil {
		return nil, fmt.Errorf("delete %s: commit: %w", key, err)
	}
	b.publish(next)
	return deletedCopy(old), nil
}

// Backup writes a consistent copy of the data file to w while the store
// keeps serving: it is one bbolt read transaction, so writes go on and
// the copy is the state at one revision. The copy opens with Open.
func (b *Bolt) Backup(w io.Writer) (int64, error) {
	if b.closed.Load() {
		return 0, fmt.Errorf("backup: %w", ErrClosed)
	}
	var n int64
	err := b.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup %s: %w", b.path, err)
	}
	return n, nil
}

// Close waits for a write in progress, closes the data file and closes
// every Watch channel. It is idempotent: later calls return nil, while
// Apply, Delete and Backup return ErrClosed. Snapshot keeps returning the
// last state.
func (b *Bolt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Swap(true) {
		return nil
	}
	err := b.db.Close()
	b.closeWatchers()
	if err != nil {
		return fmt.Errorf("close data file %s: %w", b.path, err)
	}
	return nil
}

// syncDir fsyncs a directory so that a file just created in it is named
// durably.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
