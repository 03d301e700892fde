package xds

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// Options configure a Server. Zero values take the defaults.
type Options struct {
	// Debounce is the shortest interval between two rebuilds of the
	// views for new input (default 100ms): an update that follows a quiet
	// interval is applied at once, and the updates of a burst that follow
	// it are applied together once the interval has passed, so a burst
	// costs a rebuild and a push per interval, not per update.
	Debounce time.Duration
	// WarmTimeout bounds how long an Envoy is given to receive and ACK new
	// clusters and their endpoints before the routes that name them are
	// pushed (default 2s).
	WarmTimeout time.Duration
	// ClusterGrace is how long a cluster that no route names any more is
	// kept, so that a route still in flight never names a missing cluster
	// (default 10s).
	ClusterGrace time.Duration
	// Metrics receives the server's events; nil ignores them.
	Metrics Metrics
	// BuiltinCollector is the host:port of the control plane's OTLP
	// receiver, for meshes whose tracing provider is builtin; empty turns
	// builtin tracing off (see tracing.go).
	BuiltinCollector string
	// Authorize, when set, decides whether the stream opened with ctx (its
	// gRPC context, which carries who authenticated it) may be served the
	// view of node id. An error ends the stream before anything is sent;
	// it should be a gRPC status (PermissionDenied).
	Authorize func(ctx context.Context, id nodeid.ID) error
	// Secrets is the mesh CA; nil runs none (ACM TLS is then refused,
	// and SDS secrets are not served).
	Secrets SecretSource
}

// Metrics is told what the server does, for the control plane's own
// metrics. Calls come from the server's goroutines and must not block.
type Metrics interface {
	// Rebuilt: views of n data planes were translated, taking d.
	Rebuilt(n int, d time.Duration)
	// Sent: a response of typeURL went out on a stream.
	Sent(typeURL string)
	// Acked: a data plane accepted a response of typeURL, rtt after it
	// was sent and sinceUpdate after the input change that led to it.
	Acked(typeURL string, rtt, sinceUpdate time.Duration)
	// NACKed: a data plane rejected a response of typeURL.
	NACKed(typeURL string)
}

type noMetrics struct{}

func (noMetrics) Rebuilt(int, time.Duration)                 {}
func (noMetrics) Sent(string)                                {}
func (noMetrics) Acked(string, time.Duration, time.Duration) {}
func (noMetrics) NACKed(string)                              {}

func (o Options) withDefaults() Options {
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.WarmTimeout <= 0 {
		o.WarmTimeout = 2 * time.Second
	}
	if o.ClusterGrace <= 0 {
		o.ClusterGrace = 10 * time.Second
	}
	return o
}

// NodeStatus describes one connected data plane: all the streams opened
// with one identity and flavour, which share one view.
type NodeStatus struct {
	// Key is the snapshot key: the identity, with ~proxyless for proxyless
	// gRPC clients.
	Key     string         `json:"key"`
	ID      string         `json:"id"`
	Mesh    string         `json:"mesh"`
	Kind    string         `json:"kind"`
	Name    string         `json:"name"`
	Flavour string         `json:"flavour"`
	Streams []StreamStatus `json:"streams"`
	// Versions are the versions currently served, by type URL.
	Versions map[string]string `json:"versions,omitempty"`
	// NACKs counts the responses this data plane rejected.
	NACKs    int   `json:"nacks"`
	LastNACK *NACK `json:"lastNack,omitempty"`
}

// StreamStatus is one xDS stream of a data plane.
type StreamStatus struct {
	ID        int64     `json:"id"`
	UserAgent string    `json:"userAgent"`
	Cluster   string    `json:"cluster,omitempty"`
	Delta     bool      `json:"delta,omitempty"`
	Opened    time.Time `json:"opened"`
	// Acked is the last version the stream accepted, by type URL.
	Acked map[string]string `json:"acked,omitempty"`
	// Sent is the version of the last response sent, by type URL.
	Sent map[string]string `json:"sent,omitempty"`
	// AdminAddr is the admin address the proxy reports in its node
	// metadata (xdsmeta.NodeKeyAdminAddress), empty if none.
	AdminAddr string `json:"adminAddr,omitempty"`
}

// NACK is a response a data plane rejected.
type NACK struct {
	TypeURL string    `json:"typeUrl"`
	Version string    `json:"version"`
	Error   string    `json:"error"`
	Stream  int64     `json:"stream"`
	At      time.Time `json:"at"`
}

// Server serves the views of connected data planes over ADS (state of the
// world and delta) and the per-type xDS services.
//
// Envoy-flavoured data planes' state-of-the-world streams are served from
// sotwCache, which answers as a snapshot cache in ADS mode with ordered
// responses (clusters, then endpoints, then listeners, then routes) and
// shares each response's encoded resources among streams; their delta
// streams from a snapshot cache in ADS mode; proxyless gRPC clients,
// which ask for single listeners by name, from a cache in non-ADS mode,
// which answers any subset of a snapshot (see docs/xds.md).
type Server struct {
	ctx   context.Context
	log   *slog.Logger
	opts  Options
	ads   cache.SnapshotCache
	sotw  *sotwCache
	plain cache.SnapshotCache
	xds   serverv3.Server
	// sds answers the standalone secret discovery service by name (see
	// RegisterSDS): the same snapshots as ads and plain, without ADS mode.
	sds       cache.SnapshotCache
	sdsServer serverv3.Server

	kickInput chan struct{}
	kickNodes chan struct{}

	mu        sync.Mutex
	next      *input // latest Update, not yet applied
	cur       *input // input the views are built from
	tr        *translator
	hash      *hasher
	nodes     map[string]*nodeState
	streams   map[int64]*streamState
	metrics   Metrics
	updatedAt time.Time // of the latest Update, guarded by mu
	// prepared are the snapshots of the views being planned, built with
	// the views; it belongs to the run goroutine, under mu.
	prepared map[*View]*preparedSnapshot
	// built holds, per mesh and virtual node, the endpoints the views
	// now served were built from: what the next input is compared with.
	// It belongs to the run goroutine.
	built map[string]map[string][]Endpoint
	// pushedLookup is the lookup of the latest input whose views were
	// handed to the caches; pushedCh is closed when a later one is.
	pushedLookup v1alpha1.Lookup
	pushedCh     chan struct{}
	// streamActivity is when a response was last queued or sent or a
	// request last received on any stream, in nanoseconds since
	// activityEpoch.
	streamActivity atomic.Int64
}

// activityEpoch is the origin of Server.streamActivity.
var activityEpoch = time.Now()

func (s *Server) touchStreams() { s.streamActivity.Store(int64(time.Since(activityEpoch))) }

// StreamsIdleFor returns how long no response was queued or sent and no
// request received on any stream. A push to thousands of streams keeps
// them busy until every data plane has its response and has ACKed it;
// work that can wait (an apply's warnings) waits for that, so as not to
// take the CPU the push needs.
func (s *Server) StreamsIdleFor() time.Duration {
	return time.Since(activityEpoch) - time.Duration(s.streamActivity.Load())
}

type input struct {
	lookup v1alpha1.Lookup
	eps    Endpoints
}

// nodeState is one snapshot key: every stream with that identity and
// flavour, and what it was served.
type nodeState struct {
	key     string
	id      nodeid.ID
	nodeID  string
	flavour Flavour
	streams map[int64]*streamState

	dirty   bool  // needs a build from the current input
	desired *View // last build
	// desiredFrom is the lookup desired was built from, whose warnings
	// include desired's notes (see Server.Warnings).
	desiredFrom v1alpha1.Lookup
	pushed      *View // what the cache holds
	versions    typeVersions
	notes       []Note

	// make-before-break
	retained     map[string]retainedCluster
	warming      bool // pushed holds new clusters under old routes
	warmDeadline time.Time

	nacks    int
	lastNACK *NACK

	// renewAt is when the node's mesh identity is renewed: its view is
	// rebuilt then, with the new secrets.
	renewAt time.Time
}

type retainedCluster struct {
	cluster *clusterv3.Cluster
	cla     *endpointv3.ClusterLoadAssignment
	until   time.Time
}

type streamState struct {
	ctx       context.Context // the gRPC stream's, for Options.Authorize
	id        int64
	key       string
	delta     bool
	opened    time.Time
	userAgent string
	cluster   string
	node      *corev3.Node
	// sent is the last response per type: its nonce and version.
	sent       map[string][2]string
	sentAt     map[string]time.Time
	acked      map[string]string
	subscribed map[string]bool
}

// NewServer returns a server whose background work ends with ctx.
func NewServer(ctx context.Context, log *slog.Logger, opts Options) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		ctx:       ctx,
		log:       log,
		opts:      opts.withDefaults(),
		kickInput: make(chan struct{}, 1),
		kickNodes: make(chan struct{}, 1),
		nodes:     map[string]*nodeState{},
		streams:   map[int64]*streamState{},
		metrics:   opts.Metrics,
		built:     map[string]map[string][]Endpoint{},
		hash:      newHasher(),
		pushedCh:  make(chan struct{}),
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	cl := cacheLogger{log}
	s.ads = cache.NewSnapshotCache(true, nodeHash{}, cl)
	s.sotw = newSotwCache(nodeHash{}, cl, s.ads)
	s.plain = cache.NewSnapshotCache(false, nodeHash{}, cl)
	mux := &cache.MuxCache{
		// Envoy's state-of-the-world streams are answered by the cache
		// that shares responses; its delta streams and REST fetches, by
		// the snapshot cache.
		Classify: func(r *cache.Request) string {
			if fl := flavourOf(r.GetNode()); fl != FlavourEnvoy {
				return fl.String()
			}
			return sotwKey
		},
		ClassifyDelta: func(r *cache.DeltaRequest) string {
			return flavourOf(r.GetNode()).String()
		},
		Caches: map[string]cache.Cache{sotwKey: s.sotw, FlavourEnvoy.String(): s.ads, FlavourProxyless.String(): s.plain},
	}
	s.xds = serverv3.NewServer(ctx, mux, s, sotw.WithOrderedADS())
	s.sds = cache.NewSnapshotCache(false, nodeHash{}, cl)
	s.sdsServer = serverv3.NewServer(ctx, s.sds, sdsCallbacks{s})
	go s.run()
	return s
}

// Register adds the aggregated discovery service and the per-type
// listener, route, cluster and endpoint discovery services to g.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, s.xds)
	s.RegisterSDS(g)
}

// Update hands the server a new consistent state. The views of connected
// data planes are rebuilt after the debounce delay and pushed where they
// changed. eps must be safe for concurrent use and should not change
// after the call (pass a new value instead).
func (s *Server) Update(l v1alpha1.Lookup, eps Endpoints) {
	s.mu.Lock()
	s.next = &input{lookup: l, eps: eps}
	s.updatedAt = time.Now()
	s.mu.Unlock()
	select {
	case s.kickInput <- struct{}{}:
	default:
	}
}

// Pushed returns the lookup of the latest input whose views the server
// has handed to its caches (nil before the first), and a channel that is
// closed when a later input's are. Work that should not hold up a push,
// such as computing warnings for the API, waits for it.
func (s *Server) Pushed() (v1alpha1.Lookup, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushedLookup, s.pushedCh
}

// Nodes lists the connected data planes, sorted by key.
func (s *Server) Nodes() []NodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NodeStatus, 0, len(s.nodes))
	for _, n := range s.nodes {
		if len(n.streams) == 0 {
			continue
		}
		ns := NodeStatus{
			Key: n.key, ID: n.nodeID, Mesh: n.id.Mesh, Kind: string(n.id.Kind), Name: n.id.Name,
			Flavour: n.flavour.String(), NACKs: n.nacks,
		}
		if n.lastNACK != nil {
			c := *n.lastNACK
			ns.LastNACK = &c
		}
		if n.pushed != nil {
			ns.Versions = map[string]string{
				resource.ListenerType: n.versions.Listeners,
				resource.RouteType:    n.versions.Routes,
				resource.ClusterType:  n.versions.Clusters,
				resource.EndpointType: n.versions.Endpoints,
			}
		}
		for _, st := range n.streams {
			ss := StreamStatus{ID: st.id, UserAgent: st.userAgent, Cluster: st.cluster, Delta: st.delta, Opened: st.opened,
				AdminAddr: xdsmeta.AdminAddress(st.node)}
			if len(st.acked) > 0 {
				ss.Acked = make(map[string]string, len(st.acked))
				for k, v := range st.acked {
					ss.Acked[k] = v
				}
			}
			if len(st.sent) > 0 {
				ss.Sent = make(map[string]string, len(st.sent))
				for k, v := range st.sent {
					ss.Sent[k] = v[1]
				}
			}
			ns.Streams = append(ns.Streams, ss)
		}
		slices.SortFunc(ns.Streams, func(a, b StreamStatus) int { return cmp.Compare(a.ID, b.ID) })
		out = append(out, ns)
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Connected counts the data planes Nodes lists, by flavour, and their
// streams, without listing them (the control plane's metrics read it at
// every scrape).
func (s *Server) Connected() (byFlavour map[string]int, streams int) {
	byFlavour = map[string]int{FlavourEnvoy.String(): 0, FlavourProxyless.String(): 0}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if len(n.streams) == 0 {
			continue
		}
		byFlavour[n.flavour.String()]++
		streams += len(n.streams)
	}
	return byFlavour, streams
}

// ---- identity ----

// proxylessFeature is a client feature only gRPC's xDS client announces.
const proxylessFeature = "envoy.lb.does_not_support_overprovisioning"

// flavourOf tells a proxyless gRPC client (user agent "gRPC Go", "gRPC
// Java", ... or gRPC's client feature) from an Envoy-like data plane.
func flavourOf(n *corev3.Node) Flavour {
	if strings.HasPrefix(strings.ToLower(n.GetUserAgentName()), "grpc") {
		return FlavourProxyless
	}
	if slices.Contains(n.GetClientFeatures(), proxylessFeature) {
		return FlavourProxyless
	}
	return FlavourEnvoy
}

// nodeKey is the snapshot key of an identity and flavour: every instance
// of a virtual node or gateway shares one snapshot.
func nodeKey(id nodeid.ID, fl Flavour) string {
	if fl == FlavourProxyless {
		return id.String() + "~proxyless"
	}
	return id.String()
}

// nodeHash keys the caches by nodeKey.
type nodeHash struct{}

func (nodeHash) ID(n *corev3.Node) string {
	id, err := nodeid.Parse(n.GetId())
	if err != nil {
		return "invalid:" + n.GetId()
	}
	fl := flavourOf(n)
	if fl == FlavourEnvoy && !strings.HasPrefix(n.GetId(), "arn:") {
		return n.GetId() // already id.String(): called on every request, so not built again
	}
	return nodeKey(id, fl)
}

func userAgent(n *corev3.Node) string {
	ua := n.GetUserAgentName()
	if v := n.GetUserAgentVersion(); v != "" {
		return ua + "/" + v
	}
	if bv := n.GetUserAgentBuildVersion().GetVersion(); bv != nil {
		return fmt.Sprintf("%s/%d.%d.%d", ua, bv.GetMajorNumber(), bv.GetMinorNumber(), bv.GetPatch())
	}
	return ua
}

// ---- server callbacks ----

// OnStreamOpen records a new state-of-the-world stream.
func (s *Server) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	s.openStream(ctx, id, false)
	return nil
}

// OnDeltaStreamOpen records a new delta stream.
func (s *Server) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	s.openStream(ctx, deltaStreamID(id), true)
	return nil
}

// deltaStreamBase keeps delta stream ids apart from state-of-the-world
// ones: go-control-plane numbers each kind from 1, and the server keeps
// both in one map.
const deltaStreamBase = 1 << 40

func deltaStreamID(id int64) int64 { return deltaStreamBase + id }

func (s *Server) openStream(ctx context.Context, id int64, delta bool) {
	s.mu.Lock()
	s.streams[id] = &streamState{
		ctx: ctx, id: id, delta: delta, opened: time.Now(),
		sent: map[string][2]string{}, acked: map[string]string{}, subscribed: map[string]bool{},
	}
	s.mu.Unlock()
}

// OnStreamClosed forgets a stream; a data plane with no stream left is
// forgotten by the next build.
func (s *Server) OnStreamClosed(id int64, _ *corev3.Node) { s.closeStream(id) }

// OnDeltaStreamClosed forgets a delta stream.
func (s *Server) OnDeltaStreamClosed(id int64, _ *corev3.Node) { s.closeStream(deltaStreamID(id)) }

func (s *Server) closeStream(id int64) {
	s.mu.Lock()
	st, ok := s.streams[id]
	delete(s.streams, id)
	if ok && st.key != "" {
		if n := s.nodes[st.key]; n != nil {
			delete(n.streams, id)
			if len(n.streams) == 0 {
				s.log.Info("xds: data plane disconnected", "node", n.nodeID, "flavour", n.flavour.String())
			}
		}
	}
	s.mu.Unlock()
	s.kick(s.kickNodes)
}

// OnStreamRequest identifies the data plane on its first request, and
// records ACKs and NACKs. A NACK's version_info is the last version the
// client accepted; it is replaced with the rejected version so that the
// cache waits for a new version instead of resending the rejected one.
func (s *Server) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	s.touchStreams()
	return s.onRequest(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail(), func(v string) {
		req.VersionInfo = v
	})
}

// OnStreamDeltaRequest identifies the data plane and records ACKs and
// NACKs of a delta stream.
func (s *Server) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	s.touchStreams()
	return s.onDeltaRequest(deltaStreamID(id), req)
}

func (s *Server) onDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	return s.onRequest(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), "", req.GetErrorDetail(), nil)
}

func (s *Server) onRequest(id int64, node *corev3.Node, typeURL, nonce, version string, errDetail *rpcstatus.Status, setVersion func(string)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[id]
	if st == nil {
		return nil
	}
	if st.key == "" {
		if err := s.identify(st, node); err != nil {
			return err
		}
	} else if node != nil && (node.GetId() != st.node.GetId() || flavourOf(node) != flavourOf(st.node)) && (nodeHash{}).ID(node) != st.key {
		// go-control-plane answers each request from the snapshot of the
		// node it names: a stream that changed its node would be served
		// another node's view, past the identity it was authorized for.
		s.log.Warn("xds: rejected a stream that changed its node id", "stream", st.id, "node", st.node.GetId(), "new_node", node.GetId())
		return status.Errorf(codes.PermissionDenied, "meshlens: node id changed on the stream from %s to %s; open a new stream", st.node.GetId(), node.GetId())
	}
	n := s.nodes[st.key]
	if n == nil {
		return nil
	}
	st.subscribed[typeURL] = true
	if nonce == "" {
		return nil
	}
	sent, ok := st.sent[typeURL]
	if !ok || sent[0] != nonce {
		return nil // a stale nonce: the server ignores the request
	}
	if errDetail != nil {
		s.metrics.NACKed(typeURL)
		n.nacks++
		n.lastNACK = &NACK{TypeURL: typeURL, Version: sent[1], Error: errDetail.GetMessage(), Stream: id, At: time.Now()}
		s.log.Warn("xds: data plane rejected configuration", "node", n.nodeID, "flavour", n.flavour.String(),
			"stream", id, "type", typeURL, "version", sent[1], "error", errDetail.GetMessage())
		if setVersion != nil {
			setVersion(sent[1])
		}
		return nil
	}
	if st.acked[typeURL] != sent[1] {
		now := time.Now()
		var sinceUpdate time.Duration
		if !s.updatedAt.IsZero() {
			sinceUpdate = now.Sub(s.updatedAt)
		}
		s.metrics.Acked(typeURL, now.Sub(st.sentAt[typeURL]), sinceUpdate)
	}
	if setVersion != nil {
		st.acked[typeURL] = version
	} else {
		st.acked[typeURL] = sent[1]
	}
	if n.warming {
		s.kick(s.kickNodes)
	}
	return nil
}

// identify parses a stream's node on its first request and attaches the
// stream to its data plane. An unparseable identity ends the stream with
// InvalidArgument: such a node could never receive configuration.
func (s *Server) identify(st *streamState, node *corev3.Node) error {
	id, err := nodeid.Parse(node.GetId())
	if err != nil {
		s.log.Warn("xds: rejected a data plane with an invalid node id", "stream", st.id, "node", node.GetId(),
			"user_agent", userAgent(node), "error", err)
		return status.Errorf(codes.InvalidArgument, "meshlens: invalid node id: %v (want mesh/<mesh>/virtualNode/<name>, mesh/<mesh>/virtualGateway/<name> or its ARN)", err)
	}
	fl := flavourOf(node)
	if fl == FlavourProxyless && id.Kind != nodeid.VirtualNode {
		return status.Errorf(codes.InvalidArgument, "meshlens: node id %s: a proxyless gRPC client must be a virtualNode", node.GetId())
	}
	if s.opts.Authorize != nil {
		if err := s.opts.Authorize(st.ctx, id); err != nil {
			s.log.Warn("xds: refused a data plane its configuration", "stream", st.id, "node", node.GetId(),
				"user_agent", userAgent(node), "error", err)
			return err
		}
	}
	key := nodeKey(id, fl)
	st.key, st.node, st.userAgent, st.cluster = key, node, userAgent(node), node.GetCluster()
	n := s.nodes[key]
	if n == nil {
		n = &nodeState{key: key, id: id, nodeID: node.GetId(), flavour: fl, streams: map[int64]*streamState{}, dirty: true}
		s.nodes[key] = n
		s.kick(s.kickNodes)
	}
	n.streams[st.id] = st
	s.log.Info("xds: data plane connected", "node", node.GetId(), "flavour", fl.String(), "stream", st.id,
		"user_agent", st.userAgent, "delta", st.delta)
	return nil
}

// OnStreamResponse remembers the nonce and version of the last response
// per type, to recognise the ACK or NACK that answers it.
func (s *Server) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	s.recordSent(id, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
}

// OnStreamDeltaResponse remembers the nonce and system version of the
// last delta response per type.
func (s *Server) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	s.recordSent(deltaStreamID(id), resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
}

func (s *Server) recordSent(id int64, typeURL, nonce, version string) {
	s.touchStreams()
	s.mu.Lock()
	if st := s.streams[id]; st != nil {
		st.sent[typeURL] = [2]string{nonce, version}
		if st.sentAt == nil {
			st.sentAt = map[string]time.Time{}
		}
		st.sentAt[typeURL] = time.Now()
	}
	s.mu.Unlock()
	s.metrics.Sent(typeURL)
}

// OnFetchRequest accepts REST fetches from well-identified nodes.
func (s *Server) OnFetchRequest(ctx context.Context, req *discovery.DiscoveryRequest) error {
	id, err := nodeid.Parse(req.GetNode().GetId())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "meshlens: invalid node id: %v", err)
	}
	if s.opts.Authorize != nil {
		return s.opts.Authorize(ctx, id)
	}
	return nil
}

// OnFetchResponse does nothing.
func (s *Server) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

// ---- building and pushing ----

func (s *Server) kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run owns every change to the caches: it applies updates (at most one
// rebuild per debounce interval), builds views for data planes that
// connect, advances make-before-break steps, and forgets data planes that
// left.
func (s *Server) run() {
	var debounce <-chan time.Time
	var applied time.Time // when input was last applied
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kickInput:
			if debounce != nil {
				continue // applied with the burst's other updates
			}
			if wait := s.opts.Debounce - time.Since(applied); wait > 0 {
				debounce = time.After(wait)
				continue
			}
			applied = time.Now()
			s.applyInput()
		case <-debounce:
			debounce = nil
			applied = time.Now()
			s.applyInput()
		case <-s.kickNodes:
		case <-timer.C:
		}
		wake := s.step(time.Now())
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if wake.IsZero() {
			timer.Reset(time.Hour)
		} else {
			timer.Reset(max(time.Until(wake), time.Millisecond))
		}
	}
}

// applyInput switches to the latest input and marks for rebuild the data
// planes of every mesh whose resources or endpoints changed.
func (s *Server) applyInput() {
	s.mu.Lock()
	next, cur := s.next, s.cur
	s.next = nil
	if next == nil {
		s.mu.Unlock()
		return
	}
	meshes := map[string]bool{}
	for _, n := range s.nodes {
		meshes[n.id.Mesh] = true
	}
	s.mu.Unlock()

	// Endpoints of meshes nobody is connected to are forgotten: a data
	// plane that connects there is built from scratch.
	for m := range s.built {
		if !meshes[m] {
			delete(s.built, m)
		}
	}
	changed, moved := changes(cur, next, s.built)

	s.mu.Lock()
	var tr *translator
	switch {
	case s.tr == nil:
		tr = newTranslator(next.lookup, next.eps)
	case cur != nil && sameLookup(cur.lookup, next.lookup):
		// Only endpoints changed: keep what does not depend on them.
		tr = s.tr.derive(next.eps)
	default:
		// Resources changed: every view of their meshes is built again,
		// out of the clusters and load assignments that did not change.
		// The hasher holds the encodings of those, and forgets each
		// object once it is collected.
		tr = s.tr.follow(next.lookup, next.eps)
	}
	tr.builtinCollector = s.opts.BuiltinCollector
	tr.meshCA = s.opts.Secrets != nil
	s.cur, s.tr = next, tr
	rebuild := 0
	for _, n := range s.nodes {
		if changed == nil || changed[n.id.Mesh] || n.desired != nil && usesAny(n.desired, moved) {
			n.dirty = true
			rebuild++
		}
	}
	s.mu.Unlock()
	// Every data plane of a changed mesh, and every one that uses moved
	// endpoints, is rebuilt from the new input, which records what it asks
	// for.
	if changed == nil {
		clear(s.built)
	}
	for m := range changed {
		delete(s.built, m)
	}
	for k := range moved {
		delete(s.built[k[0]], k[1])
	}
	s.log.Debug("xds: applied update", "changed_meshes", len(changed), "all", changed == nil,
		"moved_endpoints", len(moved), "rebuild", rebuild)
}

// changes compares two inputs: it returns the meshes whose resources
// differ (nil for "all") and the virtual nodes (mesh, name) of other
// meshes whose endpoints in next differ from those the served views were
// built from (built, by mesh and node).
func changes(old, next *input, built map[string]map[string][]Endpoint) (map[string]bool, map[[2]string]bool) {
	if old == nil {
		return nil, nil
	}
	out := map[string]bool{}
	if !sameLookup(old.lookup, next.lookup) {
		diffResources(old.lookup, next.lookup, out)
	}
	moved := map[[2]string]bool{}
	for m, nodes := range built {
		if out[m] {
			continue
		}
		for node, was := range nodes {
			var now []Endpoint
			if next.eps != nil {
				now = next.eps.Endpoints(m, node)
			}
			if !slices.Equal(was, now) {
				moved[[2]string{m, node}] = true
			}
		}
	}
	return out, moved
}

// sameLookup reports whether a and b are the same value (the same store
// snapshot, when only endpoints changed). Values of a type that cannot be
// compared are taken as different.
func sameLookup(a, b v1alpha1.Lookup) bool {
	ta := reflect.TypeOf(a)
	return ta != nil && ta == reflect.TypeOf(b) && ta.Comparable() && a == b
}

// usesAny reports whether a view contains the endpoints of any of nodes.
func usesAny(v *View, nodes map[[2]string]bool) bool {
	for k := range nodes {
		if v.uses[k] {
			return true
		}
	}
	return false
}

// diffResources marks in out the meshes whose resources differ between
// two lookups.
func diffResources(old, next v1alpha1.Lookup, out map[string]bool) {
	for _, k := range v1alpha1.Kinds {
		a := old.List(k, "", "")
		b := next.List(k, "", "")
		diff := func(r *v1alpha1.Resource) {
			m := r.Mesh
			if r.Kind == v1alpha1.KindMesh {
				m = r.Name
			}
			out[m] = true
		}
		i, j := 0, 0
		for i < len(a) || j < len(b) {
			switch {
			case j == len(b) || (i < len(a) && keyLess(a[i].Key(), b[j].Key())):
				diff(a[i])
				i++
			case i == len(a) || keyLess(b[j].Key(), a[i].Key()):
				diff(b[j])
				j++
			default:
				if a[i] != b[j] && !v1alpha1.SpecEqual(a[i], b[j]) {
					diff(b[j])
				}
				i++
				j++
			}
		}
	}
}

// recordBuilt adds the endpoints tr handed out to built: the views just
// built from tr (and every view built before them, whose endpoints did not
// change since) depend on exactly these.
func (s *Server) recordBuilt(tr *translator) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for k, eps := range tr.endpoints {
		m := s.built[k[0]]
		if m == nil {
			m = map[string][]Endpoint{}
			s.built[k[0]] = m
		}
		m[k[1]] = eps
	}
}

// keyLess orders keys as store snapshots list them; only equality and a
// consistent order matter here.
func keyLess(a, b v1alpha1.Key) bool {
	if a.Mesh != b.Mesh {
		return a.Mesh < b.Mesh
	}
	if a.Parent != b.Parent {
		return a.Parent < b.Parent
	}
	return a.Name < b.Name
}

// step does the pending work for every data plane and returns when it
// next needs to run (zero for "when something happens").
func (s *Server) step(now time.Time) time.Time {
	s.mu.Lock()
	tr, h := s.tr, s.hash
	var build []*nodeState
	// reuse holds, for the data planes to build, a view built from the
	// same resources: when only endpoints changed, only its load
	// assignments are built again (translator.withEndpoints).
	var reuse []*View
	for key, n := range s.nodes {
		if len(n.streams) == 0 {
			delete(s.nodes, key)
			s.cacheFor(n.flavour).ClearSnapshot(key)
			s.sds.ClearSnapshot(key)
			if n.flavour == FlavourEnvoy {
				s.sotw.clearSnapshot(key)
			}
			continue
		}
		if !n.renewAt.IsZero() && !now.Before(n.renewAt) {
			n.dirty = true
		}
		if n.dirty && tr != nil {
			build = append(build, n)
			var old *View
			if n.desired != nil && !n.desired.Missing && sameLookup(n.desiredFrom, tr.lookup) {
				old = n.desired
			}
			reuse = append(reuse, old)
		}
	}
	s.mu.Unlock()

	// Translate and encode outside the lock, on every core: views only
	// read the immutable input and the translator's caches, and each
	// resource is marshalled once (by the first view that holds it).
	// Pushing under the lock below, which holds up every stream's
	// responses and ACKs, then only hands the prepared snapshots to the
	// caches. (Handing them over after releasing the lock would let the
	// thousands of streams each one wakes take the cores from this
	// goroutine, so the last data planes' snapshots would be set late.)
	buildStart := time.Now()
	views := make([]*View, len(build))
	prepared := make(map[*View]*preparedSnapshot, len(build))
	var prepMu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(build)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var v *View
				if reuse[i] != nil {
					v = tr.withEndpoints(reuse[i])
				} else {
					v = tr.view(build[i].id, build[i].flavour)
				}
				views[i] = v
				if v.Missing {
					continue
				}
				var err error
				if v.renewAt, err = s.addSecrets(build[i].id, v); err != nil {
					s.log.Error("xds: mesh CA: no secrets for the data plane; its TLS waits for them", "node", build[i].nodeID, "error", err)
					v.renewAt = time.Now().Add(5 * time.Second) // try again
				}
				p := &preparedSnapshot{}
				p.snap, p.versions, p.err = v.snapshot(h)
				if p.err == nil && build[i].flavour == FlavourEnvoy {
					p.sotw = s.sotw.prepare(p.snap)
				}
				prepMu.Lock()
				prepared[v] = p
				prepMu.Unlock()
			}
		}()
	}
	for i := range build {
		work <- i
	}
	close(work)
	wg.Wait()
	if len(build) > 0 {
		s.metrics.Rebuilt(len(build), time.Since(buildStart))
		s.recordBuilt(tr)
	}

	s.mu.Lock()
	if s.tr != tr {
		// A newer input arrived meanwhile; it rebuilds these nodes.
		s.mu.Unlock()
		return now
	}
	s.prepared = prepared
	for i, n := range build {
		if s.nodes[n.key] != n {
			continue
		}
		n.dirty = false
		n.desiredFrom = tr.lookup
		n.renewAt = views[i].renewAt
		s.logNotes(n, views[i].Notes)
		s.plan(n, views[i], h, now)
	}
	if tr != nil && !sameLookup(s.pushedLookup, tr.lookup) {
		s.pushedLookup = tr.lookup
		close(s.pushedCh)
		s.pushedCh = make(chan struct{})
	}
	var wake time.Time
	soonest := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	for _, n := range s.nodes {
		switch {
		case n.warming && (now.After(n.warmDeadline) || s.warmed(n)):
			n.warming = false
			s.push(n, s.withRetained(n, n.desired, now), h)
		case !n.warming && n.expired(now):
			s.push(n, s.withRetained(n, n.desired, now), h)
		}
		if n.warming {
			soonest(n.warmDeadline)
		}
		soonest(n.renewAt)
		for _, rc := range n.retained {
			soonest(rc.until)
		}
	}
	s.prepared = nil
	s.mu.Unlock()
	return wake
}

// preparedSnapshot is a view's snapshot, built while the view was.
type preparedSnapshot struct {
	sotw     *sotwSnapshot // for Envoy's state-of-the-world streams
	snap     *cache.Snapshot
	versions typeVersions
	err      error
}

func (s *Server) cacheFor(fl Flavour) cache.SnapshotCache {
	if fl == FlavourProxyless {
		return s.plain
	}
	return s.ads
}

// logNotes logs a data plane's notes when they change. The user sees them
// as warnings on the resources (Warnings), whether or not a data plane is
// connected; the log says which data plane they concern.
func (s *Server) logNotes(n *nodeState, notes []Note) {
	if slices.Equal(notes, n.notes) {
		return
	}
	n.notes = notes
	for _, note := range notes {
		s.log.Warn("xds: not translated", "node", n.nodeID, "flavour", n.flavour.String(),
			"resource", note.Resource.String(), "field", note.Path, "note", note.Message)
	}
}

// plan pushes a freshly built view, make-before-break for Envoy:
//
//   - clusters the previous push had and this view lacks are kept, with
//     their endpoints, for ClusterGrace, so that no route still in use
//     names a cluster that is gone;
//   - when the view adds clusters, they are first pushed under the old
//     listeners and routes, and the new routes follow once every stream
//     has ACKed those clusters and their endpoints (or after WarmTimeout).
//
// Proxyless clients fetch the clusters their routes name by themselves,
// so they get the view as it is.
func (s *Server) plan(n *nodeState, v *View, h *hasher, now time.Time) {
	prev := n.pushed
	n.desired = v
	if prev == nil || n.flavour == FlavourProxyless {
		n.retained, n.warming = nil, false
		s.push(n, v, h)
		return
	}
	want := map[string]bool{}
	for _, c := range v.Clusters {
		want[c.Name] = true
	}
	claOf := map[string]*endpointv3.ClusterLoadAssignment{}
	for _, cla := range prev.Endpoints {
		claOf[cla.ClusterName] = cla
	}
	if n.retained == nil {
		n.retained = map[string]retainedCluster{}
	}
	for name := range n.retained {
		if want[name] {
			delete(n.retained, name)
		}
	}
	had := map[string]bool{}
	for _, c := range prev.Clusters {
		had[c.Name] = true
		if _, ok := n.retained[c.Name]; !ok && !want[c.Name] {
			n.retained[c.Name] = retainedCluster{cluster: c, cla: claOf[c.Name], until: now.Add(s.opts.ClusterGrace)}
		}
	}
	final := s.withRetained(n, v, now)
	added := false
	for _, c := range v.Clusters {
		if !had[c.Name] {
			added = true
			break
		}
	}
	if !added {
		n.warming = false
		s.push(n, final, h)
		return
	}
	warm := &View{Listeners: prev.Listeners, Routes: prev.Routes, Clusters: final.Clusters, Endpoints: final.Endpoints, Secrets: final.Secrets}
	n.warming, n.warmDeadline = true, now.Add(s.opts.WarmTimeout)
	s.push(n, warm, h)
}

// withRetained returns v plus the retained clusters that have not expired
// (dropping the expired ones).
func (s *Server) withRetained(n *nodeState, v *View, now time.Time) *View {
	if len(n.retained) == 0 {
		return v
	}
	out := &View{Listeners: v.Listeners, Routes: v.Routes, Notes: v.Notes, Secrets: v.Secrets,
		Clusters: slices.Clone(v.Clusters), Endpoints: slices.Clone(v.Endpoints)}
	for name, rc := range n.retained {
		if !now.Before(rc.until) {
			delete(n.retained, name)
			continue
		}
		out.Clusters = append(out.Clusters, rc.cluster)
		if rc.cla != nil {
			out.Endpoints = append(out.Endpoints, rc.cla)
		}
	}
	slices.SortFunc(out.Clusters, func(a, b *clusterv3.Cluster) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(out.Endpoints, func(a, b *endpointv3.ClusterLoadAssignment) int {
		return strings.Compare(a.ClusterName, b.ClusterName)
	})
	return out
}

func (n *nodeState) expired(now time.Time) bool {
	for _, rc := range n.retained {
		if !now.Before(rc.until) {
			return true
		}
	}
	return false
}

// warmed reports whether every stream that subscribed to clusters and
// endpoints has ACKed the versions being warmed.
func (s *Server) warmed(n *nodeState) bool {
	for _, st := range n.streams {
		if st.subscribed[resource.ClusterType] && st.acked[resource.ClusterType] != n.versions.Clusters {
			return false
		}
		if st.subscribed[resource.EndpointType] && st.acked[resource.EndpointType] != n.versions.Endpoints {
			return false
		}
	}
	return true
}

// push hands a view to the node's cache. Types whose content did not
// change keep their version, so the cache does not resend them.
func (s *Server) push(n *nodeState, v *View, h *hasher) {
	s.touchStreams() // responses are queued for the streams
	if v.Missing {
		// Nothing to serve: a data plane of a resource that does not
		// exist must not turn LIVE with an empty configuration. One whose
		// resource was deleted keeps what it had.
		if n.pushed == nil || !n.pushed.Missing {
			s.log.Info("xds: data plane of a resource that does not exist; not configured", "node", n.nodeID)
		}
		n.pushed = v
		return
	}
	var snap *cache.Snapshot
	var sotw *sotwSnapshot
	var tv typeVersions
	var err error
	if p := s.prepared[v]; p != nil {
		snap, tv, err, sotw = p.snap, p.versions, p.err, p.sotw
	} else {
		snap, tv, err = v.snapshot(h)
	}
	if err != nil {
		s.log.Error("xds: not pushing an inconsistent view", "node", n.nodeID, "error", err)
		return
	}
	n.pushed = v
	if tv == n.versions {
		return
	}
	n.versions = tv
	if n.flavour == FlavourEnvoy {
		if sotw == nil {
			sotw = s.sotw.prepare(snap)
		}
		s.sotw.setSnapshot(s.ctx, n.key, sotw)
	}
	if err := s.cacheFor(n.flavour).SetSnapshot(s.ctx, n.key, snap); err != nil {
		s.log.Error("xds: set snapshot", "node", n.nodeID, "error", err)
		return
	}
	if err := s.sds.SetSnapshot(s.ctx, n.key, snap); err != nil {
		s.log.Error("xds: set snapshot for standalone SDS", "node", n.nodeID, "error", err)
		return
	}
	s.log.Debug("xds: pushed", "node", n.nodeID, "flavour", n.flavour.String(),
		"listeners", tv.Listeners, "routes", tv.Routes, "clusters", tv.Clusters, "endpoints", tv.Endpoints)
}

// sotwKey classifies the requests of Envoy's state-of-the-world streams.
const sotwKey = "envoy-sotw"

// cacheLogger sends go-control-plane's logs to slog, one level down: its
// warnings (such as an ADS request naming a subset of a type) are normal
// moments of the protocol.
type cacheLogger struct{ log *slog.Logger }

// The cache logs every response it sends at debug level: a message is
// only formatted when its level is enabled.
func (l cacheLogger) logf(level slog.Level, format string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, "xds cache: "+fmt.Sprintf(format, args...))
}

func (l cacheLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l cacheLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l cacheLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelInfo, format, args...) }
func (l cacheLogger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args...) }
