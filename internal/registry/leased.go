package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Leased keeps registrations in etcd, for control-plane replicas sharing
// one cluster: each instance is a key (PREFIX instances/mesh/node/id, each
// part path-escaped) holding the instance as JSON, attached to an etcd
// lease whose TTL is the registration's. A renewal, through any replica,
// keeps the lease alive; an instance that stops renewing disappears when
// its lease expires, whichever replica it talked to and whether or not
// that replica is still running.
//
// Every replica mirrors the keys into its Registry through a watch, so
// views, lists and change notifications work as with the in-memory
// registry; the mirrored instances do not expire by the local clock (etcd
// deletes their keys), and their expiresAt is the one the last
// registration wrote.
type Leased struct {
	reg    *Registry
	client *clientv3.Client
	prefix string
	log    *slog.Logger

	mu      sync.Mutex
	ready   chan struct{} // closed after the first full list
	readyOK bool
	// known is what the watch last saw of each instance key and its
	// lease, so that a renewal through this replica needs one
	// keep-alive and no read.
	known map[string]leasedKey
}

// leasedKey is one instance key as the watch last saw it.
type leasedKey struct {
	in    Instance
	lease clientv3.LeaseID
}

// NewLeased returns a Leased registry over reg; prefix is the store's key
// prefix (such as "/meshlens/"). Run must run for reg to see the keys.
func NewLeased(reg *Registry, client *clientv3.Client, prefix string, log *slog.Logger) *Leased {
	if log == nil {
		log = slog.Default()
	}
	return &Leased{reg: reg, client: client, prefix: prefix + "instances/", log: log, ready: make(chan struct{}), known: map[string]leasedKey{}}
}

func (l *Leased) key(mesh, node, id string) string {
	return l.prefix + url.PathEscape(mesh) + "/" + url.PathEscape(node) + "/" + url.PathEscape(id)
}

// Register creates or renews an instance in etcd and returns it as
// stored. A renewal with the same TTL keeps the instance's lease alive
// (and rewrites the key only if the endpoint changed); a first
// registration, a new TTL or a lease that already expired gets a new
// lease.
func (l *Leased) Register(ctx context.Context, in Instance) (Instance, error) {
	if err := in.Validate(); err != nil {
		return Instance{}, err
	}
	now := time.Now().UTC()
	in.RenewedAt = now
	in.ExpiresAt = now.Add(time.Duration(in.TTLSeconds) * time.Second)
	in.RegisteredAt = now
	k := l.key(in.Mesh, in.VirtualNode, in.ID)

	// The common case, a heartbeat that changes nothing: keep the lease
	// the watch saw alive, in one call.
	l.mu.Lock()
	seen, ok := l.known[k]
	l.mu.Unlock()
	if ok && seen.lease != 0 && seen.in.TTLSeconds == in.TTLSeconds && sameEndpoint(&seen.in, &in) {
		if _, err := l.client.KeepAliveOnce(ctx, seen.lease); err == nil {
			in.RegisteredAt = seen.in.RegisteredAt
			return in, nil
		} else if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return Instance{}, fmt.Errorf("register %s: renew lease: %w", in.ID, err)
		}
	}
	var kv *mvccpb.KeyValue
	var lease clientv3.LeaseID // granted already, or 0
	if !ok {
		// A first registration, as far as the watch knows: a lease, then
		// one transaction that writes the key if it does not exist and
		// reads it if it does (a registration through another replica
		// the watch has not shown yet).
		granted, err := l.client.Grant(ctx, int64(in.TTLSeconds))
		if err != nil {
			return Instance{}, fmt.Errorf("register %s: grant lease: %w", in.ID, err)
		}
		lease = granted.ID
		b, err := json.Marshal(in)
		if err != nil {
			l.revoke(ctx, lease)
			return Instance{}, fmt.Errorf("register %s: encode: %w", in.ID, err)
		}
		txn, err := l.client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, string(b), clientv3.WithLease(lease))).
			Else(clientv3.OpGet(k)).
			Commit()
		if err != nil {
			l.revoke(ctx, lease)
			return Instance{}, fmt.Errorf("register %s: write: %w", in.ID, err)
		}
		if txn.Succeeded {
			return in, nil
		}
		if rng := txn.Responses[0].GetResponseRange(); rng != nil && len(rng.Kvs) == 1 {
			kv = rng.Kvs[0]
		}
	} else {
		resp, err := l.client.Get(ctx, k)
		if err != nil {
			return Instance{}, fmt.Errorf("register %s: read: %w", in.ID, err)
		}
		if len(resp.Kvs) == 1 {
			kv = resp.Kvs[0]
		}
	}
	// The key exists: renew its lease, rewriting it if the endpoint
	// changed, when its TTL is the same.
	unused := func() {
		if lease != 0 {
			l.revoke(ctx, lease)
		}
	}
	if kv != nil {
		var old Instance
		if err := json.Unmarshal(kv.Value, &old); err == nil {
			in.RegisteredAt = old.RegisteredAt
			if kv.Lease != 0 && old.TTLSeconds == in.TTLSeconds {
				_, err := l.client.KeepAliveOnce(ctx, clientv3.LeaseID(kv.Lease))
				switch {
				case err == nil && sameEndpoint(&old, &in):
					unused()
					return in, nil
				case err == nil:
					if err := l.put(ctx, k, in, clientv3.LeaseID(kv.Lease), kv.ModRevision); err == nil {
						unused()
						return in, nil
					} else if !errors.Is(err, errRaced) {
						unused()
						return Instance{}, err
					}
				case !errors.Is(err, rpctypes.ErrLeaseNotFound):
					unused()
					return Instance{}, fmt.Errorf("register %s: renew lease: %w", in.ID, err)
				}
			}
		}
	}
	// A lease that is gone, a new TTL, or a race: write the key under a
	// new lease.
	if lease == 0 {
		granted, err := l.client.Grant(ctx, int64(in.TTLSeconds))
		if err != nil {
			return Instance{}, fmt.Errorf("register %s: grant lease: %w", in.ID, err)
		}
		lease = granted.ID
	}
	b, err := json.Marshal(in)
	if err != nil {
		l.revoke(ctx, lease)
		return Instance{}, fmt.Errorf("register %s: encode: %w", in.ID, err)
	}
	put, err := l.client.Put(ctx, k, string(b), clientv3.WithLease(lease), clientv3.WithPrevKV())
	if err != nil {
		l.revoke(ctx, lease)
		return Instance{}, fmt.Errorf("register %s: write: %w", in.ID, err)
	}
	// The key's old lease, if any, now holds nothing of ours.
	if prev := put.PrevKv; prev != nil && prev.Lease != 0 && prev.Lease != int64(lease) {
		l.revoke(ctx, clientv3.LeaseID(prev.Lease))
	}
	return in, nil
}

// revoke gives back a lease that holds nothing, even when ctx has ended.
func (l *Leased) revoke(ctx context.Context, id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = l.client.Revoke(ctx, id)
}

var errRaced = errors.New("changed concurrently")

// put rewrites an instance under its current lease if the key is still
// at modRev.
func (l *Leased) put(ctx context.Context, k string, in Instance, lease clientv3.LeaseID, modRev int64) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("register %s: encode: %w", in.ID, err)
	}
	resp, err := l.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", modRev)).
		Then(clientv3.OpPut(k, string(b), clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		return fmt.Errorf("register %s: write: %w", in.ID, err)
	}
	if !resp.Succeeded {
		return errRaced
	}
	return nil
}

// Deregister deletes an instance's key and revokes its lease.
func (l *Leased) Deregister(ctx context.Context, mesh, node, id string) error {
	resp, err := l.client.Delete(ctx, l.key(mesh, node, id), clientv3.WithPrevKV())
	if err != nil {
		return fmt.Errorf("deregister %s: %w", id, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("instance %s of %s/%s: %w", id, mesh, node, ErrNotFound)
	}
	if prev := resp.PrevKvs; len(prev) == 1 && prev[0].Lease != 0 {
		_, _ = l.client.Revoke(ctx, clientv3.LeaseID(prev[0].Lease))
	}
	return nil
}

// Ready is closed once the registry holds every instance etcd had when
// Run started.
func (l *Leased) Ready() <-chan struct{} { return l.ready }

// Run mirrors the instance keys into the registry until ctx ends: a full
// list, then a watch from the revision after it; a watch that fails (its
// revision compacted, its member cut off) lists again.
func (l *Leased) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		rev, err := l.list(ctx)
		if err != nil {
			l.log.Warn("registry: list instances", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		l.mu.Lock()
		if !l.readyOK {
			l.readyOK = true
			close(l.ready)
		}
		l.mu.Unlock()
		err = l.watch(ctx, rev+1)
		if ctx.Err() == nil {
			l.log.Warn("registry: instance watch ended; listing again", "err", err)
		}
	}
}

func (l *Leased) list(ctx context.Context) (int64, error) {
	resp, err := l.client.Get(ctx, l.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	all := make([]Instance, 0, len(resp.Kvs))
	known := make(map[string]leasedKey, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		in, err := decodeInstance(kv.Value)
		if err != nil {
			l.log.Warn("registry: skipping an undecodable instance", "key", string(kv.Key), "err", err)
			continue
		}
		all = append(all, in)
		known[string(kv.Key)] = leasedKey{in: in, lease: clientv3.LeaseID(kv.Lease)}
	}
	l.mu.Lock()
	l.known = known
	l.mu.Unlock()
	l.reg.replaceLeased(all)
	return resp.Header.Revision, nil
}

func (l *Leased) watch(ctx context.Context, from int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range l.client.Watch(wctx, l.prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithPrevKV()) {
		if wr.CompactRevision != 0 {
			return fmt.Errorf("revision %d was compacted", from)
		}
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE {
				l.mu.Lock()
				delete(l.known, string(ev.Kv.Key))
				l.mu.Unlock()
				if ev.PrevKv == nil {
					// Without the previous value the key alone names
					// the instance.
					if mesh, node, id, ok := l.parseKey(string(ev.Kv.Key)); ok {
						l.reg.dropLeased(mesh, node, id)
					}
					continue
				}
				if in, err := decodeInstance(ev.PrevKv.Value); err == nil {
					l.reg.dropLeased(in.Mesh, in.VirtualNode, in.ID)
				}
				continue
			}
			in, err := decodeInstance(ev.Kv.Value)
			if err != nil {
				l.log.Warn("registry: skipping an undecodable instance", "key", string(ev.Kv.Key), "err", err)
				continue
			}
			l.mu.Lock()
			l.known[string(ev.Kv.Key)] = leasedKey{in: in, lease: clientv3.LeaseID(ev.Kv.Lease)}
			l.mu.Unlock()
			l.reg.putLeased(in)
		}
	}
	return errors.New("watch channel closed")
}

func (l *Leased) parseKey(k string) (mesh, node, id string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(k, l.prefix), "/")
	if len(parts) != 3 {
		return "", "", "", false
	}
	var err error
	if mesh, err = url.PathUnescape(parts[0]); err != nil {
		return "", "", "", false
	}
	if node, err = url.PathUnescape(parts[1]); err != nil {
		return "", "", "", false
	}
	if id, err = url.PathUnescape(parts[2]); err != nil {
		return "", "", "", false
	}
	return mesh, node, id, true
}

func decodeInstance(b []byte) (Instance, error) {
	var in Instance
	if err := json.Unmarshal(b, &in); err != nil {
		return Instance{}, err
	}
	if err := in.Validate(); err != nil {
		return Instance{}, err
	}
	return in, nil
}

// putLeased stores an instance mirrored from etcd.
func (r *Registry) putLeased(in Instance) {
	k := key{in.Mesh, in.VirtualNode, in.ID}
	stored := in
	stored.Attributes = cloneMap(in.Attributes)
	stored.leased = true
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.instances[k]
	r.instances[k] = &stored
	if !ok || !sameEndpoint(old, &stored) {
		r.bumpLocked()
	}
}

// dropLeased removes an instance whose key etcd deleted.
func (r *Registry) dropLeased(mesh, node, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := key{mesh, node, id}
	if _, ok := r.instances[k]; ok {
		delete(r.instances, k)
		r.bumpLocked()
	}
}

// replaceLeased makes the registry hold exactly all (a full list).
func (r *Registry) replaceLeased(all []Instance) {
	next := make(map[key]*Instance, len(all))
	for _, in := range all {
		stored := in
		stored.Attributes = cloneMap(in.Attributes)
		stored.leased = true
		next[key{in.Mesh, in.VirtualNode, in.ID}] = &stored
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	same := len(next) == len(r.instances)
	for k, in := range next {
		if old, ok := r.instances[k]; !ok || !sameEndpoint(old, in) {
			same = false
		}
	}
	r.instances = next
	if !same {
		r.bumpLocked()
	}
}
