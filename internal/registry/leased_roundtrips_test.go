package registry

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshlens/meshlens/internal/etcdtest"
)

// countingKV and countingLease count the calls to etcd a registration
// makes (each one round trip).
type countingKV struct {
	clientv3.KV
	n *atomic.Int32
}

func (c countingKV) Get(ctx context.Context, k string, o ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	c.n.Add(1)
	return c.KV.Get(ctx, k, o...)
}

func (c countingKV) Put(ctx context.Context, k, v string, o ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	c.n.Add(1)
	return c.KV.Put(ctx, k, v, o...)
}

func (c countingKV) Txn(ctx context.Context) clientv3.Txn {
	c.n.Add(1)
	return c.KV.Txn(ctx)
}

type countingLease struct {
	clientv3.Lease
	n *atomic.Int32
}

func (c countingLease) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	c.n.Add(1)
	return c.Lease.Grant(ctx, ttl)
}

func (c countingLease) KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	c.n.Add(1)
	return c.Lease.KeepAliveOnce(ctx, id)
}

func (c countingLease) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	c.n.Add(1)
	return c.Lease.Revoke(ctx, id)
}

// TestFirstLeasedRegistrationTakesTwoRoundTrips: a first registration is
// a lease grant and one transaction (write the key if it does not
// exist), not a read, a grant and a write; a heartbeat is one keep-alive.
// A registration of a key that exists but that this replica has not seen
// keeps the key's lease and registeredAt, and gives back the lease it
// granted.
func TestFirstLeasedRegistrationTakesTwoRoundTrips(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := newReplica(t, c)
	var calls atomic.Int32
	a.client.KV = countingKV{a.client.KV, &calls}
	a.client.Lease = countingLease{a.client.Lease, &calls}
	ctx := context.Background()
	in := Instance{Mesh: "m", VirtualNode: "n", ID: "i-1", Address: "10.0.0.1", Port: 80, TTLSeconds: 30}
	first, err := a.leased.Register(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("a first registration took %d calls to etcd, want 2 (grant, txn)", n)
	}
	waitUntil(t, "the watch to show the instance", 5*time.Second, func() bool { return len(a.reg.List("m", "n")) == 1 })
	calls.Store(0)
	if _, err := a.leased.Register(ctx, in); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("a heartbeat took %d calls to etcd, want 1 (keep-alive)", n)
	}

	// A replica whose watch has not shown the key yet.
	unseen := NewLeased(New(nil), a.client, "/leased-test/", nil)
	before, err := a.client.Get(ctx, "/leased-test/instances/m/n/i-1")
	if err != nil || len(before.Kvs) != 1 {
		t.Fatalf("read the key: %v", err)
	}
	again, err := unseen.Register(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !again.RegisteredAt.Equal(first.RegisteredAt) {
		t.Fatalf("registeredAt moved from %s to %s", first.RegisteredAt, again.RegisteredAt)
	}
	after, err := a.client.Get(ctx, "/leased-test/instances/m/n/i-1")
	if err != nil || len(after.Kvs) != 1 || after.Kvs[0].Lease != before.Kvs[0].Lease || after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
		t.Fatalf("the key changed: before %v, after %v (%v)", before.Kvs, after.Kvs, err)
	}
	leases, err := a.client.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Leases) != 1 {
		t.Fatalf("%d leases, want the instance's only (the one granted for nothing given back)", len(leases.Leases))
	}
}
