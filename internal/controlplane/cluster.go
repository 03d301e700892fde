package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultReplicaTTL is the etcd session TTL of a replica: a replica that
// dies without closing its session leaves the peer list, and gives up
// leadership, this long after its last keep-alive.
const DefaultReplicaTTL = 5 * time.Second

// cluster is this replica's membership of a set of control-plane replicas
// sharing an etcd store: a key per replica (PREFIX replicas/ID, holding
// its addresses, under its session's lease) by which the replicas find
// each other, and an election (PREFIX leader) whose winner does the work
// that must run once.
type cluster struct {
	client *clientv3.Client
	prefix string
	self   peerInfo
	ttl    time.Duration
	log    *slog.Logger

	leader atomic.Bool
	// onLead runs, with a context that ends when leadership is lost,
	// each time this replica becomes the leader.
	onLead func(ctx context.Context)

	mu      sync.Mutex
	elected chan struct{} // closed and replaced at each change of leadership
}

// peerInfo is one replica as the others find it.
type peerInfo struct {
	ID  string `json:"id"`
	API string `json:"api"` // host:port of its REST API
	// Scheme is how to call API: "https" when it serves TLS, "http" (or
	// empty, as replicas that predate it wrote) when not.
	Scheme  string    `json:"scheme,omitempty"`
	XDS     string    `json:"xds"`
	Started time.Time `json:"started"`
	Leader  bool      `json:"leader,omitempty"`
}

func newCluster(client *clientv3.Client, prefix string, self peerInfo, ttl time.Duration, log *slog.Logger) *cluster {
	if ttl <= 0 {
		ttl = DefaultReplicaTTL
	}
	return &cluster{client: client, prefix: prefix, self: self, ttl: ttl, log: log, elected: make(chan struct{})}
}

func (c *cluster) peerKey(id string) string { return c.prefix + "replicas/" + id }

// isLeader reports whether this replica holds the leadership now.
func (c *cluster) isLeader() bool { return c.leader.Load() }

// run keeps this replica registered and campaigning until ctx ends: one
// etcd session at a time; when a session is lost (the replica was cut
// off longer than its TTL) it starts a new one.
func (c *cluster) run(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("replica session ended; starting a new one", "replica", c.self.ID, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (c *cluster) session(ctx context.Context) error {
	sess, err := concurrency.NewSession(c.client, concurrency.WithTTL(max(1, int(c.ttl/time.Second))), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("new session: %w", err)
	}
	defer func() {
		// Closing revokes the lease: a replica that stops cleanly
		// leaves the peer list and the leadership at once.
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = c.client.Revoke(cctx, sess.Lease())
		_ = sess.Close()
	}()
	b, err := json.Marshal(c.self)
	if err != nil {
		return err
	}
	if _, err := c.client.Put(ctx, c.peerKey(c.self.ID), string(b), clientv3.WithLease(sess.Lease())); err != nil {
		return fmt.Errorf("register replica: %w", err)
	}
	el := concurrency.NewElection(sess, c.prefix+"leader")
	campaign := make(chan error, 1)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { campaign <- el.Campaign(cctx, c.self.ID) }()
	select {
	case err := <-campaign:
		if err != nil {
			return fmt.Errorf("campaign: %w", err)
		}
	case <-sess.Done():
		return fmt.Errorf("session lease %x expired", sess.Lease())
	case <-ctx.Done():
		return ctx.Err()
	}
	c.log.Info("replica elected leader", "replica", c.self.ID)
	lctx, lcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if c.onLead != nil {
		wg.Go(func() { c.onLead(lctx) })
	}
	c.setLeader(true)
	defer func() {
		c.setLeader(false)
		lcancel()
		wg.Wait()
	}()
	select {
	case <-sess.Done():
		return fmt.Errorf("session lease %x expired: leadership lost", sess.Lease())
	case <-ctx.Done():
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer rcancel()
		_ = el.Resign(rctx)
		return ctx.Err()
	}
}

func (c *cluster) setLeader(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader.Store(v)
	close(c.elected)
	c.elected = make(chan struct{})
}

// peers lists the live replicas (their keys are held by live sessions),
// this one included, sorted by ID, marking the leader.
func (c *cluster) peers(ctx context.Context) ([]peerInfo, error) {
	resp, err := c.client.Get(ctx, c.prefix+"replicas/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	leader := ""
	if lr, err := c.client.Get(ctx, c.prefix+"leader/", clientv3.WithFirstCreate()...); err == nil && len(lr.Kvs) == 1 {
		leader = string(lr.Kvs[0].Value)
	}
	out := make([]peerInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var p peerInfo
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			continue
		}
		p.Leader = p.ID == leader
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
