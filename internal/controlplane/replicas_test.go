package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/apiclient"
	"github.com/meshlens/meshlens/internal/etcdtest"
	"github.com/meshlens/meshlens/internal/store"
	"google.golang.org/protobuf/proto"
)

// replicaCP is one control-plane replica on a shared etcd store, which a
// test can stop on its own.
type replicaCP struct {
	*runningCP
	res  *fakeResolver
	stop func()
}

func startReplica(t *testing.T, c *etcdtest.Cluster, id string, with ...func(*Config)) *replicaCP {
	t.Helper()
	res := newFakeResolver()
	res.set("db.example", []string{"192.0.2.10"})
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{
		DataDir: t.TempDir(), APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0",
		Etcd:      &store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: "/replicas-test/"},
		ReplicaID: id, ReplicaTTL: 2 * time.Second,
		Resolver: res, DNSInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, w := range with {
		w(&cfg)
	}
	s, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("replica %s: %v", id, err)
			}
		}
	}
	t.Cleanup(stop)
	api, err := apiclient.New("http://"+s.APIAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &replicaCP{runningCP: &runningCP{s: s, api: api}, res: res, stop: stop}
}

func (r *replicaCP) lookups() int {
	r.res.mu.Lock()
	defer r.res.mu.Unlock()
	return r.res.lookups["db.example"]
}

func healthOf(t *testing.T, r *replicaCP) healthReport {
	t.Helper()
	resp, err := http.Get("http://" + r.s.APIAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h healthReport
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestReplicasShareStateAndElectOneLeader: two replicas on one etcd
// store serve the same resources; DNS re-resolution runs on the elected
// leader only and every replica uses its answers; when the leader stops,
// the other replica takes over the resolving; /healthz reports the store
// and the peers; /v1/proxies on one replica lists a proxy connected to the
// other, naming the replica that holds its stream.
func TestReplicasShareStateAndElectOneLeader(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c, "a")
	b := startReplica(t, c, "b")

	a.apply(t, `
kind: Mesh
name: m
---
kind: VirtualNode
mesh: m
name: db
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: db.example}}
`)
	// Both serve the write made through a, and both proxies get the
	// leader's DNS answer.
	eventually(t, 10*time.Second, func() string {
		for _, r := range []*replicaCP{a, b} {
			if got := r.describedEndpoints(t, "m", "db"); !slices.Equal(got, []string{"192.0.2.10:9080 healthy"}) {
				return fmt.Sprintf("replica %s: endpoints of db %v", r.s.cluster.self.ID, got)
			}
		}
		return ""
	})
	leader, follower := a, b
	if b.s.cluster.isLeader() {
		leader, follower = b, a
	}
	if !leader.s.cluster.isLeader() || follower.s.cluster.isLeader() {
		t.Fatalf("leaders: a=%v b=%v, want exactly one", a.s.cluster.isLeader(), b.s.cluster.isLeader())
	}
	time.Sleep(300 * time.Millisecond) // a few resolver intervals
	if n := follower.lookups(); n != 0 {
		t.Fatalf("the follower resolved db.example %d times; only the leader resolves", n)
	}
	if leader.lookups() == 0 {
		t.Fatal("the leader never resolved db.example")
	}

	h := healthOf(t, follower)
	if h.Status != "ok" || h.Store.Kind != "etcd" || !h.Store.OK || h.Leader || len(h.Peers) != 2 {
		t.Fatalf("follower /healthz = %+v", h)
	}
	if !slices.ContainsFunc(h.Peers, func(p peerInfo) bool { return p.Leader && p.ID == leader.s.cluster.self.ID }) {
		t.Fatalf("peers %+v do not mark the leader %s", h.Peers, leader.s.cluster.self.ID)
	}

	// A proxy on the leader is listed by the follower.
	eds := dialEDS(t, leader.s.XDSAddr(), "mesh/m/virtualNode/db")
	_ = eds
	eventually(t, 5*time.Second, func() string {
		ps, err := follower.api.Proxies(context.Background())
		if err != nil {
			return err.Error()
		}
		if len(ps) != 1 || ps[0].ID != "mesh/m/virtualNode/db" || ps[0].Replica != leader.s.cluster.self.ID {
			return fmt.Sprintf("follower lists proxies %+v", ps)
		}
		return ""
	})

	// The leader stops: the follower takes over and follows a new
	// answer.
	leader.stop()
	follower.res.set("db.example", []string{"192.0.2.11"})
	eventually(t, 10*time.Second, func() string {
		if got := follower.describedEndpoints(t, "m", "db"); !slices.Equal(got, []string{"192.0.2.11:9080 healthy"}) {
			return fmt.Sprintf("after the leader stopped: endpoints of db %v (leader now: %v)", got, follower.s.cluster.isLeader())
		}
		return ""
	})
	if h := healthOf(t, follower); !h.Leader || len(h.Peers) != 1 {
		t.Fatalf("after the leader stopped, /healthz = %+v", h)
	}
}

// TestReplicasAnswerTracesForTheWholeMesh: spans of one trace that
// reached two replicas' trace stores (their proxies report to the
// replica they are connected to) are answered as one trace, with both
// services, by either replica's Jaeger query API.
func TestReplicasAnswerTracesForTheWholeMesh(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c, "a")
	b := startReplica(t, c, "b")
	post := func(r *replicaCP, service string, span byte) {
		body, _ := proto.Marshal(otlpRequest(service, 7, span))
		resp, err := http.Post("http://"+r.s.APIAddr()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /v1/traces: %s", resp.Status)
		}
	}
	post(a, "front", 1)
	post(b, "back", 2)
	id := strings.Repeat("07", 16)
	eventually(t, 5*time.Second, func() string {
		for _, r := range []*replicaCP{a, b} {
			code, v := jaegerGET(t, "http://"+r.s.APIAddr()+"/api/traces/"+id)
			data, _ := v["data"].([]any)
			if code != http.StatusOK || len(data) != 1 {
				return fmt.Sprintf("replica %s: %d %v", r.s.cluster.self.ID, code, v)
			}
			tr := data[0].(map[string]any)
			spans, _ := tr["spans"].([]any)
			procs, _ := tr["processes"].(map[string]any)
			if len(spans) != 2 || len(procs) != 2 {
				return fmt.Sprintf("replica %s: %d spans, %d processes", r.s.cluster.self.ID, len(spans), len(procs))
			}
			_, sv := jaegerGET(t, "http://"+r.s.APIAddr()+"/api/services")
			if got := fmt.Sprint(sv["data"]); got != "[back front]" {
				return fmt.Sprintf("replica %s: services %s", r.s.cluster.self.ID, got)
			}
		}
		return ""
	})
	// ?scope=local is this replica's store alone.
	if _, v := jaegerGET(t, "http://"+a.s.APIAddr()+"/api/services?scope=local"); fmt.Sprint(v["data"]) != "[front]" {
		t.Fatalf("local services of a: %v", v["data"])
	}
	if code, _ := jaegerGET(t, "http://"+a.s.APIAddr()+"/api/traces/"+strings.Repeat("08", 16)); code != http.StatusNotFound {
		t.Fatalf("a trace no replica has: %d", code)
	}
}
