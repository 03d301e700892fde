package xds

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// fixtureEdits are edits of testdata/mesh.yaml, each valid alone or with
// any others, that change what outbound clusters and load assignments are
// built from: a health-check port, outlier detection, connection pools,
// the number of a node's listeners, a target's port, and a route's
// weights (which changes neither).
var fixtureEdits = [][2]string{
	{"        port: 8090\n", "        port: 8091\n"},
	{"maxServerErrors: 3", "maxServerErrors: 5"},
	{"http: {maxConnections: 10}", "http: {maxConnections: 20}"},
	{"name: colors-blue\nspec:\n  listeners:\n    - portMapping: {port: 8080, protocol: http}\n",
		"name: colors-blue\nspec:\n  listeners:\n    - portMapping: {port: 8080, protocol: http}\n    - portMapping: {port: 8081, protocol: http}\n"},
	{"grpc: {maxRequests: 64}", "grpc: {maxRequests: 32}"},
	{"name: greeting-v1\nspec:\n  listeners:\n    - portMapping: {port: 9080, protocol: grpc}", "name: greeting-v1\nspec:\n  listeners:\n    - portMapping: {port: 9081, protocol: grpc}"},
	{"{virtualNode: greeting-v1, weight: 80}", "{virtualNode: greeting-v1, weight: 60}"},
}

// TestFollowIsTranslate: over random sequences of resource changes
// (follow) and endpoint changes (derive), every view built by the chain of
// translators, and its snapshot through the one hasher the server keeps,
// is exactly the view and snapshot translated afresh from the same input:
// a carried-over cluster or load assignment is only ever one built from
// the same arguments.
func TestFollowIsTranslate(t *testing.T) {
	t.Parallel()
	base, err := os.ReadFile("testdata/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	rev := uint64(1)
	randomLookup := func() v1alpha1.Lookup {
		doc := string(base)
		for _, e := range fixtureEdits {
			if r.IntN(2) == 0 {
				if !strings.Contains(doc, e[0]) {
					t.Fatalf("the fixture no longer has %q", e[0])
				}
				doc = strings.Replace(doc, e[0], e[1], 1)
			}
		}
		rev++
		return decodeSnapshot(t, rev, doc)
	}
	keys := slices.Sorted(maps.Keys(fixtureEndpoints()))
	randomEndpoints := func() staticEndpoints {
		out := staticEndpoints{}
		for _, k := range keys {
			for i := range r.IntN(3) {
				out[k] = append(out[k], Endpoint{Address: fmt.Sprintf("10.9.0.%d", i), Port: uint32(r.IntN(2) * 8080), Healthy: true})
			}
		}
		return out
	}
	lookup, eps := randomLookup(), randomEndpoints()
	tr := newTranslator(lookup, eps)
	h := newHasher()
	reused := 0
	var prev []*View
	for step := range 40 {
		if step > 0 {
			if r.IntN(3) == 0 {
				eps = randomEndpoints()
				tr = tr.derive(eps)
			} else {
				lookup = randomLookup()
				if r.IntN(2) == 0 {
					eps = randomEndpoints()
				}
				tr = tr.follow(lookup, eps)
			}
		}
		fresh := newTranslator(lookup, eps)
		var views []*View
		for _, vn := range lookup.List(v1alpha1.KindVirtualNode, "", "") {
			id := nodeid.ID{Mesh: vn.Mesh, Kind: nodeid.VirtualNode, Name: vn.Name}
			for _, fl := range []Flavour{FlavourEnvoy, FlavourProxyless} {
				got, want := tr.view(id, fl), fresh.view(id, fl)
				if d := viewDiff(got, want); d != "" {
					t.Fatalf("step %d, %s: %s", step, nodeKey(id, fl), d)
				}
				gotSnap, gotV, gotErr := got.snapshot(h)
				wantSnap, wantV, wantErr := want.snapshot(newHasher())
				if gotV != wantV || (gotErr == nil) != (wantErr == nil) {
					t.Fatalf("step %d, %s: versions %+v (%v), want %+v (%v)", step, nodeKey(id, fl), gotV, gotErr, wantV, wantErr)
				}
				if gotErr == nil {
					for typ := range gotSnap.Resources {
						g, w := gotSnap.Resources[typ].Items, wantSnap.Resources[typ].Items
						for name := range w {
							if g[name].Resource == nil || !bytes.Equal(g[name].Resource.(*encoded).bytes(), w[name].Resource.(*encoded).bytes()) {
								t.Fatalf("step %d, %s: %s encodes differently", step, nodeKey(id, fl), name)
							}
						}
					}
				}
				for _, c := range got.Clusters {
					for _, p := range prev {
						if slices.Contains(p.Clusters, c) {
							reused++
							break
						}
					}
				}
				views = append(views, got)
			}
		}
		prev = views
	}
	if reused == 0 {
		t.Fatal("no cluster was ever carried over to a later input")
	}
}

// TestRouteChangeReusesClustersAndLoadAssignments: a change of one route's
// weights builds every view of the mesh again, but hands out the
// clusters and load assignments of the previous input, whose encodings
// the server's hasher holds: only listeners and route configurations are
// marshalled again. A change of a target's outlier detection rebuilds
// that target's cluster only.
func TestRouteChangeReusesClustersAndLoadAssignments(t *testing.T) {
	t.Parallel()
	const services = 30
	eps := staticEndpoints{}
	for i := range services {
		node := fmt.Sprintf("scale/n-%d", i)
		eps[node] = []Endpoint{{Address: fmt.Sprintf("10.1.%d.1", i), Port: 8080, Healthy: true}}
	}
	build := func(tr *translator, h *hasher) []*View {
		var out []*View
		for i := range services {
			v := tr.view(nodeid.ID{Mesh: "scale", Kind: nodeid.VirtualNode, Name: fmt.Sprintf("n-%d", i)}, FlavourEnvoy)
			if _, _, err := v.snapshot(h); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	h := newHasher()
	tr := newTranslator(loadMesh(t, scaleMesh(t, services, 3, 90, 10)), eps)
	before := build(tr, h)

	tr = tr.follow(loadMesh(t, scaleMesh(t, services, 3, 50, 50)), eps)
	marshals := h.marshals.Load()
	after := build(tr, h)
	for i := range after {
		if !slices.Equal(eds(after[i]), eds(before[i])) || len(eds(after[i])) == 0 {
			t.Errorf("n-%d: outbound clusters built again for a change of weights", i)
		}
		if !slices.Equal(after[i].Endpoints, before[i].Endpoints) {
			t.Errorf("n-%d: load assignments built again for a change of weights", i)
		}
	}
	var listeners, routes int
	for _, v := range after {
		listeners += len(v.Listeners)
		routes += len(v.Routes)
	}
	if got, most := h.marshals.Load()-marshals, int64(listeners+routes+2*services); got > most {
		t.Errorf("the change of weights marshalled %d resources, want at most %d (listeners, route configurations, virtual hosts, inbound clusters)", got, most)
	}

	// Outlier detection on n-1's listener: the cluster of n-1 changes,
	// no other.
	doc, err := os.ReadFile(scaleMesh(t, services, 3, 50, 50))
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(doc), "name: n-1\nspec:\n  listeners: [{portMapping: {port: 8080, protocol: http}}]",
		"name: n-1\nspec:\n  listeners: [{portMapping: {port: 8080, protocol: http}, outlierDetection: {maxServerErrors: 2, maxEjectionPercent: 50, interval: {unit: s, value: 1}, baseEjectionDuration: {unit: s, value: 10}}}]", 1)
	if edited == string(doc) {
		t.Fatal("the scale mesh no longer has n-1's listener")
	}
	tr = tr.follow(decodeSnapshot(t, 9, edited), eps)
	outlier := build(tr, h)
	for i := range outlier {
		for j, c := range eds(outlier[i]) {
			changed := strings.Contains(c.Name, "_n-1_")
			if same := c == eds(after[i])[j]; same == changed {
				t.Errorf("n-%d: cluster %s built again: %v", i, c.Name, !same)
			}
			if changed && c.OutlierDetection == nil {
				t.Errorf("n-%d: cluster %s has no outlier detection", i, c.Name)
			}
		}
	}
}

// eds returns a view's outbound (EDS) clusters.
func eds(v *View) []*clusterv3.Cluster {
	var out []*clusterv3.Cluster
	for _, c := range v.Clusters {
		if c.GetType() == clusterv3.Cluster_EDS {
			out = append(out, c)
		}
	}
	return out
}

// TestCarryLetsUnusedGo: what no translator handed out for keepGenerations
// inputs is not carried on, so the clusters and load assignments of
// deleted resources are let go.
func TestCarryLetsUnusedGo(t *testing.T) {
	t.Parallel()
	lookup := loadMesh(t, "testdata/mesh.yaml")
	tr := newTranslator(lookup, fixtureEndpoints())
	tr.view(nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "greeter"}, FlavourEnvoy)
	if len(tr.clusterFrom) == 0 || len(tr.claFrom) == 0 {
		t.Fatal("the view built no outbound cluster")
	}
	for range keepGenerations {
		tr = tr.follow(lookup, fixtureEndpoints())
		if len(tr.prevClusters) == 0 || len(tr.prevClas) == 0 {
			t.Fatalf("generation %d: clusters %d, load assignments %d carried", tr.gen, len(tr.prevClusters), len(tr.prevClas))
		}
	}
	tr = tr.follow(lookup, fixtureEndpoints())
	if len(tr.prevClusters) != 0 || len(tr.prevClas) != 0 {
		t.Errorf("after %d inputs that used none: clusters %d, load assignments %d still carried", keepGenerations+1, len(tr.prevClusters), len(tr.prevClas))
	}
}

// TestProxylessListenersShared: the api_listener of a service port is one
// object for every proxyless client that calls the service, so it is
// built and marshalled once per input, not once per client.
func TestProxylessListenersShared(t *testing.T) {
	t.Parallel()
	const services = 20
	tr := newTranslator(loadMesh(t, scaleMesh(t, services, 3, 90, 10)), staticEndpoints{})
	byName := map[string]*listenerv3.Listener{}
	shared := 0
	for i := range services {
		v := tr.view(nodeid.ID{Mesh: "scale", Kind: nodeid.VirtualNode, Name: fmt.Sprintf("n-%d", i)}, FlavourProxyless)
		for _, l := range v.Listeners {
			if prev, ok := byName[l.Name]; ok {
				if prev != l {
					t.Errorf("n-%d: api_listener %s built again", i, l.Name)
				}
				shared++
			}
			byName[l.Name] = l
		}
	}
	// Every node calls service 0: its listeners are shared by all.
	if shared < services-1 {
		t.Fatalf("only %d api_listeners shared between views", shared)
	}
}
