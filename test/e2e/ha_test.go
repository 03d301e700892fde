package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/apiclient"
	"github.com/meshlens/meshlens/internal/etcdtest"
)

const haMesh = `
kind: Mesh
name: ha
---
kind: VirtualNode
mesh: ha
name: client
spec:
  backends: [{virtualService: {virtualServiceName: svc.ha.local}}]
---
kind: VirtualNode
mesh: ha
name: a
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: ha.local, serviceName: a}}
---
kind: VirtualNode
mesh: ha
name: b
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: ha.local, serviceName: b}}
---
kind: VirtualNode
mesh: ha
name: lin
---
kind: VirtualRouter
mesh: ha
name: svc
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: VirtualService
mesh: ha
name: svc.ha.local
spec: {provider: {virtualRouter: {virtualRouterName: svc}}}
---
kind: Route
mesh: ha
virtualRouter: svc
name: default
spec:
  priority: 100
  httpRoute:
    match: {prefix: /}
    action: {weightedTargets: [{virtualNode: a, weight: 1}]}
`

// movingRoute sends /r<i> to b: a proxy that routes /r<i> to b has
// converged on change i.
func movingRoute(i int) string {
	return fmt.Sprintf(`
kind: Route
mesh: ha
virtualRouter: svc
name: moving
spec:
  priority: 1
  httpRoute:
    match: {prefix: /r%d}
    action: {weightedTargets: [{virtualNode: b, weight: 1}]}
`, i)
}

// haReplica is one control-plane replica process and its API client.
type haReplica struct {
	*server
	api *apiclient.Client
	id  string
}

// haCluster is three replicas on a three-member etcd cluster.
type haCluster struct {
	etcd     *etcdtest.Cluster
	replicas []*haReplica
	dead     atomic.Int32 // bitmask of killed replicas
}

func (h *haCluster) live() []*haReplica {
	var out []*haReplica
	for i, r := range h.replicas {
		if h.dead.Load()&(1<<i) == 0 {
			out = append(out, r)
		}
	}
	return out
}

func (h *haCluster) any() *haReplica {
	l := h.live()
	return l[rand.IntN(len(l))]
}

func (h *haCluster) xdsAddrs() string {
	var a []string
	for _, r := range h.replicas {
		a = append(a, r.xds)
	}
	return strings.Join(a, ",")
}

func (h *haCluster) apiURLs() string {
	var a []string
	for _, r := range h.replicas {
		a = append(a, r.URL())
	}
	return strings.Join(a, ",")
}

// registerVia registers an instance through one replica's API.
func registerVia(ctx context.Context, r *haReplica, node, id string, port, ttl int) error {
	_, err := r.api.Register(ctx, "ha", node, id, restv1.Instance{Address: "127.0.0.1", Port: port, TTLSeconds: ttl})
	return err
}

// linState is the porcupine model's register: the "v" tag of the
// virtual node lin, read and written through any replica.
type linInput struct {
	write bool
	value string
}

type linOutput struct {
	value   string
	unknown bool // a write whose outcome the client could not learn
}

var linModel = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(linInput), output.(linOutput)
		if in.write {
			return true, in.value
		}
		return out.value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		if in.write {
			return fmt.Sprintf("write(%s) unknown=%v", in.value, out.unknown)
		}
		return fmt.Sprintf("read() -> %q", out.value)
	},
}

// definitelyFailed: the request was refused before the store could have
// committed it (nothing listened, or the API refused it).
func definitelyFailed(err error) bool {
	var apiErr *restv1.Error
	if errors.As(err, &apiErr) && apiErr.Status >= 400 && apiErr.Status < 500 {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

func linTagDoc(v string) string {
	return fmt.Sprintf("kind: VirtualNode\nmesh: ha\nname: lin\ntags: [{key: v, value: %q}]\n", v)
}

func readLin(ctx context.Context, r *haReplica) (string, error) {
	res, err := r.api.Get(ctx, v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: "ha", Name: "lin"})
	if err != nil {
		return "", err
	}
	for _, tg := range res.Tags {
		if tg.Key == "v" {
			return tg.Value, nil
		}
	}
	return "", nil
}

// TestHighAvailability runs three control-plane replicas on a real
// three-member etcd cluster, with sidecars serving steady traffic and a
// stream of applies, registrations and reads through random replicas.
// It kills one etcd member, then one replica, with SIGKILL, and checks:
// no request through the mesh fails, every acknowledged write is kept,
// every proxy converges on the last change, the history of the
// concurrent applies and reads is linearizable (porcupine), every proxy
// is listed by every live replica with the replica holding it, and a
// registration made through the killed replica expires on schedule.
func TestHighAvailability(t *testing.T) {
	start := time.Now()
	h := &haCluster{etcd: etcdtest.Start(t, 3)}
	store := "etcd://" + strings.Join(trimScheme(h.etcd.Endpoints()), ",")
	var wg sync.WaitGroup
	h.replicas = make([]*haReplica, 3)
	for i := range h.replicas {
		wg.Go(func() {
			id := fmt.Sprintf("r%d", i)
			s := startServerArgs(t, t.TempDir(), "--store", store, "--replica-id", id, "--replica-ttl", "2s")
			api, err := apiclient.New(s.URL(), &http.Client{Timeout: 5 * time.Second})
			if err != nil {
				t.Error(err)
				return
			}
			h.replicas[i] = &haReplica{server: s, api: api, id: id}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := h.replicas[0].api.Apply(ctx, []byte(haMesh+"---"+movingRoute(0)), false); err != nil {
		t.Fatal(err)
	}

	// Two apps, registered by heartbeats through random replicas.
	appA, appB := startEchoApp(t, "a"), startEchoApp(t, "b")
	hbCtx, hbStop := context.WithCancel(ctx)
	var hbWG sync.WaitGroup
	heartbeat := func(node, id string, port int) {
		hbWG.Go(func() {
			for hbCtx.Err() == nil {
				cctx, ccancel := context.WithTimeout(hbCtx, time.Second)
				_ = registerVia(cctx, h.any(), node, id, port, 6)
				ccancel()
				select {
				case <-hbCtx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		})
	}
	heartbeat("a", "a-1", appA.addrPort())
	heartbeat("b", "b-1", appB.addrPort())

	// Three client sidecars given every replica.
	var proxies []*proxyProc
	var egress []string
	for range 3 {
		p := startProxy(t, h.replicas[0].server, "mesh/ha/virtualNode/client", true,
			"--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false",
			"--xds-addr", h.xdsAddrs(), "--server", h.apiURLs())
		proxies = append(proxies, p)
		egress = append(egress, p.listenerAddr(t, "lds_egress_*"))
	}
	for i, e := range egress {
		eventually(t, 15*time.Second, fmt.Sprintf("sidecar %d routes to a and b", i), func() error {
			for path, want := range map[string]string{"/": "a ", "/r0": "b "} {
				if got, err := getVia(e, path); err != nil || !strings.HasPrefix(got, want) {
					return fmt.Errorf("%s: %q %v", path, got, err)
				}
			}
			return nil
		})
	}

	// Steady traffic: no request through the mesh may fail.
	trafficCtx, trafficStop := context.WithCancel(ctx)
	var trafficWG sync.WaitGroup
	var sent, failed atomic.Int64
	var firstFail atomic.Value
	for _, e := range egress {
		trafficWG.Go(func() {
			for trafficCtx.Err() == nil {
				got, err := getVia(e, "/")
				sent.Add(1)
				if err != nil || !strings.HasPrefix(got, "a ") {
					failed.Add(1)
					firstFail.CompareAndSwap(nil, fmt.Sprintf("%q %v", got, err))
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}

	// Writers and readers of lin (the linearizability history), and
	// creators of distinct nodes (no acknowledged write lost), through
	// random replicas.
	var histMu sync.Mutex
	var history []porcupine.Operation
	var acked []string
	var routeMu sync.Mutex
	lastRoute := 0
	opsCtx, opsStop := context.WithCancel(ctx)
	var opsWG sync.WaitGroup
	for c := range 4 {
		opsWG.Go(func() {
			for i := 0; opsCtx.Err() == nil; i++ {
				r := h.any()
				cctx, ccancel := context.WithTimeout(opsCtx, 3*time.Second)
				call := time.Now().UnixNano()
				if rand.IntN(2) == 0 {
					v := fmt.Sprintf("c%d-%d", c, i)
					_, err := r.api.Apply(cctx, []byte(linTagDoc(v)), false)
					ret := time.Now().UnixNano()
					op := porcupine.Operation{ClientId: c, Input: linInput{write: true, value: v}, Call: call, Return: ret}
					switch {
					case err == nil:
						op.Output = linOutput{}
					case definitelyFailed(err):
						ccancel()
						continue
					default:
						// Timed out, cut off or cancelled: it may have
						// been committed, at any time from its call on.
						op.Output, op.Return = linOutput{unknown: true}, math.MaxInt64
					}
					histMu.Lock()
					history = append(history, op)
					histMu.Unlock()
				} else {
					v, err := readLin(cctx, r)
					ret := time.Now().UnixNano()
					if err == nil {
						histMu.Lock()
						history = append(history, porcupine.Operation{ClientId: c, Input: linInput{}, Call: call, Output: linOutput{value: v}, Return: ret})
						histMu.Unlock()
					}
				}
				ccancel()
				// Every few ops: a node that must survive, or a route
				// change every proxy must converge on.
				if i%3 == 0 {
					cctx, ccancel := context.WithTimeout(opsCtx, 3*time.Second)
					name := fmt.Sprintf("n-c%d-%d", c, i)
					if _, err := r.api.Apply(cctx, []byte("kind: VirtualNode\nmesh: ha\nname: "+name+"\n"), false); err == nil {
						histMu.Lock()
						acked = append(acked, name)
						histMu.Unlock()
					}
					ccancel()
				}
				if i%4 == 0 && c == 0 {
					routeMu.Lock()
					next := lastRoute + 1
					cctx, ccancel := context.WithTimeout(opsCtx, 3*time.Second)
					if _, err := r.api.Apply(cctx, []byte(movingRoute(next)), false); err == nil {
						lastRoute = next
					}
					ccancel()
					routeMu.Unlock()
				}
			}
		})
	}

	// A registration through replica r2, renewed nowhere after r2 dies.
	victim := h.replicas[2]
	const doomedTTL = 3
	time.Sleep(2 * time.Second)

	// Kill one etcd member (SIGKILL) under load.
	h.etcd.Members[rand.IntN(3)].Kill()
	time.Sleep(3 * time.Second)

	if err := registerVia(ctx, victim, "lin", "doomed", 1, doomedTTL); err != nil {
		t.Fatalf("register through %s: %v", victim.id, err)
	}
	registered := time.Now()
	// Kill one replica (SIGKILL): the one the doomed instance talked to.
	h.dead.Store(1 << 2)
	victim.kill()
	eventually(t, 5*time.Second, "the doomed instance on a live replica", func() error {
		ins, err := h.replicas[0].api.Instances(ctx, "ha", "lin")
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ins, func(in restv1.Instance) bool { return in.ID == "doomed" }) {
			return errors.New("not listed")
		}
		return nil
	})
	eventually(t, 10*time.Second, "the doomed instance to expire", func() error {
		ins, err := h.replicas[1].api.Instances(ctx, "ha", "lin")
		if err != nil {
			return err
		}
		if slices.ContainsFunc(ins, func(in restv1.Instance) bool { return in.ID == "doomed" }) {
			return errors.New("still listed")
		}
		return nil
	})
	gone := time.Since(registered)
	t.Logf("a registration made through the killed replica expired %s after it (TTL %ds)", gone.Round(10*time.Millisecond), doomedTTL)
	if gone < doomedTTL*time.Second-500*time.Millisecond || gone > doomedTTL*time.Second+3*time.Second {
		t.Errorf("the registration expired %s after it was made; its TTL is %ds", gone, doomedTTL)
	}

	time.Sleep(2 * time.Second)
	opsStop()
	opsWG.Wait()

	// Every proxy converges on the last route change.
	routeMu.Lock()
	final := lastRoute
	routeMu.Unlock()
	if final < 2 {
		t.Errorf("only %d route changes were acknowledged", final)
	}
	for i, e := range egress {
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := getVia(e, fmt.Sprintf("/r%d", final))
			if err == nil && strings.HasPrefix(got, "b ") {
				break
			}
			if time.Now().After(deadline) {
				var diag strings.Builder
				for _, r := range h.live() {
					ps, perr := r.api.Proxies(ctx)
					fmt.Fprintf(&diag, "replica %s proxies: %+v %v\nlog tail: %s\n", r.id, ps, perr, tailOf(r.logs.String(), 3000))
				}
				t.Fatalf("sidecar %d did not converge on route change %d within 10s: %q %v\nsidecar log: %s\n%s",
					i, final, got, err, tailOf(proxies[i].logs.String(), 3000), diag.String())
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	trafficStop()
	trafficWG.Wait()
	hbStop()
	hbWG.Wait()
	t.Logf("traffic: %d requests through the mesh, %d failed", sent.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests through the mesh failed; first: %v", failed.Load(), sent.Load(), firstFail.Load())
	}

	// No acknowledged write lost, on any live replica.
	for _, r := range h.live() {
		nodes, err := r.api.List(ctx, v1alpha1.KindVirtualNode, "ha", "")
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, n := range nodes {
			have[n.Name] = true
		}
		for _, name := range acked {
			if !have[name] {
				t.Errorf("replica %s lost the acknowledged creation of %s", r.id, name)
			}
		}
	}
	t.Logf("%d acknowledged creations, %d operations in the linearizability history", len(acked), len(history))

	res, info := porcupine.CheckOperationsVerbose(linModel, history, 20*time.Second)
	if res != porcupine.Ok {
		// Kept after the test, for reading in a browser.
		path := filepath.Join(os.TempDir(), fmt.Sprintf("meshlens-ha-history-%d.html", os.Getpid()))
		_ = porcupine.VisualizePath(linModel, info, path)
		t.Errorf("the history of applies and reads is not linearizable (%s); visualization: %s", res, path)
	}

	// Every live replica lists every proxy, with a live replica holding
	// its stream.
	for _, r := range h.live() {
		eventually(t, 10*time.Second, "replica "+r.id+" lists every proxy", func() error {
			ps, err := r.api.Proxies(ctx)
			if err != nil {
				return err
			}
			n := 0
			for _, p := range ps {
				if p.ID == "mesh/ha/virtualNode/client" {
					if p.Replica == victim.id || p.Replica == "" {
						return fmt.Errorf("a proxy held by %q", p.Replica)
					}
					n += p.Streams
				}
			}
			if n != len(proxies) {
				return fmt.Errorf("%d client proxy streams listed, want %d: %+v", n, len(proxies), ps)
			}
			return nil
		})
	}
	t.Logf("test time %s", time.Since(start).Round(100*time.Millisecond))
}

func trimScheme(eps []string) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = strings.TrimPrefix(e, "http://")
	}
	return out
}

var (
	haClientsMu sync.Mutex
	haClients   = map[string]*http.Client{}
)

// getVia sends GET http://svc.ha.local:8080<path> through a sidecar's
// egress and returns the body.
func getVia(egress, path string) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://svc.ha.local:8080"+path, nil)
	haClientsMu.Lock()
	c := haClients[egress]
	if c == nil {
		c = proxyClient(egress)
		haClients[egress] = c
	}
	haClientsMu.Unlock()
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
