package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// Defaults of an etcd server (etcd's --max-txn-ops and
// --max-request-bytes): a write must fit both, since a batch is one
// transaction.
const (
	DefaultEtcdMaxTxnOps       = 128
	DefaultEtcdMaxRequestBytes = 1536 * 1024
	// DefaultEtcdPrefix is the key prefix under which meshlens keeps
	// everything it stores in etcd.
	DefaultEtcdPrefix = "/meshlens/"
)

// ErrTooLarge is wrapped when a batch does not fit in one etcd
// transaction; the message names the limit.
var ErrTooLarge = errors.New("batch too large for one etcd transaction")

// opOverhead is a generous bound on what one put costs in an etcd
// request besides its key and value bytes (protobuf tags, lengths).
const opOverhead = 32

// EtcdOptions configures OpenEtcd. Endpoints (or Client) is required.
type EtcdOptions struct {
	// Endpoints are the cluster members' client URLs or host:port.
	Endpoints []string
	// TLS, when set, is used for every connection to the members.
	TLS *tls.Config
	// Username and Password authenticate to a cluster with auth enabled.
	Username, Password string
	// Client, when set, is used instead of dialling Endpoints; the
	// store does not close it.
	Client *clientv3.Client

	// Prefix is the key prefix of everything meshlens stores; "" means
	// DefaultEtcdPrefix. Two meshes of replicas on one cluster use two
	// prefixes.
	Prefix string

	// DialTimeout bounds the first connection; 0 means 5s.
	DialTimeout time.Duration
	// MaxTxnOps and MaxRequestBytes are the server's limits; 0 means
	// etcd's defaults. A batch above them is refused before it is sent.
	MaxTxnOps, MaxRequestBytes int

	// Logger and Now as in Options.
	Logger *slog.Logger
	Now    func() time.Time
}

// Etcd is the Store kept in an etcd cluster, for several control-plane
// replicas sharing one state.
//
// Each resource is one key (PREFIX store/r/<EncodeKey>) holding the same
// JSON record as the bbolt file; one more key, PREFIX store/rev, holds the
// store revision. Every write is one etcd transaction that compares the
// revision key's ModRevision with the one the write was computed from,
// puts or deletes the records and puts the next revision: writes from
// every replica are serialised by the cluster as the mutex serialises
// them in Bolt, a batch applies whole or not at all, and an acknowledged
// write is committed by the cluster's quorum.
//
// Reads (Snapshot) are served from a state kept current by an etcd watch
// on the prefix; a watch that breaks resumes from the last revision it
// saw, and one whose revision was compacted away re-lists everything.
type Etcd struct {
	client    *clientv3.Client
	ownClient bool
	log       *slog.Logger
	now       func() time.Time
	base      string // PREFIX store/: everything the store keeps
	prefix    string // PREFIX store/r/: the records
	revKey    string
	fmtKey    string
	maxOps    int
	maxBytes  int

	mu     sync.Mutex // serialises this process's writes and Close
	closed atomic.Bool
	hub

	smu     sync.Mutex // orders state swaps; guards changed
	state   atomic.Pointer[etcdState]
	changed chan struct{} // closed and replaced at every state swap

	cancel  context.CancelFunc
	done    chan struct{} // closed when the watch loop ends
	relists atomic.Int64  // full re-lists after a failed watch
	// behind is signalled when checkFresh found the watch stalled: it
	// is restarted from a fresh list; stallRestarts counts those.
	behind        chan struct{}
	stallRestarts atomic.Int64
	// stalled, set by tests, makes the watch drop what it receives, as
	// a stream stuck on an unresponsive member would.
	stalled atomic.Bool
}

// etcdState is the watched state and the etcd revisions it reflects.
type etcdState struct {
	snap *Snapshot
	// etcdRev: every change under the prefix up to this etcd revision
	// is in snap.
	etcdRev int64
	// revKeyMod is the ModRevision of the revision key (0: absent), the
	// revision of the last resource write in snap.
	revKeyMod int64
}

var _ Store = (*Etcd)(nil)

// OpenEtcd connects to the cluster, checks the layout version stored
// there, loads every resource and starts watching for changes. A record
// that does not decode is an error naming its key.
func OpenEtcd(ctx context.Context, opts EtcdOptions) (*Etcd, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultEtcdPrefix
	}
	e := &Etcd{
		client: opts.Client, log: logger, now: now,
		base: prefix + "store/", prefix: prefix + "store/r/", revKey: prefix + "store/rev", fmtKey: prefix + "store/format",
		maxOps: opts.MaxTxnOps, maxBytes: opts.MaxRequestBytes,
		changed: make(chan struct{}), done: make(chan struct{}), behind: make(chan struct{}, 1),
	}
	if e.maxOps <= 0 {
		e.maxOps = DefaultEtcdMaxTxnOps
	}
	if e.maxBytes <= 0 {
		e.maxBytes = DefaultEtcdMaxRequestBytes
	}
	if e.client == nil {
		c, err := NewEtcdClient(opts)
		if err != nil {
			return nil, err
		}
		e.client, e.ownClient = c, true
	}
	fail := func(err error) (*Etcd, error) {
		if e.ownClient {
			_ = e.client.Close()
		}
		return nil, fmt.Errorf("open etcd store %s: %w", strings.Join(e.client.Endpoints(), ","), err)
	}
	if err := e.checkFormat(ctx); err != nil {
		return fail(err)
	}
	st, err := e.list(ctx)
	if err != nil {
		return fail(err)
	}
	e.state.Store(st)
	e.hub.snap.Store(st.snap)

	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.run(runCtx)
	logger.Info("store opened", "etcd", e.client.Endpoints(), "prefix", prefix,
		"revision", st.snap.Revision(), "resources", st.snap.Len())
	return e, nil
}

// NewEtcdClient dials the cluster of opts as OpenEtcd does; the
// registry, the peer list and the leader election share such a client.
func NewEtcdClient(opts EtcdOptions) (*clientv3.Client, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = 5 * time.Second
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		DialTimeout: dial,
		TLS:         opts.TLS,
		Username:    opts.Username,
		Password:    opts.Password,
		// The client's own zap logging is noise next to slog; its
		// errors reach us as returned errors.
		Logger: zap.NewNop(),
		// A dead member is noticed within seconds and its calls move
		// to a live one.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		AutoSyncInterval:     30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	return c, nil
}

// Prefix is the key prefix the store was opened with ("/meshlens/"):
// other parts of the control plane keep their keys under it too.
func (e *Etcd) Prefix() string { return strings.TrimSuffix(e.base, "store/") }

// Client is the store's etcd client, for the parts of the control plane
// that keep other keys (registrations, peers, the leader) in the same
// cluster.
func (e *Etcd) Client() *clientv3.Client { return e.client }

// checkFormat writes the layout version on a new prefix and refuses one
// written in another layout.
func (e *Etcd) checkFormat(ctx context.Context) error {
	resp, err := e.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(e.fmtKey), "=", 0)).
		Then(clientv3.OpPut(e.fmtKey, FormatVersion)).
		Else(clientv3.OpGet(e.fmtKey)).
		Commit()
	if err != nil {
		return fmt.Errorf("check data format: %w", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 1 && string(kvs[0].Value) != FormatVersion {
		return fmt.Errorf("data format %q is not one this build reads (%s)", kvs[0].Value, FormatVersion)
	}
	return nil
}

// list reads every record and the revision in one linearizable range
// read and decodes them into a state.
func (e *Etcd) list(ctx context.Context) (*etcdState, error) {
	// One range over PREFIX store/ covers the records and the
	// revision key; the format key sorts between them and is skipped.
	resp, err := e.client.Get(ctx, e.base, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	st := &etcdState{etcdRev: resp.Header.Revision}
	var (
		rev       uint64
		resources []*v1alpha1.Resource
	)
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		switch {
		case k == e.revKey:
			if rev, err = decodeRevision(kv.Value); err != nil {
				return nil, err
			}
			st.revKeyMod = kv.ModRevision
		case strings.HasPrefix(k, e.prefix):
			r, err := decodeRecord([]byte(k[len(e.prefix):]), kv.Value)
			if err != nil {
				return nil, err
			}
			resources = append(resources, r)
		}
	}
	st.snap = NewSnapshot(rev, resources)
	return st, nil
}

// Snapshot returns the watched state. It stays valid (and unchanged)
// after later writes and after Close.
func (e *Etcd) Snapshot() *Snapshot { return e.hub.snap.Load() }

// Current returns a state holding every write acknowledged before the
// call: it reads the revision key from the quorum and waits (briefly)
// for the watch to deliver that revision, or re-lists.
func (e *Etcd) Current(ctx context.Context) (*Snapshot, error) {
	st, err := e.current(ctx)
	if err != nil {
		return nil, err
	}
	return st.snap, nil
}

// catchUpWait bounds how long Current waits for the watch before it
// reads the whole state itself.
const catchUpWait = 500 * time.Millisecond

func (e *Etcd) current(ctx context.Context) (*etcdState, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	resp, err := e.client.Get(ctx, e.revKey)
	if err != nil {
		return nil, fmt.Errorf("read revision: %w", err)
	}
	var want int64
	if len(resp.Kvs) == 1 {
		want = resp.Kvs[0].ModRevision
	}
	timer := time.NewTimer(catchUpWait)
	defer timer.Stop()
	for {
		e.smu.Lock()
		st, changed := e.state.Load(), e.changed
		e.smu.Unlock()
		if st.revKeyMod >= want {
			return st, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			st, err := e.list(ctx)
			if err != nil {
				return nil, err
			}
			e.swap(st)
			return e.state.Load(), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// swap makes st the current state if it is newer than the one held, and
// wakes the watches when its snapshot differs.
func (e *Etcd) swap(st *etcdState) {
	e.smu.Lock()
	defer e.smu.Unlock()
	e.swapLocked(st)
}

func (e *Etcd) swapLocked(st *etcdState) {
	cur := e.state.Load()
	if cur != nil && st.etcdRev <= cur.etcdRev {
		return
	}
	e.state.Store(st)
	close(e.changed)
	e.changed = make(chan struct{})
	if cur == nil || st.snap != cur.snap {
		e.hub.publish(st.snap)
	}
}

// maxWriteAttempts bounds the retries of a write whose transaction lost
// the race with another replica's write.
const maxWriteAttempts = 16

// Apply creates or updates the batch's resources in one etcd transaction;
// see Store.Apply. The batch is computed on the freshest state; if another
// replica wrote in between, the transaction fails its compare and the
// batch is computed again (the version checks and the check see the state
// the write lands on).
func (e *Etcd) Apply(ctx context.Context, batch []*v1alpha1.Resource, check Check) ([]Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return nil, fmt.Errorf("apply: %w", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	for range maxWriteAttempts {
		cur, err := e.current(ctx)
		if err != nil {
			return nil, fmt.Errorf("apply: %w", err)
		}
		p, err := planApply(cur.snap, batch, e.now())
		if err != nil {
			return nil, err
		}
		if len(p.puts) == 0 {
			return p.results, nil
		}
		if err := e.fits(p); err != nil {
			return nil, err
		}
		next := cur.snap.With(cur.snap.Revision()+1, p.puts, nil)
		if check != nil {
			if err := check(next, p.changed); err != nil {
				return nil, err
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("apply: %w", err)
		}
		ops := make([]clientv3.Op, 0, len(p.changed)+1)
		for i, k := range p.changed {
			ops = append(ops, clientv3.OpPut(e.prefix+string(EncodeKey(k)), string(p.records[i])))
		}
		ok, rev, err := e.commit(ctx, cur, next, ops)
		if err != nil {
			return nil, fmt.Errorf("apply: commit: %w", err)
		}
		if ok {
			e.swap(&etcdState{snap: next, etcdRev: rev, revKeyMod: rev})
			return p.results, nil
		}
	}
	return nil, fmt.Errorf("apply: lost the race with other writers %d times; try again", maxWriteAttempts)
}

// fits refuses a batch that etcd would refuse: more operations or bytes
// in one transaction than the server takes.
func (e *Etcd) fits(p *applyPlan) error {
	if ops := len(p.changed) + 1; ops > e.maxOps {
		return fmt.Errorf("apply: %d changed resources need %d operations in one transaction; etcd allows %d (--max-txn-ops): %w",
			len(p.changed), ops, e.maxOps, ErrTooLarge)
	}
	size := len(e.revKey) + 8 + opOverhead
	for i, k := range p.changed {
		size += len(e.prefix) + len(EncodeKey(k)) + len(p.records[i]) + opOverhead
	}
	if size > e.maxBytes {
		return fmt.Errorf("apply: the batch is %d bytes; etcd takes at most %d bytes in one request (--max-request-bytes): %w",
			size, e.maxBytes, ErrTooLarge)
	}
	return nil
}

// commit runs one write transaction: if the revision key is still at
// the revision cur was read at, do ops and put next's revision. It
// reports whether the compare held, and the revision of the commit.
func (e *Etcd) commit(ctx context.Context, cur *etcdState, next *Snapshot, ops []clientv3.Op) (bool, int64, error) {
	ops = append(ops, clientv3.OpPut(e.revKey, string(encodeRevision(next.Revision()))))
	resp, err := e.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(e.revKey), "=", cur.revKeyMod)).
		Then(ops...).
		Commit()
	if err != nil {
		return false, 0, err
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

// Delete removes the resource with key in one etcd transaction; see
// Store.Delete and Apply.
func (e *Etcd) Delete(ctx context.Context, key v1alpha1.Key, expectedVersion int64, check Check) (*v1alpha1.Resource, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return nil, fmt.Errorf("delete %s: %w", key, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("delete %s: %w", key, err)
	}
	for range maxWriteAttempts {
		cur, err := e.current(ctx)
		if err != nil {
			return nil, fmt.Errorf("delete %s: %w", key, err)
		}
		old, err := planDelete(cur.snap, key, expectedVersion)
		if err != nil {
			return nil, err
		}
		next := cur.snap.With(cur.snap.Revision()+1, nil, []v1alpha1.Key{key})
		if check != nil {
			if err := check(next, []v1alpha1.Key{key}); err != nil {
				return nil, err
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("delete %s: %w", key, err)
		}
		ok, rev, err := e.commit(ctx, cur, next, []clientv3.Op{clientv3.OpDelete(e.prefix + string(EncodeKey(key)))})
		if err != nil {
			return nil, fmt.Errorf("delete %s: commit: %w", key, err)
		}
		if ok {
			e.swap(&etcdState{snap: next, etcdRev: rev, revKeyMod: rev})
			return deletedCopy(old), nil
		}
	}
	return nil, fmt.Errorf("delete %s: lost the race with other writers %d times; try again", key, maxWriteAttempts)
}

// Watch returns a channel that receives the current snapshot at once and
// then the newest snapshot after every change, whichever replica made
// it; see Store.Watch.
func (e *Etcd) Watch(ctx context.Context) <-chan *Snapshot { return e.hub.watch(ctx) }

// Close stops the watch, closes the client if the store dialled it and
// closes every Watch channel. It is idempotent.
func (e *Etcd) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Swap(true) {
		return nil
	}
	e.cancel()
	<-e.done
	var err error
	if e.ownClient {
		err = e.client.Close()
	}
	e.hub.closeWatchers()
	if err != nil {
		return fmt.Errorf("close etcd client: %w", err)
	}
	return nil
}

// run keeps the state current until ctx ends: it watches the prefix from
// the revision after the state's, applies each transaction's events as
// one change, and when the watch fails (its revision compacted, the
// member lost its leader, the connection broke for good) it re-lists and
// watches again.
func (e *Etcd) run(ctx context.Context) {
	defer close(e.done)
	go e.checkFresh(ctx)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := e.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		e.log.Warn("store watch ended; re-listing", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		st, lerr := e.list(ctx)
		if lerr != nil {
			e.log.Warn("store re-list failed", "err", lerr)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		e.relists.Add(1)
		e.swap(st)
	}
}

// freshInterval is how often a replica checks, with one quorum read,
// that its watch has delivered every write: a watch stream that stalls
// without an error (a member that stops answering without closing its
// connections) is found within this and catchUpWait.
const freshInterval = time.Second

// checkFresh reads the store's revision from the quorum every
// freshInterval until ctx ends. When the watched state is still behind a
// revision the previous check read, the watch has delivered nothing for
// a whole interval: it is restarted from a fresh list.
func (e *Etcd) checkFresh(ctx context.Context) {
	t := time.NewTicker(freshInterval)
	defer t.Stop()
	var pending int64 // a revision the watch had not delivered at the last check
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		have := e.state.Load().revKeyMod
		if pending != 0 && have < pending {
			e.log.Warn("store watch delivered nothing for a whole check interval; restarting it", "have", have, "want", pending)
			select {
			case e.behind <- struct{}{}:
				e.stallRestarts.Add(1)
			default:
			}
			pending = 0
			continue
		}
		pending = 0
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := e.client.Get(cctx, e.revKey)
		cancel()
		if err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].ModRevision > have {
			pending = resp.Kvs[0].ModRevision
		}
	}
}

// watchOnce runs one etcd watch from the state's revision and returns
// why it ended.
func (e *Etcd) watchOnce(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	from := e.state.Load().etcdRev + 1
	wch := e.client.Watch(wctx, e.base, clientv3.WithPrefix(), clientv3.WithRev(from))
	for {
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case <-e.behind:
			return errors.New("the watch fell behind the cluster")
		case wr, ok = <-wch:
		}
		if !ok {
			break
		}
		if e.stalled.Load() {
			continue
		}
		if wr.CompactRevision != 0 {
			return fmt.Errorf("revision %d was compacted (oldest kept %d)", from, wr.CompactRevision)
		}
		if err := wr.Err(); err != nil {
			return err
		}
		if err := e.applyEvents(wr.Events); err != nil {
			return err
		}
	}
	return errors.New("watch channel closed")
}

// applyEvents folds watch events into the state, one etcd revision (one
// transaction) at a time, skipping what the state already holds.
func (e *Etcd) applyEvents(events []*clientv3.Event) error {
	for i := 0; i < len(events); {
		rev := events[i].Kv.ModRevision
		j := i
		for j < len(events) && events[j].Kv.ModRevision == rev {
			j++
		}
		if err := e.applyTxn(rev, events[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}

func (e *Etcd) applyTxn(rev int64, events []*clientv3.Event) error {
	// Under smu: a write's swap cannot slip in between reading the
	// state and replacing it.
	e.smu.Lock()
	defer e.smu.Unlock()
	cur := e.state.Load()
	if rev <= cur.etcdRev {
		return nil
	}
	next := &etcdState{etcdRev: rev, revKeyMod: cur.revKeyMod}
	storeRev := cur.snap.Revision()
	var (
		puts    []*v1alpha1.Resource
		removes []v1alpha1.Key
	)
	for _, ev := range events {
		k := string(ev.Kv.Key)
		switch {
		case k == e.revKey:
			if ev.Type == mvccpb.DELETE {
				return fmt.Errorf("revision key %s deleted at etcd revision %d", k, rev)
			}
			r, err := decodeRevision(ev.Kv.Value)
			if err != nil {
				return err
			}
			storeRev, next.revKeyMod = r, rev
		case strings.HasPrefix(k, e.prefix):
			rk := []byte(k[len(e.prefix):])
			if ev.Type == mvccpb.DELETE {
				key, err := DecodeKey(rk)
				if err != nil {
					return fmt.Errorf("record %q: %w", rk, err)
				}
				removes = append(removes, key)
				continue
			}
			r, err := decodeRecord(rk, ev.Kv.Value)
			if err != nil {
				return err
			}
			puts = append(puts, r)
		}
	}
	if len(puts) == 0 && len(removes) == 0 && storeRev == cur.snap.Revision() {
		next.snap = cur.snap
	} else {
		next.snap = cur.snap.With(storeRev, puts, removes)
	}
	e.swapLocked(next)
	return nil
}
