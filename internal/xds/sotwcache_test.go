package xds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// cacheModel drives go-control-plane's snapshot cache in ADS mode (the
// reference) and the state-of-the-world cache with the same random
// operations, as go-control-plane's ordered ADS server drives a cache, and
// checks that every stream gets the same responses from both.
type cacheModel struct {
	t       *testing.T
	r       *rand.Rand
	ref     cache.SnapshotCache
	got     *sotwCache
	nodes   []string
	streams []*modelStream
	// snaps is a pool of snapshots, so that versions repeat.
	snaps []*cache.Snapshot
	steps []string // for the failure message
}

// modelStream is one ADS stream as the server keeps it: per type, the
// subscription and open watch of each cache, and the last response.
type modelStream struct {
	node     *corev3.Node
	refCh    chan cache.Response
	gotCh    chan cache.Response
	refSub   map[string]*stream.Subscription
	gotSub   map[string]*stream.Subscription
	cancel   map[string][2]func()
	lastVer  map[string]string
	lastSent map[string][]string
}

var modelTypes = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

// modelResource is a resource of typ named name, in one of two contents.
func modelResource(typ, name string, variant int) types.Resource {
	d := durationpb.New(time.Duration(variant+1) * time.Second)
	var m proto.Message
	switch typ {
	case resource.ClusterType:
		m = &clusterv3.Cluster{Name: name, ConnectTimeout: d}
	case resource.EndpointType:
		m = &endpointv3.ClusterLoadAssignment{ClusterName: name, Policy: &endpointv3.ClusterLoadAssignment_Policy{OverprovisioningFactor: nil}, Endpoints: make([]*endpointv3.LocalityLbEndpoints, variant)}
	case resource.ListenerType:
		m = &listenerv3.Listener{Name: name, ListenerFiltersTimeout: d}
	default:
		m = &routev3.RouteConfiguration{Name: name, MaxDirectResponseBodySizeBytes: nil, VirtualHosts: make([]*routev3.VirtualHost, variant)}
	}
	return newEncoded(m, name)
}

// randomSnapshot has, per type, a random subset of four names with random
// contents, versioned as the server versions them.
func (m *cacheModel) randomSnapshot() *cache.Snapshot {
	snap := &cache.Snapshot{}
	for _, typ := range modelTypes {
		var rs []types.Resource
		for i := range 4 {
			if m.r.IntN(3) == 0 {
				continue
			}
			rs = append(rs, modelResource(typ, fmt.Sprintf("%s-%d", typ[strings.LastIndex(typ, ".")+1:], i), m.r.IntN(2)))
		}
		snap.Resources[cache.GetResponseType(typ)] = cache.NewResources(versionOf(rs), rs)
	}
	return snap
}

func (m *cacheModel) step() {
	switch op := m.r.IntN(10); {
	case op < 3:
		node := m.nodes[m.r.IntN(len(m.nodes))]
		if len(m.snaps) == 0 || m.r.IntN(3) == 0 {
			m.snaps = append(m.snaps, m.randomSnapshot())
		}
		i := m.r.IntN(len(m.snaps))
		m.steps = append(m.steps, fmt.Sprintf("snapshot %d for %s", i, node))
		snap := m.snaps[i]
		if err := m.ref.SetSnapshot(context.Background(), node, snap); err != nil {
			m.t.Fatal(err)
		}
		m.got.setSnapshot(context.Background(), node, m.got.prepare(snap))
	case op < 4 && len(m.streams) > 0:
		i := m.r.IntN(len(m.streams))
		st := m.streams[i]
		m.steps = append(m.steps, fmt.Sprintf("stream %d closes", i))
		for _, c := range st.cancel {
			c[0]()
			c[1]()
		}
		m.streams = slices.Delete(m.streams, i, i+1)
	case op < 5 || len(m.streams) == 0:
		node := m.nodes[m.r.IntN(len(m.nodes))]
		m.steps = append(m.steps, fmt.Sprintf("stream %d opens for %s", len(m.streams), node))
		m.streams = append(m.streams, &modelStream{
			node:  &corev3.Node{Id: node},
			refCh: make(chan cache.Response, 16), gotCh: make(chan cache.Response, 16),
			refSub: map[string]*stream.Subscription{}, gotSub: map[string]*stream.Subscription{},
			cancel: map[string][2]func(){}, lastVer: map[string]string{}, lastSent: map[string][]string{},
		})
	default:
		m.request()
	}
	m.compare()
}

// request sends a random request on a random stream: an ACK of the last
// response, a request for an older or unknown version, with no names,
// the names last sent, a subset, a superset or a wildcard.
func (m *cacheModel) request() {
	i := m.r.IntN(len(m.streams))
	st := m.streams[i]
	typ := modelTypes[m.r.IntN(len(modelTypes))]
	var names []string
	switch m.r.IntN(5) {
	case 1:
		names = slices.Clone(st.lastSent[typ])
	case 2:
		for _, n := range st.lastSent[typ] {
			if m.r.IntN(2) == 0 {
				names = append(names, n)
			}
		}
	case 3:
		names = append(slices.Clone(st.lastSent[typ]), fmt.Sprintf("%s-%d", typ[strings.LastIndex(typ, ".")+1:], m.r.IntN(5)))
	case 4:
		names = []string{"*"}
	}
	version := st.lastVer[typ]
	switch m.r.IntN(4) {
	case 0:
		version = ""
	case 1:
		version = "stale"
	}
	m.steps = append(m.steps, fmt.Sprintf("stream %d asks %s version %q names %v", i, typ, version, names))
	req := &discovery.DiscoveryRequest{Node: st.node, TypeUrl: typ, VersionInfo: version, ResourceNames: names}
	// As go-control-plane's ordered ADS server does: close the open
	// watch, update the subscription, open a new watch.
	if c, ok := st.cancel[typ]; ok {
		c[0]()
		c[1]()
		st.refSub[typ].SetResourceSubscription(names)
		st.gotSub[typ].SetResourceSubscription(names)
	} else {
		rs, gs := stream.NewSotwSubscription(names, true), stream.NewSotwSubscription(names, true)
		st.refSub[typ], st.gotSub[typ] = &rs, &gs
	}
	rc, err := m.ref.CreateWatch(proto.Clone(req).(*discovery.DiscoveryRequest), *st.refSub[typ], st.refCh)
	if err != nil {
		m.t.Fatal(err)
	}
	gc, err := m.got.CreateWatch(proto.Clone(req).(*discovery.DiscoveryRequest), *st.gotSub[typ], st.gotCh)
	if err != nil {
		m.t.Fatal(err)
	}
	st.cancel[typ] = [2]func(){rc, gc}
}

// compare drains every stream's responses from both caches and checks
// they are the same, in the same order, then records them as the server
// does (the subscription's returned resources).
func (m *cacheModel) compare() {
	m.t.Helper()
	for i, st := range m.streams {
		refs, gots := drain(st.refCh), drain(st.gotCh)
		if len(refs) != len(gots) {
			m.fail("stream %d: %d responses from the snapshot cache, %d from the sotw cache", i, len(refs), len(gots))
		}
		for j := range refs {
			want, got := decodeResponse(m.t, refs[j]), decodeResponse(m.t, gots[j])
			if want != got {
				m.fail("stream %d response %d:\nsnapshot cache: %s\nsotw cache:     %s", i, j, want, got)
			}
			typ := refs[j].GetRequest().GetTypeUrl()
			if !maps.Equal(refs[j].GetReturnedResources(), gots[j].GetReturnedResources()) {
				m.fail("stream %d response %d: returned resources %v, want %v", i, j, gots[j].GetReturnedResources(), refs[j].GetReturnedResources())
			}
			st.refSub[typ].SetReturnedResources(refs[j].GetReturnedResources())
			st.gotSub[typ].SetReturnedResources(gots[j].GetReturnedResources())
			st.lastVer[typ] = refs[j].GetResponseVersion()
			st.lastSent[typ] = slices.Sorted(maps.Keys(refs[j].GetReturnedResources()))
		}
	}
}

func (m *cacheModel) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("after:\n  %s\n%s", strings.Join(m.steps, "\n  "), fmt.Sprintf(format, args...))
}

func drain(ch chan cache.Response) []cache.Response {
	var out []cache.Response
	for {
		select {
		case r := <-ch:
			out = append(out, r)
		default:
			return out
		}
	}
}

// decodeResponse renders a response as a client decodes it from the
// wire: type, version and resources (sorted: the snapshot cache sends
// them in map order).
func decodeResponse(t *testing.T, r cache.Response) string {
	t.Helper()
	out, err := r.GetDiscoveryResponse()
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var wire discovery.DiscoveryResponse
	if err := proto.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	var rs []string
	for _, a := range wire.GetResources() {
		rs = append(rs, fmt.Sprintf("%s:%x", a.GetTypeUrl(), a.GetValue()))
	}
	slices.Sort(rs)
	return fmt.Sprintf("type %s version %q resources %v", wire.GetTypeUrl(), wire.GetVersionInfo(), rs)
}

// TestSotwCacheMatchesSnapshotCache: over random sequences of snapshots
// (with repeated versions), streams opening and closing, and requests
// (ACKs, stale and empty versions, no names, subsets, supersets and
// wildcards), the state-of-the-world cache answers every stream exactly
// as go-control-plane's snapshot cache in ADS mode does: the same
// responses, in the same order, with the same resources on the wire.
func TestSotwCacheMatchesSnapshotCache(t *testing.T) {
	t.Parallel()
	quiet := cacheLogger{slog.New(slog.NewTextHandler(io.Discard, nil))}
	for seed := range uint64(100) {
		m := &cacheModel{
			t: t, r: rand.New(rand.NewPCG(seed, 1)),
			ref:   cache.NewSnapshotCache(true, nodeHash{}, quiet),
			got:   newSotwCache(nodeHash{}, quiet, nil),
			nodes: []string{"mesh/m/virtualNode/a", "mesh/m/virtualNode/b"},
		}
		for range 60 {
			m.step()
		}
	}
}

// TestServerFetch: a REST fetch of an Envoy data plane's clusters is
// answered with its view, from the snapshot cache behind the
// state-of-the-world one.
func TestServerFetch(t *testing.T) {
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond})
	s.Update(loadMesh(t, "testdata/mesh.yaml"), fixtureEndpoints())
	c := dialADS(t, addr, "mesh/demo/virtualNode/greeter")
	c.until(10*time.Second, "the first configuration", c.synced)
	resp, err := s.xds.FetchClusters(context.Background(), &discovery.DiscoveryRequest{
		Node: &corev3.Node{Id: "mesh/demo/virtualNode/greeter", UserAgentName: "envoy"}, TypeUrl: resource.ClusterType})
	if err != nil {
		t.Fatal(err)
	}
	want := sorted(names(clustersOf(t, c.last[resource.ClusterType])))
	if got := sorted(names(clustersOf(t, resp))); len(got) == 0 || !slices.Equal(got, want) {
		t.Fatalf("fetched clusters %v, want %v", got, want)
	}
}
