package controlplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/apiclient"
	"github.com/meshlens/meshlens/internal/auth"
)

// fakeResolver answers dns service discovery from a map the test changes.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]string
	lookups map[string]int
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{answers: map[string][]string{}, lookups: map[string]int{}}
}

func (f *fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups[host]++
	a, ok := f.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(a), nil
}

func (f *fakeResolver) set(host string, addrs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[host] = slices.Clone(addrs)
}

// runningCP is a control plane serving on loopback ports for one test.
type runningCP struct {
	s   *Server
	api *apiclient.Client
}

// startCP starts a control plane; setup runs before it serves.
func startCP(t testing.TB, cfg Config, setup ...func(*Server)) *runningCP {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg.DataDir = t.TempDir()
	cfg.APIAddr, cfg.XDSAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for _, f := range setup {
		f(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	api, err := apiclient.New("http://"+s.APIAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &runningCP{s: s, api: api}
}

func (cp *runningCP) apply(t testing.TB, doc string) {
	t.Helper()
	if _, err := cp.api.Apply(context.Background(), []byte(doc), false); err != nil {
		t.Fatalf("apply: %v\n%s", err, doc)
	}
}

// describedEndpoints returns what describe lists as a virtual node's
// endpoints, as sorted "address port health" strings.
func (cp *runningCP) describedEndpoints(t testing.TB, mesh, node string) []string {
	t.Helper()
	d, err := cp.api.Describe(context.Background(), v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: mesh, Name: node})
	if err != nil {
		t.Fatalf("describe %s/%s: %v", mesh, node, err)
	}
	out := []string{}
	for _, e := range d.Endpoints {
		out = append(out, endpointString(e.Address, e.Port, e.Healthy))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func endpointString(addr string, port uint32, healthy bool) string {
	h := "healthy"
	if !healthy {
		h = "unhealthy"
	}
	return net.JoinHostPort(addr, strconv.FormatUint(uint64(port), 10)) + " " + h
}

// edsClient plays an Envoy that only wants clusters and their endpoints:
// one ADS stream, CDS wildcard, EDS for every EDS cluster, every response
// ACKed. It keeps the last load assignment of each cluster.
type edsClient struct {
	mu       sync.Mutex
	clas     map[string]*endpointv3.ClusterLoadAssignment
	err      error
	received int       // responses received
	acked    time.Time // when the latest was ACKed
}

// lastAck returns how many responses the client received and when it
// ACKed the latest.
func (c *edsClient) lastAck() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received, c.acked
}

func dialEDS(t testing.TB, addr, nodeID string) *edsClient {
	t.Helper()
	return dialEDSWithToken(t, addr, nodeID, "")
}

// dialEDSWithToken is dialEDS with a bearer token on the stream.
func dialEDSWithToken(t testing.TB, addr, nodeID, token string) *edsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		conn.Close()
		t.Fatal(err)
	}
	c := &edsClient{clas: map[string]*endpointv3.ClusterLoadAssignment{}}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; conn.Close() })
	node := &corev3.Node{Id: nodeID, Cluster: "test", UserAgentName: "envoy"}
	go func() {
		defer close(done)
		err := c.run(stream, node)
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
	}()
	return c
}

func (c *edsClient) run(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, node *corev3.Node) error {
	send := func(typeURL string, names []string, version, nonce string) error {
		err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typeURL, ResourceNames: names, VersionInfo: version, ResponseNonce: nonce})
		if nonce != "" {
			c.mu.Lock()
			c.received++
			c.acked = time.Now()
			c.mu.Unlock()
		}
		return err
	}
	if err := send(resource.ClusterType, nil, "", ""); err != nil {
		return err
	}
	var edsNames []string
	var edsVersion, edsNonce string
	for {
		r, err := stream.Recv()
		if err != nil {
			return err
		}
		switch r.TypeUrl {
		case resource.ClusterType:
			var want []string
			for _, a := range r.Resources {
				cl := &clusterv3.Cluster{}
				if err := a.UnmarshalTo(cl); err != nil {
					return err
				}
				if cl.GetType() == clusterv3.Cluster_EDS {
					want = append(want, cl.Name)
				}
			}
			slices.Sort(want)
			if err := send(resource.ClusterType, nil, r.VersionInfo, r.Nonce); err != nil {
				return err
			}
			if !slices.Equal(want, edsNames) {
				edsNames = want
				if err := send(resource.EndpointType, edsNames, edsVersion, edsNonce); err != nil {
					return err
				}
			}
		case resource.EndpointType:
			got := map[string]*endpointv3.ClusterLoadAssignment{}
			for _, a := range r.Resources {
				cla := &endpointv3.ClusterLoadAssignment{}
				if err := a.UnmarshalTo(cla); err != nil {
					return err
				}
				got[cla.ClusterName] = cla
			}
			c.mu.Lock()
			c.clas = got
			c.mu.Unlock()
			edsVersion, edsNonce = r.VersionInfo, r.Nonce
			if err := send(resource.EndpointType, edsNames, edsVersion, edsNonce); err != nil {
				return err
			}
		default:
			if err := send(r.TypeUrl, nil, r.VersionInfo, r.Nonce); err != nil {
				return err
			}
		}
	}
}

// endpoints returns the endpoints the client holds for a cluster, as
// describedEndpoints spells them, and whether it holds the cluster.
func (c *edsClient) endpoints(cluster string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cla, ok := c.clas[cluster]
	if !ok {
		return nil, false
	}
	out := []string{}
	for _, l := range cla.Endpoints {
		for _, e := range l.LbEndpoints {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, endpointString(sa.GetAddress(), sa.GetPortValue(), e.HealthStatus == corev3.HealthStatus_HEALTHY))
		}
	}
	slices.Sort(out)
	return out, true
}

func (c *edsClient) streamErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// eventually polls cond until it returns "" or the deadline passes, then
// fails with its last answer.
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// converged reports "" when the client's endpoints of node's cluster on
// port 9080 equal what describe lists for node, or what differs.
func converged(t testing.TB, cp *runningCP, c *edsClient, mesh, node string) string {
	if err := c.streamErr(); err != nil {
		t.Fatalf("xds stream of a %s client: %v", mesh, err)
	}
	want := cp.describedEndpoints(t, mesh, node)
	cluster := fmt.Sprintf("cds_egress_%s_%s_http_9080", mesh, node)
	got, ok := c.endpoints(cluster)
	if !ok {
		return fmt.Sprintf("the client has no cluster %s", cluster)
	}
	if !slices.Equal(got, want) {
		return fmt.Sprintf("%s/%s: the proxy has %v, describe lists %v", mesh, node, got, want)
	}
	return ""
}

// tokenStore opens an empty token store in the test's directory.
func tokenStore(t testing.TB) *auth.Store {
	t.Helper()
	s, err := auth.Open(filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newToken creates a token of spec in s and returns its secret.
func newToken(t testing.TB, s *auth.Store, spec auth.Spec) string {
	t.Helper()
	tok, _, err := s.Create(spec)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
