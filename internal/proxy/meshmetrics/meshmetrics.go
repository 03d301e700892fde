// Package meshmetrics keeps the mesh metrics: for every request, counted on
// both sides of each hop, meshlens_requests_total and its companions,
// labelled by who called whom. See the rules below for how the called side
// decides who called.
package meshmetrics

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/stats"
)

// Mesh metrics are the service graph's raw material: for every request,
// counted on both sides of each hop (like Istio's standard metrics),
// meshlens_requests_total, meshlens_request_duration_seconds and the
// body byte counters, labelled by who called whom. They live in a store of
// their own whose Prometheus names start with meshlens_, printed after
// Envoy's stats on /stats/prometheus.
//
// The calling side knows the destination from its configuration (the
// virtual service of the route, the virtual node of the cluster: the
// control plane's filter_metadata "meshlens"). It sends the
// x-meshlens-source header, "<mesh>/<kind>/<name>/<virtual service>/<route>",
// with every request it forwards to a virtual service (the route, which
// may hold slashes, is optional: a caller that sends four fields labels
// the called side's series route="unknown"). A proxy removes
// the header from every request it receives (the application never sees
// it, and only the proxy's own value goes upstream), and the called side
// (a sidecar's inbound listener) decides who called by how far it can
// trust the connection (Caller):
//
//   - The client presented a certificate the listener verified (mTLS):
//     the caller is the certificate's identity, whatever the header
//     says. A URI SAN naming a node, spiffe://<trust domain>/mesh/<mesh>/
//     virtualNode/<name> (or virtualGateway), gives the source's mesh,
//     kind and name; any other certificate gives its first DNS SAN (else
//     URI SAN) as source_workload, its mesh and kind unknown. The header
//     supplies only the virtual service the caller asked for.
//   - The listener terminates TLS (App Mesh's STRICT or PERMISSIVE) but
//     this client presented no verified certificate: it is not
//     authenticated as a member of the mesh, and is counted as unknown.
//   - The listener has no TLS: the header is trusted as far as the
//     network is. Anyone who can reach the port can name any caller, as
//     with any plaintext mesh; mTLS is what makes the source label
//     trustworthy.

// SourceHeader is the canonical name of the header a proxy sends with
// every request it forwards into the mesh.
const SourceHeader = "X-Meshlens-Source"

// unknown is the value of a label the proxy cannot know (a request from
// outside the mesh, a passthrough destination).
const unknown = "unknown"

// maxInboundSources bounds the distinct callers (x-meshlens-source
// values) a proxy keeps series for; later ones are counted as unknown.
const maxInboundSources = 512

// Overflow is the route label of the series that count, per destination,
// the routes beyond a proxy's cap (DefaultMaxRoutes): the totals stay
// right while the number of series stays bounded.
const Overflow = "__overflow__"

// DefaultMaxRoutes is the default cap on the calling side's edges (one per
// virtual service, destination node and route) a proxy keeps series for.
const DefaultMaxRoutes = 1000

// DefaultIdleTimeout is how long a series may stay unchanged before it is
// evicted (it comes back, from zero, with the next request).
const DefaultIdleTimeout = 10 * time.Minute

// Protocols of the protocol label.
const (
	HTTP = iota
	GRPC
	TCP
	numProtos
)

var protoNames = [numProtos]string{"http", "grpc", "tcp"}

// meshLabels are the labels of one edge of the graph, as seen by one
// reporter.
type meshLabels struct {
	reporter                         string // "source" or "destination"
	srcMesh, srcWorkload, srcKind    string
	dstMesh, dstService, dstWorkload string
	route                            string
	// security: the called side authenticated the caller's certificate
	// (connection_security_policy="mutual_tls", else "none"; "unknown"
	// on the calling side).
	security string
}

// EdgeKey finds the calling side's edge of a request: the virtual service
// and the name of the route that sent it.
type EdgeKey struct{ Service, Route string }

// meshSeries are the stats of one edge, response code and protocol.
type meshSeries struct {
	requests, reqBytes, respBytes *stats.Counter
	duration                      *stats.Histogram
	scope                         *stats.Scope
	// lastCount and lastChange are the sweeper's (EvictIdle) record of
	// when requests last moved; guarded by Metrics.mu.
	lastCount  uint64
	lastChange time.Time
}

// codeTable is one protocol's series of an edge, by response code.
type codeTable [600]atomic.Pointer[meshSeries]

// Edge is one edge's series, created on first use per code and
// protocol and then reached with one atomic load.
type Edge struct {
	m      *Metrics
	labels meshLabels
	// header is the x-meshlens-source value the calling side sends.
	header []string
	// series holds, per protocol, a table of the series by response
	// code, allocated on the protocol's first request: an edge costs a
	// few bytes until it carries traffic, and 4.8 KB per protocol then.
	series [numProtos]atomic.Pointer[codeTable]
}

// Metrics owns the mesh metric series of one proxy.
type Metrics struct {
	store *stats.Store // nil when stats are off
	self  nodeid.ID

	mu    sync.Mutex
	edges map[meshLabels]*Edge
	// inbound maps x-meshlens-source values to the called side's edges;
	// replaced whole (copy on write) so that reading needs no lock.
	inbound atomic.Pointer[map[string]*Edge]
	// peers maps certificate identities (with the service asked for) to
	// the called side's edges, as inbound does.
	peers   atomic.Pointer[map[peerKey]*Edge]
	unknown *Edge // inbound from outside the mesh
	// maxRoutes caps the outbound edges; outbound counts them.
	maxRoutes, outbound int
}

// SetMaxRoutes caps the calling side's edges (DefaultMaxRoutes when n <=
// 0); an edge asked for beyond the cap is its destination's overflow edge
// (route Overflow).
func (m *Metrics) SetMaxRoutes(n int) {
	if n <= 0 {
		n = DefaultMaxRoutes
	}
	m.mu.Lock()
	m.maxRoutes = n
	m.mu.Unlock()
}

// peerKey is the caller of a request on a mutually authenticated
// connection: the certificate's identity and the service it asked for.
type peerKey struct{ mesh, kind, name, service, route string }

// New returns the mesh metrics of the proxy self, kept in store (nil when
// stats are off: edges then record nothing).
func New(store *stats.Store, self nodeid.ID) *Metrics {
	m := &Metrics{store: store, self: self, edges: map[meshLabels]*Edge{}, maxRoutes: DefaultMaxRoutes}
	empty := map[string]*Edge{}
	m.inbound.Store(&empty)
	noPeers := map[peerKey]*Edge{}
	m.peers.Store(&noPeers)
	m.unknown = m.edge(meshLabels{
		reporter: "destination", srcMesh: unknown, srcWorkload: unknown, srcKind: unknown,
		dstMesh: orUnknown(self.Mesh), dstService: unknown, dstWorkload: orUnknown(self.Name), route: unknown, security: "none",
	})
	return m
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// edge returns the edge with the given labels, creating it.
func (m *Metrics) edge(l meshLabels) *Edge {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.edgeLocked(l)
}

func (m *Metrics) edgeLocked(l meshLabels) *Edge {
	if e := m.edges[l]; e != nil {
		return e
	}
	if l.reporter == "source" && l.route != Overflow {
		if m.outbound >= m.maxRoutes {
			l.route = Overflow
			return m.edgeLocked(l)
		}
		m.outbound++
	}
	e := &Edge{m: m, labels: l}
	if l.reporter == "source" {
		e.header = []string{l.srcMesh + "/" + l.srcKind + "/" + l.srcWorkload + "/" + l.dstService + "/" + l.route}
	}
	m.edges[l] = e
	return e
}

// Outbound is the calling side's edge towards a virtual service, sent by
// the route named route, to a cluster whose metadata names mesh and node.
// Beyond the cap (SetMaxRoutes) it is the destination's overflow edge.
func (m *Metrics) Outbound(service, route, mesh, node string) *Edge {
	return m.edge(meshLabels{
		reporter: "source",
		srcMesh:  orUnknown(m.self.Mesh), srcWorkload: orUnknown(m.self.Name), srcKind: orUnknown(string(m.self.Kind)),
		dstMesh: orUnknown(mesh), dstService: orUnknown(service), dstWorkload: orUnknown(node), route: orUnknown(route), security: unknown,
	})
}

// parseSource splits an x-meshlens-source value into its four or five
// fields without allocating; route is "unknown" when absent.
func parseSource(src string) (mesh, kind, name, service, route string, ok bool) {
	var rest string
	if mesh, rest, ok = strings.Cut(src, "/"); !ok {
		return
	}
	if kind, rest, ok = strings.Cut(rest, "/"); !ok {
		return
	}
	if name, rest, ok = strings.Cut(rest, "/"); !ok {
		return
	}
	service, route, ok = strings.Cut(rest, "/")
	if !ok {
		service, route, ok = rest, unknown, true
	}
	return
}

// Inbound is the called side's edge for a request's
// x-meshlens-source value: a map lookup, and on the first request from a
// new caller a parse and a copy of the map.
func (m *Metrics) Inbound(src string) *Edge {
	if src == "" {
		return m.unknown
	}
	if e := (*m.inbound.Load())[src]; e != nil {
		return e
	}
	mesh, kind, name, service, route, ok := parseSource(src)
	if !ok || !validLabelValues([]string{mesh, kind, name, service, route}) {
		return m.unknown
	}
	m.mu.Lock()
	cur := *m.inbound.Load()
	if e := cur[src]; e != nil {
		m.mu.Unlock()
		return e
	}
	if len(cur) >= maxInboundSources {
		m.mu.Unlock()
		return m.unknown
	}
	m.mu.Unlock()
	e := m.edge(meshLabels{
		reporter: "destination",
		srcMesh:  mesh, srcKind: kind, srcWorkload: name,
		dstMesh: orUnknown(m.self.Mesh), dstService: service, dstWorkload: orUnknown(m.self.Name), route: route, security: "none",
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	cur = *m.inbound.Load()
	if prev := cur[src]; prev != nil {
		return prev
	}
	next := make(map[string]*Edge, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[src] = e
	m.inbound.Store(&next)
	return e
}

// Caller is the called side's edge for a request with
// x-meshlens-source value src, on a connection with TLS state cs (nil
// for plaintext) of a listener that terminates TLS on some chain when
// listenerTLS: see the rules at the top of this file.
func (m *Metrics) Caller(cs *tls.ConnectionState, listenerTLS bool, src string) *Edge {
	if cs != nil && len(cs.VerifiedChains) > 0 && len(cs.PeerCertificates) > 0 {
		return m.Peer(cs.PeerCertificates[0], src)
	}
	if listenerTLS {
		return m.unknown
	}
	return m.Inbound(src)
}

// Peer is the called side's edge for a caller that presented the
// verified certificate cert; src says only which service it asked for.
// It allocates nothing once the edge exists.
func (m *Metrics) Peer(cert *x509.Certificate, src string) *Edge {
	k := peerIdentity(cert)
	k.service, k.route = unknown, unknown
	if _, _, _, service, route, ok := parseSource(src); ok {
		k.service, k.route = service, route
	}
	if !validLabelValues([]string{k.mesh, k.kind, k.name}) {
		return m.unknown
	}
	if !validLabelValues([]string{k.service, k.route}) {
		k.service, k.route = unknown, unknown
	}
	if e := (*m.peers.Load())[k]; e != nil {
		return e
	}
	m.mu.Lock()
	cur := *m.peers.Load()
	if e := cur[k]; e != nil {
		m.mu.Unlock()
		return e
	}
	if len(cur)+len(*m.inbound.Load()) >= maxInboundSources {
		m.mu.Unlock()
		return m.unknown
	}
	m.mu.Unlock()
	// Copies, so that the map does not hold the request or certificate.
	k = peerKey{strings.Clone(k.mesh), strings.Clone(k.kind), strings.Clone(k.name), strings.Clone(k.service), strings.Clone(k.route)}
	e := m.edge(meshLabels{
		reporter: "destination",
		srcMesh:  k.mesh, srcKind: k.kind, srcWorkload: k.name,
		dstMesh: orUnknown(m.self.Mesh), dstService: k.service, dstWorkload: orUnknown(m.self.Name), route: k.route, security: "mutual_tls",
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	cur = *m.peers.Load()
	if prev := cur[k]; prev != nil {
		return prev
	}
	next := make(map[peerKey]*Edge, len(cur)+1)
	for key, v := range cur {
		next[key] = v
	}
	next[k] = e
	m.peers.Store(&next)
	return e
}

// peerIdentity is who a verified certificate names: the mesh, kind and
// name of a URI SAN spiffe://<trust domain>/mesh/<mesh>/<kind>/<name>
// (kind virtualNode or virtualGateway), else its first DNS SAN, else its
// first URI SAN, as the workload of an unknown mesh and kind.
func peerIdentity(cert *x509.Certificate) peerKey {
	for _, u := range cert.URIs {
		if u.Scheme != "spiffe" {
			continue
		}
		// The mesh CA's spiffe://<mesh>/<kind>/<name>, or
		// spiffe://<domain>/mesh/<mesh>/<kind>/<name>.
		var mesh string
		rest, ok := strings.CutPrefix(u.Path, "/mesh/")
		if ok {
			mesh, rest, _ = strings.Cut(rest, "/")
		} else {
			mesh, rest = u.Host, strings.TrimPrefix(u.Path, "/")
		}
		kind, name, _ := strings.Cut(rest, "/")
		if mesh != "" && name != "" && !strings.Contains(name, "/") &&
			(kind == string(nodeid.VirtualNode) || kind == string(nodeid.VirtualGateway)) {
			return peerKey{mesh: mesh, kind: kind, name: name}
		}
	}
	k := peerKey{mesh: unknown, kind: unknown, name: unknown}
	switch {
	case len(cert.DNSNames) > 0:
		k.name = cert.DNSNames[0]
	case len(cert.URIs) > 0:
		k.name = cert.URIs[0].String()
	}
	return k
}

// validLabelValues accepts names as App Mesh allows them (and DNS names),
// up to 255 bytes of printable ASCII.
func validLabelValues(parts []string) bool {
	for _, p := range parts {
		if p == "" || len(p) > 255 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] <= ' ' || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\' {
				return false
			}
		}
	}
	return true
}

// Record counts one request (or TCP connection, code 0) on the edge.
func (e *Edge) Record(proto, code int, d time.Duration, in, out uint64) {
	if e == nil || e.m.store == nil {
		return
	}
	if code < 0 || code >= 600 {
		code = 0
	}
	tab := e.series[proto].Load()
	if tab == nil {
		tab = e.newTable(proto)
	}
	slot := &tab[code]
	s := slot.Load()
	if s == nil {
		s = e.newSeries(slot, proto, code)
	}
	s.requests.Inc()
	s.reqBytes.Add(in)
	s.respBytes.Add(out)
	s.duration.RecordDuration(d)
}

func (e *Edge) newTable(proto int) *codeTable {
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	if t := e.series[proto].Load(); t != nil {
		return t
	}
	t := new(codeTable)
	e.series[proto].Store(t)
	return t
}

func (e *Edge) newSeries(slot *atomic.Pointer[meshSeries], proto, code int) *meshSeries {
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	if s := slot.Load(); s != nil {
		return s
	}
	l := e.labels
	sc := e.m.store.ScopeWithTags("", []stats.Tag{
		{Name: "reporter", Value: l.reporter},
		{Name: "source_mesh", Value: l.srcMesh},
		{Name: "source_workload", Value: l.srcWorkload},
		{Name: "source_kind", Value: l.srcKind},
		{Name: "destination_mesh", Value: l.dstMesh},
		{Name: "destination_service", Value: l.dstService},
		{Name: "destination_workload", Value: l.dstWorkload},
		{Name: "route", Value: l.route},
		{Name: "connection_security_policy", Value: l.security},
		{Name: "response_code", Value: strconv.Itoa(code)},
		{Name: "protocol", Value: protoNames[proto]},
	})
	s := &meshSeries{
		requests:   sc.Counter("requests_total"),
		reqBytes:   sc.Counter("request_bytes_total"),
		respBytes:  sc.Counter("response_bytes_total"),
		duration:   sc.Histogram("request_duration_seconds", stats.Milliseconds),
		scope:      sc,
		lastChange: time.Now(),
	}
	slot.Store(s)
	return s
}

// EvictIdle removes the series whose request count has not moved for
// idle (DefaultIdleTimeout when idle <= 0), as of now, so that callers,
// routes and codes that went away stop costing memory and scrape time. It
// runs off the request path (the proxy's stats flush); a request that
// races with the eviction of its series may go uncounted, which only
// happens to a series idle for the whole timeout. It returns how many
// series it removed.
func (m *Metrics) EvictIdle(now time.Time, idle time.Duration) int {
	if m.store == nil {
		return 0
	}
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.edges {
		for p := range e.series {
			tab := e.series[p].Load()
			if tab == nil {
				continue
			}
			for c := range tab {
				s := tab[c].Load()
				if s == nil {
					continue
				}
				if v := s.requests.Value(); v != s.lastCount {
					s.lastCount, s.lastChange = v, now
					continue
				}
				if now.Sub(s.lastChange) < idle {
					continue
				}
				tab[c].Store(nil)
				s.scope.Release()
				n++
			}
		}
	}
	return n
}

// Store is where the series live (nil when stats are off).
func (m *Metrics) Store() *stats.Store { return m.store }

// Unknown is the called side's edge for a caller from outside the mesh.
func (m *Metrics) Unknown() *Edge { return m.unknown }

// Header is the x-meshlens-source value the calling side sends on this
// edge (nil on the called side). The slice is shared: callers must not
// modify it.
func (e *Edge) Header() []string { return e.header }

// RequestProto is the protocol label of an HTTP request.
func RequestProto(r *http.Request) int {
	if ct := r.Header["Content-Type"]; len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc") {
		return GRPC
	}
	return HTTP
}
