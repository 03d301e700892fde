package xds

import (
	"time"

	"cmp"
	"encoding/json"
	"fmt"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"slices"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// Endpoint is one reachable instance of a virtual node.
//
// Port, when set, is where the instance listens; it is used for a node with
// a single listener. A node with several listeners is reached on each
// listener's own port at Address (App Mesh's model: the instance's sidecar
// takes every listener port), so leave Port zero for those.
type Endpoint struct {
	Address string
	Port    uint32
	Healthy bool
	Zone    string // optional; becomes the endpoint's locality zone
}

// Endpoints gives the instances of a virtual node, already selected by its
// service discovery. Implementations must be safe for concurrent use and
// should be immutable snapshots: the server calls them while it builds.
type Endpoints interface {
	Endpoints(mesh, virtualNode string) []Endpoint
}

// Flavour is the shape of configuration a data plane understands.
type Flavour int

// The two flavours: Envoy (and the meshlens sidecar), which take the
// App Mesh listeners on 15000/15001 and gateway listeners, and proxyless
// gRPC clients, which take one api_listener per service port.
const (
	FlavourEnvoy Flavour = iota
	FlavourProxyless
)

// String names the flavour as it appears in node keys and NodeStatus.
func (f Flavour) String() string {
	if f == FlavourProxyless {
		return "proxyless"
	}
	return "envoy"
}

// View is the whole xDS configuration of one data plane, each type sorted
// by resource name. The resources may be shared with other views built
// from the same input and must not be modified.
type View struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Secrets are the SDS secrets the TLS contexts name, from the mesh
	// CA (see addSecrets); the translation leaves them empty.
	Secrets []*tlsv3.Secret
	// Notes lists what could not be translated or enforced, each naming
	// the resource and field it comes from.
	Notes []Note
	// Missing: the virtual node or gateway does not exist, so the view
	// is empty and the server sends nothing (the data plane keeps waiting,
	// or keeps its last configuration if the resource was deleted).
	Missing bool
	// uses lists the virtual nodes (mesh, name) whose endpoints the view
	// contains: an endpoint change rebuilds only the views that use it.
	uses map[[2]string]bool
	// renewAt: when the secrets' identity is renewed (see addSecrets).
	renewAt time.Time
	// claReqs are the requests the load assignments were built for, in
	// the order of Endpoints: an input that only moved endpoints rebuilds
	// the view from them (withEndpoints).
	claReqs []*clusterReq
	// enc are the resources as the view's last snapshot encoded them.
	enc viewEncodings
}

// Note is something a resource asks for that the control plane keeps but
// cannot translate or enforce, such as a listener that is skipped or a
// backend whose traffic is refused. Notes reach the user as warnings (see
// Warnings), not only the control plane's log.
type Note struct {
	// Resource is the resource the note is about.
	Resource v1alpha1.Key
	// Path is the field the note is about, as validation errors name
	// fields (spec.listeners[0].tls.certificate.acm); empty for the
	// resource as a whole.
	Path string
	// Message says what the control plane does instead, and why.
	Message string
}

// Warning renders the note for the resource's own owner: its field path
// and message.
func (n Note) Warning() string {
	if n.Path == "" {
		return n.Message
	}
	return n.Path + ": " + n.Message
}

// String renders the note with its resource.
func (n Note) String() string { return n.Resource.String() + ": " + n.Warning() }

// Translate builds the view of the data plane id from one consistent state
// of the meshes. A data plane whose resource does not exist gets an empty
// view marked Missing and a note: the server does not send it, so the data
// plane stays unconfigured (and fails its health check, as App Mesh's
// Envoy did) until the resource is created.
func Translate(l v1alpha1.Lookup, eps Endpoints, id nodeid.ID, fl Flavour) *View {
	return newTranslator(l, eps).view(id, fl)
}

// translator builds views from one input. It caches what it builds for
// one view (compiled routes of a service port, clusters, load
// assignments) so that the next view reuses the same immutable objects:
// memory and hashing are paid once per input, not once per data plane.
type translator struct {
	lookup v1alpha1.Lookup
	eps    Endpoints
	// meshCA: the control plane runs the mesh CA, so ACM certificates and
	// trust translate to its SDS secrets (Options.Secrets).
	meshCA bool
	// builtinCollector is where the builtin tracing provider sends spans
	// (Options.BuiltinCollector).
	builtinCollector string

	mu        sync.Mutex
	routeSets map[routeSetKey]*routeSet
	vhosts    map[vhostKey]*routev3.VirtualHost
	refused   map[vhostKey]*routev3.VirtualHost // see refusedVirtualHost
	apiRoutes map[routeSetKey]*routev3.RouteConfiguration
	// apiListeners are the proxyless api_listeners, by name and the
	// route configuration (of apiRoutes) they are built from.
	apiListeners map[apiListenerKey]*listenerv3.Listener
	clusters     map[string]*clusterv3.Cluster
	clas         map[string]*endpointv3.ClusterLoadAssignment
	endpoints    map[[2]string][]Endpoint
	// claFrom holds, by cluster, each load assignment loadAssignment
	// handed out and what it was made of; prevClas, those of the
	// translators this one follows (see derive and follow). A load
	// assignment built from the same endpoints and parameters is handed
	// out again as the same object, whose encoding the server's hasher
	// holds.
	claFrom, prevClas map[string]claSource
	// clusterFrom holds, by everything an outbound cluster is built from
	// (see outboundCluster), each outbound cluster built or reused;
	// prevClusters, those of the translators this one follows.
	clusterFrom, prevClusters map[string]builtCluster
	// gen counts the translators since the server's first: what was last
	// used more than keepGenerations translators ago is not carried on.
	gen uint64
}

// keepGenerations bounds how many inputs an unused load assignment or
// cluster is carried over, so that those of deleted resources are let go.
const keepGenerations = 16

// claSource is a load assignment and what it was built from (the
// arguments of buildLoadAssignment).
type claSource struct {
	cla          *endpointv3.ClusterLoadAssignment
	mesh, node   string
	port, hcPort uint32
	single       bool
	eps          []Endpoint
	gen          uint64 // the translator that last handed it out
}

// builtCluster is an outbound cluster and the translator that last
// handed it out.
type builtCluster struct {
	c   *clusterv3.Cluster
	gen uint64
}

type vhostKey struct {
	routeSetKey
	primary bool
}

// cached returns the value cached under k in m, or builds, caches and
// returns it. Two views racing to build the same value keep the first.
func cached[K comparable, V any](t *translator, m map[K]V, k K, build func() V) V {
	t.mu.Lock()
	v, ok := m[k]
	t.mu.Unlock()
	if ok {
		return v
	}
	v = build()
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := m[k]; ok {
		return prev
	}
	m[k] = v
	return v
}

func newTranslator(l v1alpha1.Lookup, eps Endpoints) *translator {
	return &translator{
		lookup:    l,
		eps:       eps,
		routeSets: map[routeSetKey]*routeSet{},
		vhosts:    map[vhostKey]*routev3.VirtualHost{},
		refused:   map[vhostKey]*routev3.VirtualHost{},
		apiRoutes: map[routeSetKey]*routev3.RouteConfiguration{},

		apiListeners: map[apiListenerKey]*listenerv3.Listener{},
		clusters:     map[string]*clusterv3.Cluster{},
		clas:         map[string]*endpointv3.ClusterLoadAssignment{},
		endpoints:    map[[2]string][]Endpoint{},
		claFrom:      map[string]claSource{},

		clusterFrom: map[string]builtCluster{},
	}
}

// view builds one data plane's view. It is safe to call concurrently.
func (t *translator) view(id nodeid.ID, fl Flavour) *View {
	b := &viewBuilder{t: t, mesh: id.Mesh, flavour: fl, clusterReqs: map[string]*clusterReq{}}
	b.self = v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: id.Mesh, Name: id.Name}
	if id.Kind == nodeid.VirtualGateway {
		b.self.Kind = v1alpha1.KindVirtualGateway
	}
	switch id.Kind {
	case nodeid.VirtualGateway:
		gw := t.lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualGateway, Mesh: id.Mesh, Name: id.Name})
		if gw == nil || gw.VirtualGatewaySpec == nil {
			b.note(b.self, "", "does not exist: no configuration")
			b.missing = true
			break
		}
		b.gateway(gw)
	default:
		vn := t.lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: id.Mesh, Name: id.Name})
		if vn == nil || vn.VirtualNodeSpec == nil {
			b.note(b.self, "", "does not exist: no configuration")
			b.missing = true
			break
		}
		if fl == FlavourProxyless {
			b.proxyless(vn)
		} else {
			b.sidecar(vn)
		}
	}
	return b.finish()
}

// viewBuilder accumulates one view.
type viewBuilder struct {
	missing bool
	self    v1alpha1.Key // the virtual node or gateway, for notes
	t       *translator
	mesh    string
	flavour Flavour

	listeners []*listenerv3.Listener
	routes    []*routev3.RouteConfiguration
	clusters  []*clusterv3.Cluster // clusters that are not outbound EDS clusters
	// clusterReqs are the outbound clusters the routes name, with the client
	// policy and limits that apply to them; first request wins.
	clusterReqs map[string]*clusterReq
	notes       []Note
}

// note records what the field at path of resource k asks for and the
// view does not do.
func (b *viewBuilder) note(k v1alpha1.Key, path, format string, args ...any) {
	b.notes = append(b.notes, Note{Resource: k, Path: path, Message: fmt.Sprintf(format, args...)})
}

// finish builds the requested outbound clusters and their load
// assignments and sorts every type by name.
func (b *viewBuilder) finish() *View {
	v := &View{Listeners: b.listeners, Routes: b.routes, Clusters: b.clusters, Missing: b.missing}
	seen := map[Note]bool{}
	for _, n := range b.notes {
		if !seen[n] {
			seen[n] = true
			v.Notes = append(v.Notes, n)
		}
	}
	names := make([]string, 0, len(b.clusterReqs))
	for name := range b.clusterReqs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		req := b.clusterReqs[name]
		c, cla := b.t.outboundCluster(req, b.flavour)
		v.Clusters = append(v.Clusters, c)
		v.Endpoints = append(v.Endpoints, cla)
		if v.uses == nil {
			v.uses = map[[2]string]bool{}
		}
		v.uses[[2]string{req.mesh, req.target.node}] = true
	}
	slices.SortFunc(v.Listeners, func(a, b *listenerv3.Listener) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(v.Routes, func(a, b *routev3.RouteConfiguration) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(v.Clusters, func(a, b *clusterv3.Cluster) int { return cmp.Compare(a.Name, b.Name) })
	// Endpoints and claReqs, in one order.
	order := make([]int, len(v.Endpoints))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		return cmp.Compare(v.Endpoints[i].ClusterName, v.Endpoints[j].ClusterName)
	})
	clas := make([]*endpointv3.ClusterLoadAssignment, len(order))
	v.claReqs = make([]*clusterReq, len(order))
	for k, i := range order {
		clas[k], v.claReqs[k] = v.Endpoints[i], b.clusterReqs[names[i]]
	}
	v.Endpoints = clas
	return v
}

// withEndpoints returns the view old (built from a translator with the
// same lookup as t) with the load assignments of t's endpoints. Load
// assignments are the only part of a view built from endpoints, so this is
// what t.view would build, sharing old's listeners, routes and clusters:
// an endpoint change neither builds nor encodes them again.
func (t *translator) withEndpoints(old *View) *View {
	v := *old
	v.Endpoints = make([]*endpointv3.ClusterLoadAssignment, len(old.Endpoints))
	for i, req := range old.claReqs {
		v.Endpoints[i] = t.outboundLoadAssignment(req)
	}
	return &v
}

// ---- looking things up ----

func (t *translator) mesh(mesh string) *v1alpha1.MeshSpec {
	r := t.lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: mesh})
	if r == nil || r.MeshSpec == nil {
		return &v1alpha1.MeshSpec{}
	}
	return r.MeshSpec
}

// allowAll reports whether the mesh lets traffic leave for destinations it
// does not know (egressFilter ALLOW_ALL; DROP_ALL is the default).
func (t *translator) allowAll(mesh string) bool {
	m := t.mesh(mesh)
	return m.EgressFilter != nil && m.EgressFilter.Type == "ALLOW_ALL"
}

func (t *translator) virtualNode(mesh, name string) *v1alpha1.VirtualNodeSpec {
	r := t.lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: mesh, Name: name})
	if r == nil {
		return nil
	}
	return r.VirtualNodeSpec
}

func (t *translator) virtualService(mesh, name string) *v1alpha1.VirtualServiceSpec {
	r := t.lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualService, Mesh: mesh, Name: name})
	if r == nil {
		return nil
	}
	return r.VirtualServiceSpec
}

func (t *translator) virtualRouter(mesh, name string) *v1alpha1.VirtualRouterSpec {
	r := t.lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualRouter, Mesh: mesh, Name: name})
	if r == nil {
		return nil
	}
	return r.VirtualRouterSpec
}

// nodeEndpoints returns the instances of a virtual node, asked once per
// input.
func (t *translator) nodeEndpoints(mesh, node string) []Endpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := [2]string{mesh, node}
	eps, ok := t.endpoints[k]
	if !ok {
		if t.eps != nil {
			eps = t.eps.Endpoints(mesh, node)
		}
		t.endpoints[k] = eps
	}
	return eps
}

// portOf returns a port mapping's port and lower-cased protocol.
func portOf(pm *v1alpha1.PortMapping) (uint32, string) {
	if pm == nil || pm.Port <= 0 || pm.Port > 65535 {
		return 0, ""
	}
	return uint32(pm.Port), pm.Protocol
}

// isHTTP reports whether a protocol is carried over HTTP.
func isHTTP(protocol string) bool {
	return protocol == "http" || protocol == "http2" || protocol == "grpc"
}

// isHTTP2 reports whether a protocol needs HTTP/2 upstream.
func isHTTP2(protocol string) bool {
	return protocol == "http2" || protocol == "grpc"
}

// servicePort is one port of a virtual service, as its provider listens.
type servicePort struct {
	port     uint32
	protocol string
}

// servicePorts lists the ports of a virtual service: its provider router's
// listeners or its provider node's listeners.
func (t *translator) servicePorts(mesh, service string) []servicePort {
	vs := t.virtualService(mesh, service)
	if vs == nil || vs.Provider == nil {
		return nil
	}
	var out []servicePort
	switch {
	case vs.Provider.VirtualRouter != nil:
		vr := t.virtualRouter(mesh, vs.Provider.VirtualRouter.VirtualRouterName)
		if vr == nil {
			return nil
		}
		for _, l := range vr.Listeners {
			if port, proto := portOf(l.PortMapping); port != 0 {
				out = append(out, servicePort{port, proto})
			}
		}
	case vs.Provider.VirtualNode != nil:
		vn := t.virtualNode(mesh, vs.Provider.VirtualNode.VirtualNodeName)
		if vn == nil {
			return nil
		}
		for _, l := range vn.Listeners {
			if port, proto := portOf(l.PortMapping); port != 0 {
				out = append(out, servicePort{port, proto})
			}
		}
	}
	// A port listed twice keeps its first protocol.
	seen := map[uint32]bool{}
	uniq := out[:0]
	for _, p := range out {
		if !seen[p.port] {
			seen[p.port] = true
			uniq = append(uniq, p)
		}
	}
	return uniq
}

// primaryPort picks the port that a service's bare name (no :port in the
// Host header) reaches: port 80 when the service has it, the lowest HTTP
// port otherwise. Only one virtual host may claim a domain.
func primaryPort(ports []servicePort) uint32 {
	var best uint32
	for _, p := range ports {
		if !isHTTP(p.protocol) {
			continue
		}
		if p.port == 80 {
			return 80
		}
		if best == 0 || p.port < best {
			best = p.port
		}
	}
	return best
}

// jsonKey renders v as a cache key.
func jsonKey(v any) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%p", v)
	}
	return string(b)
}
