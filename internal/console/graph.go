package console

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/metricshistory"
)

// Health thresholds on an edge's error ratio.
const (
	DegradedRatio = 0.01
	FailingRatio  = 0.05
)

// Graph is GET /v1/console/graph's body.
type Graph struct {
	GeneratedAt time.Time `json:"generatedAt"`
	Window      string    `json:"window"`
	Nodes       []Node    `json:"nodes"`
	Edges       []Edge    `json:"edges"`
}

// Node is a gateway, a virtual node, a virtual service (with the virtual
// nodes serving it as its versions) or the unknown caller. IDs are
// "<mesh>/<kind>/<name>" ("unknown" for the unknown caller): stable, so a
// layout can keep positions as nodes come and go.
type Node struct {
	ID       string   `json:"id"`
	Kind     string   `json:"kind"` // virtualNode, virtualGateway, virtualService, unknown
	Mesh     string   `json:"mesh,omitempty"`
	Name     string   `json:"name"`
	Versions []string `json:"versions,omitempty"` // a service's virtual nodes
	Router   string   `json:"router,omitempty"`
	Routes   []Route  `json:"routes,omitempty"`
	Badges   []string `json:"badges,omitempty"`
}

// Route is a router's route with its configured weights.
type Route struct {
	Name    string   `json:"name"`
	Targets []Target `json:"targets"`
	Badges  []string `json:"badges,omitempty"`
}

// Target is one weighted target; Share is its weight over the route's
// total.
type Target struct {
	VirtualNode string  `json:"virtualNode"`
	Weight      int     `json:"weight"`
	Share       float64 `json:"share"`
}

// Edge is traffic from a caller to a virtual service, as the caller's
// proxy counted it (the unknown caller's as the service's proxies did).
// Split is the observed share of each version beside the configured one
// (ConfiguredShare, summed over the router's routes). Idle edges are
// configured backends that carried nothing in the window.
type Edge struct {
	ID            string `json:"id"`
	Source        string `json:"source"`
	Target        string `json:"target"`
	RPS           Num    `json:"rps"`
	ErrorRatio    Num    `json:"errorRatio"`
	P50           Num    `json:"p50"`
	P99           Num    `json:"p99"`
	Health        string `json:"health"` // healthy, degraded, failing, idle
	Idle          bool   `json:"idle,omitempty"`
	UnknownSource bool   `json:"unknownSource,omitempty"`
	// MTLS says whether the hop was mutually authenticated, as the called
	// proxies saw the connections: true when all of the edge's traffic
	// was, false when some was not, absent when they reported none.
	MTLS  *bool   `json:"mtls,omitempty"`
	Split []Split `json:"split,omitempty"`
}

// Split is one version's part of an edge's traffic.
type Split struct {
	VirtualNode     string   `json:"virtualNode"`
	RPS             Num      `json:"rps"`
	ObservedShare   float64  `json:"observedShare"`
	ConfiguredShare *float64 `json:"configuredShare,omitempty"`
}

func nodeID(mesh, kind, name string) string { return mesh + "/" + kind + "/" + name }

func health(errRatio float64) string {
	switch {
	case errRatio >= FailingRatio:
		return "failing"
	case errRatio >= DegradedRatio:
		return "degraded"
	}
	return "healthy"
}

// Graph builds the graph of mesh (every mesh when empty) over window.
func (h *Handler) Graph(ctx context.Context, mesh string, window time.Duration) (*Graph, error) {
	res := h.Resources()
	g := &Graph{GeneratedAt: time.Now().UTC(), Window: window.String(), Nodes: []Node{}, Edges: []Edge{}}
	nodes := map[string]*Node{}
	add := func(n Node) *Node {
		if p := nodes[n.ID]; p != nil {
			return p
		}
		p := &n
		nodes[n.ID] = p
		return p
	}
	configured := map[[2]string]bool{} // (source, service) backends
	share := map[string]map[string]float64{}
	for _, r := range res.List(v1alpha1.KindVirtualNode, mesh, "") {
		n := add(Node{ID: nodeID(r.Mesh, "virtualNode", r.Name), Kind: "virtualNode", Mesh: r.Mesh, Name: r.Name})
		if s := r.VirtualNodeSpec; s != nil {
			n.Badges = nodeBadges(s)
			for _, b := range s.Backends {
				if b.VirtualService != nil {
					configured[[2]string{n.ID, nodeID(r.Mesh, "virtualService", b.VirtualService.VirtualServiceName)}] = true
				}
			}
		}
	}
	for _, r := range res.List(v1alpha1.KindVirtualGateway, mesh, "") {
		add(Node{ID: nodeID(r.Mesh, "virtualGateway", r.Name), Kind: "virtualGateway", Mesh: r.Mesh, Name: r.Name})
	}
	for _, r := range res.List(v1alpha1.KindGatewayRoute, mesh, "") {
		if t := gatewayTarget(r.GatewayRouteSpec); t != "" {
			configured[[2]string{nodeID(r.Mesh, "virtualGateway", r.VirtualGateway), nodeID(r.Mesh, "virtualService", t)}] = true
		}
	}
	for _, r := range res.List(v1alpha1.KindVirtualService, mesh, "") {
		n := add(Node{ID: nodeID(r.Mesh, "virtualService", r.Name), Kind: "virtualService", Mesh: r.Mesh, Name: r.Name})
		p := r.VirtualServiceSpec
		switch {
		case p == nil || p.Provider == nil:
		case p.Provider.VirtualNode != nil:
			n.Versions = []string{p.Provider.VirtualNode.VirtualNodeName}
			share[n.ID] = map[string]float64{p.Provider.VirtualNode.VirtualNodeName: 1}
		case p.Provider.VirtualRouter != nil:
			n.Router = p.Provider.VirtualRouter.VirtualRouterName
			total := map[string]float64{}
			var sum float64
			seen := map[string]bool{}
			for _, rt := range res.List(v1alpha1.KindRoute, r.Mesh, n.Router) {
				route := Route{Name: rt.Name, Targets: []Target{}}
				targets, badges := routeTargets(rt.RouteSpec)
				route.Badges = badges
				var w int
				for _, t := range targets {
					w += t.Weight
				}
				for _, t := range targets {
					if w > 0 {
						t.Share = float64(t.Weight) / float64(w)
					}
					route.Targets = append(route.Targets, t)
					total[t.VirtualNode] += t.Share
					sum += t.Share
					if !seen[t.VirtualNode] {
						seen[t.VirtualNode] = true
						n.Versions = append(n.Versions, t.VirtualNode)
					}
				}
				for _, b := range badges {
					n.Badges = appendOnce(n.Badges, b)
				}
				n.Routes = append(n.Routes, route)
			}
			if sum > 0 {
				share[n.ID] = map[string]float64{}
				for vn, s := range total {
					share[n.ID][vn] = s / sum
				}
			}
		}
	}

	by := []string{metricshistory.LabelSourceMesh, metricshistory.LabelSourceKind, metricshistory.LabelSourceWorkload,
		metricshistory.LabelDestinationMesh, metricshistory.LabelDestinationService}
	edges, err := h.Metrics.Stats(ctx, metricshistory.Query{Selector: metricshistory.Labels{Reporter: "source", SourceMesh: mesh}, GroupBy: by, Window: window})
	if err != nil {
		return nil, fmt.Errorf("edges: %w", err)
	}
	splits, err := h.Metrics.Stats(ctx, metricshistory.Query{Selector: metricshistory.Labels{Reporter: "source", SourceMesh: mesh},
		GroupBy: append(by, metricshistory.LabelDestinationWorkload), Window: window})
	if err != nil {
		return nil, fmt.Errorf("edge splits: %w", err)
	}
	unknownIn, err := h.Metrics.Stats(ctx, metricshistory.Query{
		Selector: metricshistory.Labels{Reporter: "destination", SourceWorkload: "unknown", DestinationMesh: mesh},
		GroupBy:  []string{metricshistory.LabelDestinationMesh, metricshistory.LabelDestinationService}, Window: window})
	if err != nil {
		return nil, fmt.Errorf("unknown callers: %w", err)
	}

	security, err := h.Metrics.Stats(ctx, metricshistory.Query{
		Selector: metricshistory.Labels{Reporter: "destination", DestinationMesh: mesh},
		GroupBy: []string{metricshistory.LabelSourceMesh, metricshistory.LabelSourceKind, metricshistory.LabelSourceWorkload,
			metricshistory.LabelDestinationMesh, metricshistory.LabelDestinationService, metricshistory.LabelSecurity}, Window: window})
	if err != nil {
		return nil, fmt.Errorf("connection security: %w", err)
	}

	edgeIdx := map[[2]string]*Edge{}
	addEdge := func(src, dst string, s metricshistory.Stat, unknownSrc bool) {
		e := &Edge{ID: src + "->" + dst, Source: src, Target: dst, RPS: Num(s.RPS), ErrorRatio: Num(s.ErrorRatio),
			P50: Num(s.P50), P99: Num(s.P99), Health: health(s.ErrorRatio), UnknownSource: unknownSrc}
		edgeIdx[[2]string{src, dst}] = e
	}
	for _, s := range edges {
		l := s.Labels
		if s.RPS == 0 {
			continue
		}
		src := nodeID(l.SourceMesh, l.SourceKind, l.SourceWorkload)
		dst := nodeID(l.DestinationMesh, "virtualService", l.DestinationService)
		add(Node{ID: src, Kind: l.SourceKind, Mesh: l.SourceMesh, Name: l.SourceWorkload})
		add(Node{ID: dst, Kind: "virtualService", Mesh: l.DestinationMesh, Name: l.DestinationService})
		addEdge(src, dst, s, false)
	}
	for _, s := range unknownIn {
		if s.RPS == 0 {
			continue
		}
		dst := nodeID(s.Labels.DestinationMesh, "virtualService", s.Labels.DestinationService)
		add(Node{ID: "unknown", Kind: "unknown", Name: "unknown"})
		add(Node{ID: dst, Kind: "virtualService", Mesh: s.Labels.DestinationMesh, Name: s.Labels.DestinationService})
		addEdge("unknown", dst, s, true)
	}
	for _, s := range splits {
		l := s.Labels
		e := edgeIdx[[2]string{nodeID(l.SourceMesh, l.SourceKind, l.SourceWorkload), nodeID(l.DestinationMesh, "virtualService", l.DestinationService)}]
		if e == nil || s.RPS == 0 {
			continue
		}
		sp := Split{VirtualNode: l.DestinationWorkload, RPS: Num(s.RPS), ObservedShare: s.RPS / float64(e.RPS)}
		if m := share[e.Target]; m != nil {
			c := m[l.DestinationWorkload]
			sp.ConfiguredShare = &c
		}
		e.Split = append(e.Split, sp)
	}
	for _, s := range security {
		l := s.Labels
		src := nodeID(l.SourceMesh, l.SourceKind, l.SourceWorkload)
		if l.SourceWorkload == "unknown" {
			src = "unknown"
		}
		e := edgeIdx[[2]string{src, nodeID(l.DestinationMesh, "virtualService", l.DestinationService)}]
		if e == nil || s.RPS == 0 {
			continue
		}
		m := l.Security == "mutual_tls"
		if e.MTLS == nil || !m {
			e.MTLS = &m
		}
	}
	// Configured versions with no traffic show with share 0 observed.
	for _, e := range edgeIdx {
		if e.UnknownSource {
			continue
		}
		for vn, c := range share[e.Target] {
			found := false
			for _, sp := range e.Split {
				found = found || sp.VirtualNode == vn
			}
			if !found {
				c := c
				e.Split = append(e.Split, Split{VirtualNode: vn, ConfiguredShare: &c})
			}
		}
		sort.Slice(e.Split, func(i, j int) bool { return e.Split[i].VirtualNode < e.Split[j].VirtualNode })
	}
	for k := range configured {
		if edgeIdx[k] != nil || nodes[k[0]] == nil || nodes[k[1]] == nil {
			continue
		}
		edgeIdx[k] = &Edge{ID: k[0] + "->" + k[1], Source: k[0], Target: k[1], Health: "idle", Idle: true, P50: Num(nan()), P99: Num(nan())}
	}
	for _, n := range nodes {
		g.Nodes = append(g.Nodes, *n)
	}
	for _, e := range edgeIdx {
		g.Edges = append(g.Edges, *e)
	}
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	sort.Slice(g.Edges, func(i, j int) bool { return g.Edges[i].ID < g.Edges[j].ID })
	return g, nil
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// nodeBadges are a virtual node's policies on its listeners.
func nodeBadges(s *v1alpha1.VirtualNodeSpec) []string {
	var b []string
	for _, l := range s.Listeners {
		if l.OutlierDetection != nil {
			b = appendOnce(b, "outlierDetection")
		}
		if l.ConnectionPool != nil {
			b = appendOnce(b, "circuitBreaker")
		}
		if l.HealthCheck != nil {
			b = appendOnce(b, "healthCheck")
		}
		if l.Timeout != nil {
			b = appendOnce(b, "timeout")
		}
		if l.TLS != nil {
			b = appendOnce(b, "tls")
		}
		if m := l.Meshlens; m != nil {
			if m.Fault != nil {
				b = appendOnce(b, "fault")
			}
			if m.RateLimit != nil {
				b = appendOnce(b, "rateLimit")
			}
		}
	}
	return b
}

// routeTargets are a route's weighted targets and policy badges.
func routeTargets(s *v1alpha1.RouteSpec) ([]Target, []string) {
	if s == nil {
		return nil, nil
	}
	var wts []v1alpha1.WeightedTarget
	var b []string
	httpRoute := func(r *v1alpha1.HTTPRoute) {
		if r.Action != nil {
			wts = r.Action.WeightedTargets
		}
		if r.RetryPolicy != nil {
			b = append(b, "retries")
		}
		if r.Timeout != nil {
			b = append(b, "timeout")
		}
		if m := r.Meshlens; m != nil {
			if m.Fault != nil {
				b = append(b, "fault")
			}
			if m.RateLimit != nil {
				b = append(b, "rateLimit")
			}
		}
	}
	switch {
	case s.HTTPRoute != nil:
		httpRoute(s.HTTPRoute)
	case s.HTTP2Route != nil:
		httpRoute(s.HTTP2Route)
	case s.GRPCRoute != nil:
		r := s.GRPCRoute
		if r.Action != nil {
			wts = r.Action.WeightedTargets
		}
		if r.RetryPolicy != nil {
			b = append(b, "retries")
		}
		if r.Timeout != nil {
			b = append(b, "timeout")
		}
		if m := r.Meshlens; m != nil {
			if m.Fault != nil {
				b = append(b, "fault")
			}
			if m.RateLimit != nil {
				b = append(b, "rateLimit")
			}
		}
	case s.TCPRoute != nil:
		if s.TCPRoute.Action != nil {
			wts = s.TCPRoute.Action.WeightedTargets
		}
		if s.TCPRoute.Timeout != nil {
			b = append(b, "timeout")
		}
	}
	out := make([]Target, 0, len(wts))
	for _, w := range wts {
		out = append(out, Target{VirtualNode: w.VirtualNode, Weight: w.Weight})
	}
	return out, b
}

func gatewayTarget(s *v1alpha1.GatewayRouteSpec) string {
	if s == nil {
		return ""
	}
	var t *v1alpha1.GatewayRouteTarget
	switch {
	case s.HTTPRoute != nil && s.HTTPRoute.Action != nil:
		t = s.HTTPRoute.Action.Target
	case s.HTTP2Route != nil && s.HTTP2Route.Action != nil:
		t = s.HTTP2Route.Action.Target
	case s.GRPCRoute != nil && s.GRPCRoute.Action != nil:
		t = s.GRPCRoute.Action.Target
	}
	if t == nil || t.VirtualService == nil {
		return ""
	}
	return t.VirtualService.VirtualServiceName
}
