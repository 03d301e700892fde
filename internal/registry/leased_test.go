package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/meshlens/meshlens/internal/etcdtest"
)

// replica is one control plane's view of leased registrations: its own
// etcd client, registry and mirror.
type replica struct {
	client *clientv3.Client
	reg    *Registry
	leased *Leased
	stop   context.CancelFunc
}

func newReplica(t *testing.T, c *etcdtest.Cluster) *replica {
	t.Helper()
	cl, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	reg := New(nil)
	l := NewLeased(reg, cl, "/leased-test/", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	r := &replica{client: cl, reg: reg, leased: l, stop: func() { cancel(); <-done; _ = cl.Close() }}
	t.Cleanup(r.stop)
	select {
	case <-l.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("registry mirror not ready")
	}
	return r
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestLeasedRegistrationAcrossReplicas: a registration made through one
// replica is seen by every replica, renewed through another, and when
// its instance stops renewing it disappears on its lease's schedule even
// though the replica it registered through is gone.
func TestLeasedRegistrationAcrossReplicas(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a, b := newReplica(t, c), newReplica(t, c)
	ctx := context.Background()
	in := Instance{Mesh: "m", VirtualNode: "n", ID: "i-1", Address: "10.0.0.1", Port: 80, TTLSeconds: 2}

	got, err := a.leased.Register(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*replica{a, b} {
		waitUntil(t, "every replica to see the instance", 5*time.Second, func() bool {
			l := r.reg.List("m", "n")
			return len(l) == 1 && l[0].Address == "10.0.0.1"
		})
	}

	// Renewals through b keep it alive past its TTL, although a is gone.
	a.stop()
	for range 4 {
		time.Sleep(time.Second)
		again, err := b.leased.Register(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if !again.RegisteredAt.Equal(got.RegisteredAt) {
			t.Fatalf("a renewal moved registeredAt from %s to %s", got.RegisteredAt, again.RegisteredAt)
		}
	}
	if len(b.reg.List("m", "n")) != 1 {
		t.Fatal("a renewed instance disappeared")
	}
	// An endpoint change through a renewal is seen.
	moved := in
	moved.Port = 81
	if _, err := b.leased.Register(ctx, moved); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the new port", 5*time.Second, func() bool { l := b.reg.List("m", "n"); return len(l) == 1 && l[0].Port == 81 })

	// The instance dies: no more renewals. It goes within its TTL and
	// etcd's lease check (every 500ms), not later.
	gone := waitUntil(t, "the instance to expire", 6*time.Second, func() bool { return len(b.reg.List("m", "n")) == 0 })
	if gone < time.Second {
		t.Fatalf("the instance went after %s, before its 2s TTL could pass", gone)
	}
	t.Logf("expired %s after the last renewal (TTL 2s)", gone)

	// Deregistering through a replica deletes it everywhere.
	c2 := newReplica(t, c)
	if _, err := b.leased.Register(ctx, in); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "c2 to see it", 5*time.Second, func() bool { return len(c2.reg.List("m", "n")) == 1 })
	if err := c2.leased.Deregister(ctx, "m", "n", "i-1"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b to see the deregistration", 5*time.Second, func() bool { return len(b.reg.List("m", "n")) == 0 })
	if err := c2.leased.Deregister(ctx, "m", "n", "i-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second deregister = %v, want ErrNotFound", err)
	}
	if _, err := b.leased.Register(ctx, Instance{Mesh: "m", VirtualNode: "n", ID: "x", Address: "nope", Port: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad registration = %v, want ErrInvalid", err)
	}
}

// FuzzLeasedKey: an instance's etcd key parses back to its mesh, node
// and id whatever they hold, and any key parses without a crash.
func FuzzLeasedKey(f *testing.F) {
	f.Add("m", "n", "i-1", "/x/instances/m/n/i")
	f.Add("a/b", "%", "", "/x/instances/%zz/a/b")
	l := &Leased{prefix: "/x/instances/"}
	f.Fuzz(func(t *testing.T, mesh, node, id, raw string) {
		m, n, i, ok := l.parseKey(l.key(mesh, node, id))
		if !ok || m != mesh || n != node || i != id {
			t.Fatalf("key(%q, %q, %q) parses as %q %q %q %v", mesh, node, id, m, n, i, ok)
		}
		_, _, _, _ = l.parseKey(raw)
	})
}
