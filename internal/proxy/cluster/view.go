package cluster

import (
	"math/rand/v2"
	"net"

	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// View is a cluster as one snapshot sees it: its endpoints with
// their counters, indexed as table.Cluster.Endpoints, on top of the
// cluster's upstream.
type View struct {
	Cluster *table.Cluster
	Up      *Upstream
	Hosts   []*Endpoint
	// override replaces every endpoint (Config.App).
	override *Endpoint
	// OrigDst: the cluster is ORIGINAL_DST; the endpoint is the
	// connection's original destination.
	OrigDst bool
	// load reports an endpoint's active requests to least-request
	// picking, skip passes over ejected endpoints (nil without outlier
	// detection); bound once here so that picking does not allocate.
	load func(i int) int64
	Skip func(i int) bool
	// OutlierStats are the cluster's outlier-detection stats when it has outlier
	// detection.
	OutlierStats *OutlierStats
	// limits are the cluster's circuit-breaker thresholds.
	limits Limits
	// Edges are the calling side's mesh-metric edges, by the virtual
	// service and route a request reached this cluster for.
	Edges map[meshmetrics.EdgeKey]*meshmetrics.Edge
}

// Endpoint is one endpoint with what the request path needs
// precomputed.
type Endpoint struct {
	Addr     string // host:port, dialed and used as the request URL's host
	Hostname string // DNS name without port, for auto_host_rewrite
	Spec     table.Endpoint
	Stats    *EndpointStats
}

// NewView prepares c's endpoints. override, when set, replaces them
// with one endpoint (Config.App).
func NewView(c *table.Cluster, u *Upstream, override string) *View {
	if u.unserved() && c.TLS != nil {
		return &View{Cluster: c, Up: u, limits: limitsOf(c.Limits)} // unusable (SDS): no endpoints
	}
	v := &View{Cluster: c, Up: u, OrigDst: c.Type == table.ClusterOriginalDst, limits: limitsOf(c.Limits)}
	v.load = func(i int) int64 { return v.Hosts[i].Stats.RqActive.Load() }
	if c.Outlier != nil && override == "" && !v.OrigDst {
		v.OutlierStats = u.Stats.Outlier()
	}
	if (c.Outlier != nil || c.HealthCheck != nil) && override == "" && !v.OrigDst {
		v.Skip = func(i int) bool { return v.Hosts[i].Stats.Unusable() }
	}
	if override != "" {
		v.override = &Endpoint{Addr: override, Spec: table.Endpoint{Healthy: true, Weight: 1}, Stats: u.Endpoint(override)}
	}
	for _, ep := range c.Endpoints {
		e := &Endpoint{Spec: ep}
		switch {
		case ep.Address.IsValid():
			e.Addr = ep.Address.String()
		default:
			e.Addr = ep.Hostname
		}
		if ep.Hostname != "" {
			e.Hostname = ep.Hostname
			if h, _, err := net.SplitHostPort(ep.Hostname); err == nil {
				e.Hostname = h
			}
		}
		e.Stats = u.Endpoint(e.Addr)
		v.Hosts = append(v.Hosts, e)
	}
	return v
}

// Endpoints lists what /clusters shows: the override, or the endpoints.
func (v *View) Endpoints() []*Endpoint {
	if v.override != nil {
		return []*Endpoint{v.override}
	}
	return v.Hosts
}

// Pick returns the endpoint for a new request or connection by the
// cluster's policy (package table), or nil when the cluster has none to
// offer (Envoy's "no healthy upstream").
func (v *View) Pick() *Endpoint {
	if v.override != nil {
		return v.override
	}
	i, ok := v.Cluster.PickIndex(rand.Uint64(), v.Skip, v.load)
	if !ok || i < 0 || i >= len(v.Hosts) {
		return nil
	}
	return v.Hosts[i]
}

// OrigDstHost is the endpoint of an ORIGINAL_DST cluster for one
// connection's destination addr (host:port): counters of its own, which
// the cluster does not keep.
func (v *View) OrigDstHost(addr string) *Endpoint {
	return &Endpoint{Addr: addr, Stats: v.Up.Endpoint(addr), Spec: table.Endpoint{Healthy: true, Weight: 1}}
}
