package console

import (
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/xds"
)

// MaxDiffProxies bounds the data planes a dry run translates.
const MaxDiffProxies = 5000

// ProxyDiff is what a change does to one data plane's configuration.
type ProxyDiff struct {
	// Node is the data plane's identity (mesh/<mesh>/<kind>/<name>);
	// every instance of it gets the same configuration.
	Node     string        `json:"node"`
	Routes   []RouteChange `json:"routes,omitempty"`
	Clusters ClusterChange `json:"clusters"`
}

// RouteChange is one route of a data plane that appears, goes or sends
// elsewhere: its route configuration, virtual host and name, and the
// clusters with their weights before and after.
type RouteChange struct {
	RouteConfig string   `json:"routeConfig"`
	VirtualHost string   `json:"virtualHost"`
	Route       string   `json:"route"`
	Change      string   `json:"change"` // added, removed, changed
	Old         []Weight `json:"old,omitempty"`
	New         []Weight `json:"new,omitempty"`
}

// Weight is one cluster of a route's action and its weight (100 for a
// route with a single cluster).
type Weight struct {
	Cluster string `json:"cluster"`
	Weight  uint32 `json:"weight"`
}

// ClusterChange lists clusters added, removed and changed (timeouts,
// circuit breakers, outlier detection, TLS...).
type ClusterChange struct {
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"`
}

func (c ClusterChange) empty() bool { return len(c.Added)+len(c.Removed)+len(c.Changed) == 0 }

// Diff translates every virtual node and virtual gateway of meshes (as
// the control plane would for a sidecar or gateway) from before and from
// after, and reports the data planes whose routes or clusters differ.
func Diff(before, after v1alpha1.Lookup, eps func(v1alpha1.Lookup) xds.Endpoints, meshes []string) []ProxyDiff {
	ids := map[string]nodeid.ID{}
	for _, l := range []v1alpha1.Lookup{before, after} {
		for _, mesh := range meshes {
			for _, kind := range []v1alpha1.Kind{v1alpha1.KindVirtualNode, v1alpha1.KindVirtualGateway} {
				for _, r := range l.List(kind, mesh, "") {
					k := nodeid.VirtualNode
					if kind == v1alpha1.KindVirtualGateway {
						k = nodeid.VirtualGateway
					}
					id := nodeid.ID{Mesh: r.Mesh, Kind: k, Name: r.Name}
					if len(ids) < MaxDiffProxies {
						ids[id.String()] = id
					}
				}
			}
		}
	}
	be, ae := eps(before), eps(after)
	var out []ProxyDiff
	for name, id := range ids {
		old := xds.Translate(before, be, id, xds.FlavourEnvoy)
		cur := xds.Translate(after, ae, id, xds.FlavourEnvoy)
		d := ProxyDiff{Node: name, Routes: diffRoutes(old.Routes, cur.Routes), Clusters: diffClusters(old.Clusters, cur.Clusters)}
		if len(d.Routes) > 0 || !d.Clusters.empty() {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

type routeKey struct{ config, vhost, route string }

func routeWeights(rcs []*routev3.RouteConfiguration) (map[routeKey][]Weight, []routeKey) {
	m := map[routeKey][]Weight{}
	var order []routeKey
	for _, rc := range rcs {
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				k := routeKey{rc.GetName(), vh.GetName(), r.GetName()}
				var w []Weight
				a := r.GetRoute()
				switch {
				case a.GetCluster() != "":
					w = []Weight{{Cluster: a.GetCluster(), Weight: 100}}
				case a.GetWeightedClusters() != nil:
					for _, c := range a.GetWeightedClusters().GetClusters() {
						w = append(w, Weight{Cluster: c.GetName(), Weight: c.GetWeight().GetValue()})
					}
				}
				if _, dup := m[k]; !dup {
					order = append(order, k)
				}
				m[k] = w
			}
		}
	}
	return m, order
}

func sameWeights(a, b []Weight) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func diffRoutes(before, after []*routev3.RouteConfiguration) []RouteChange {
	old, oldOrder := routeWeights(before)
	cur, curOrder := routeWeights(after)
	var out []RouteChange
	for _, k := range curOrder {
		o, had := old[k]
		n := cur[k]
		switch {
		case !had:
			out = append(out, RouteChange{RouteConfig: k.config, VirtualHost: k.vhost, Route: k.route, Change: "added", New: n})
		case !sameWeights(o, n):
			out = append(out, RouteChange{RouteConfig: k.config, VirtualHost: k.vhost, Route: k.route, Change: "changed", Old: o, New: n})
		}
	}
	for _, k := range oldOrder {
		if _, has := cur[k]; !has {
			out = append(out, RouteChange{RouteConfig: k.config, VirtualHost: k.vhost, Route: k.route, Change: "removed", Old: old[k]})
		}
	}
	return out
}

func diffClusters(before, after []*clusterv3.Cluster) ClusterChange {
	old := map[string]*clusterv3.Cluster{}
	for _, c := range before {
		old[c.GetName()] = c
	}
	var ch ClusterChange
	seen := map[string]bool{}
	for _, c := range after {
		seen[c.GetName()] = true
		o, ok := old[c.GetName()]
		switch {
		case !ok:
			ch.Added = append(ch.Added, c.GetName())
		case !proto.Equal(o, c):
			ch.Changed = append(ch.Changed, c.GetName())
		}
	}
	for _, c := range before {
		if !seen[c.GetName()] {
			ch.Removed = append(ch.Removed, c.GetName())
		}
	}
	sort.Strings(ch.Added)
	sort.Strings(ch.Removed)
	sort.Strings(ch.Changed)
	return ch
}
