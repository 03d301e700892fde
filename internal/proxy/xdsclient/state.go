package xdsclient

import (
	"fmt"
	"maps"
	"slices"

	"github.com/meshlens/meshlens/internal/xdsproto"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	endpointv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/endpoint/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/service/discovery/v3"
	resourcev3 "github.com/meshlens/meshlens/internal/xdsproto/resource"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

// The resource types the client subscribes to, in the order it subscribes
// (clusters before listeners, as Envoy initialises).
// SDS secrets (resourcev3.SecretType) are subscribed to by name, after
// these, when listeners or clusters name some (see handleSecrets).
var subscribed = []string{resourcev3.ClusterType, resourcev3.ListenerType, resourcev3.RouteType, resourcev3.EndpointType}

// fullState reports whether a response of the type carries the whole set
// (LDS, CDS) rather than some of the subscribed names (RDS, EDS).
func fullState(typeURL string) bool {
	return typeURL == resourcev3.ListenerType || typeURL == resourcev3.ClusterType
}

var typeHCM = "type.googleapis.com/" + (&hcmv3.HttpConnectionManager{}).XDSTypeName()
var typeResource = "type.googleapis.com/" + (&discoveryv3.Resource{}).XDSTypeName()

// resources is one set of resources by type URL and name. Values are
// never modified once stored, so sets share them freely.
type resources map[string]map[string]xdsproto.Message

// clone copies the maps (not the messages).
func (r resources) clone() resources {
	out := resources{}
	for t, m := range r {
		out[t] = maps.Clone(m)
	}
	return out
}

// decode unpacks a response's resources, checking types, names and each
// resource's proto validation (the structural checks Envoy runs before
// anything else).
func decode(resp *discoveryv3.DiscoveryResponse) (map[string]xdsproto.Message, error) {
	out := map[string]xdsproto.Message{}
	for i, a := range resp.GetResources() {
		if a.GetTypeUrl() == typeResource {
			var w discoveryv3.Resource
			if err := xdsproto.UnmarshalAny(a, &w); err != nil {
				return nil, fmt.Errorf("resources[%d]: %w", i, err)
			}
			if w.GetResource() == nil {
				continue // a TTL heartbeat: nothing new about this resource
			}
			a = w.GetResource()
		}
		if a.GetTypeUrl() != resp.GetTypeUrl() {
			return nil, fmt.Errorf("resources[%d]: type %s in a %s response", i, a.GetTypeUrl(), resp.GetTypeUrl())
		}
		m, err := newResource(resp.GetTypeUrl())
		if err != nil {
			return nil, err
		}
		if err := xdsproto.UnmarshalAny(a, m); err != nil {
			return nil, fmt.Errorf("resources[%d]: %w", i, err)
		}
		name := resourceName(m)
		if err := m.(interface{ Validate() error }).Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s: sent twice", name)
		}
		out[name] = m
	}
	return out, nil
}

func newResource(typeURL string) (xdsproto.Message, error) {
	switch typeURL {
	case resourcev3.ListenerType:
		return &listenerv3.Listener{}, nil
	case resourcev3.RouteType:
		return &routev3.RouteConfiguration{}, nil
	case resourcev3.ClusterType:
		return &clusterv3.Cluster{}, nil
	case resourcev3.EndpointType:
		return &endpointv3.ClusterLoadAssignment{}, nil
	case resourcev3.SecretType:
		return &tlsv3.Secret{}, nil
	}
	return nil, fmt.Errorf("unexpected type %s", typeURL)
}

func resourceName(m xdsproto.Message) string {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case *tlsv3.Secret:
		return r.GetName()
	}
	return ""
}

// routeNames lists the route configurations the listeners name over RDS.
// A connection manager that does not decode is left to Compile to report.
func routeNames(ls map[string]xdsproto.Message) []string {
	set := map[string]bool{}
	for _, m := range ls {
		l := m.(*listenerv3.Listener)
		if l.GetApiListener() != nil {
			continue
		}
		chains := l.GetFilterChains()
		if d := l.GetDefaultFilterChain(); d != nil {
			chains = append(slices.Clip(chains), d)
		}
		for _, ch := range chains {
			for _, f := range ch.GetFilters() {
				if f.GetTypedConfig().GetTypeUrl() != typeHCM {
					continue
				}
				var h hcmv3.HttpConnectionManager
				if xdsproto.UnmarshalAny(f.GetTypedConfig(), &h) != nil {
					continue
				}
				if n := h.GetRds().GetRouteConfigName(); n != "" {
					set[n] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// endpointNames lists the EDS service names of the EDS clusters.
func endpointNames(cs map[string]xdsproto.Message) []string {
	set := map[string]bool{}
	for _, m := range cs {
		c := m.(*clusterv3.Cluster)
		if c.GetType() != clusterv3.Cluster_EDS || c.GetClusterType() != nil {
			continue
		}
		n := c.GetEdsClusterConfig().GetServiceName()
		if n == "" {
			n = c.GetName()
		}
		set[n] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// names computes the RDS, EDS and SDS subscriptions a set implies.
func (r resources) names() map[string][]string {
	return map[string][]string{
		resourcev3.RouteType:    routeNames(r[resourcev3.ListenerType]),
		resourcev3.EndpointType: endpointNames(r[resourcev3.ClusterType]),
		resourcev3.SecretType:   secretNames(r[resourcev3.ListenerType], r[resourcev3.ClusterType]),
	}
}

// secretNames lists the SDS secrets the listeners' and clusters' TLS
// contexts name. A context that does not decode is left to Compile to
// report.
func secretNames(ls, cs map[string]xdsproto.Message) []string {
	set := map[string]bool{}
	common := func(c *tlsv3.CommonTlsContext) {
		for _, s := range c.GetTlsCertificateSdsSecretConfigs() {
			set[s.GetName()] = true
		}
		if n := c.GetValidationContextSdsSecretConfig().GetName(); n != "" {
			set[n] = true
		}
		if n := c.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName(); n != "" {
			set[n] = true
		}
	}
	for _, m := range ls {
		l := m.(*listenerv3.Listener)
		chains := l.GetFilterChains()
		if d := l.GetDefaultFilterChain(); d != nil {
			chains = append(slices.Clip(chains), d)
		}
		for _, ch := range chains {
			var d tlsv3.DownstreamTlsContext
			if a := ch.GetTransportSocket().GetTypedConfig(); a != nil && xdsproto.NameOf(a.GetTypeUrl()) == d.XDSTypeName() && xdsproto.UnmarshalAny(a, &d) == nil {
				common(d.GetCommonTlsContext())
			}
		}
	}
	for _, m := range cs {
		var u tlsv3.UpstreamTlsContext
		if a := m.(*clusterv3.Cluster).GetTransportSocket().GetTypedConfig(); a != nil && xdsproto.NameOf(a.GetTypeUrl()) == u.XDSTypeName() && xdsproto.UnmarshalAny(a, &u) == nil {
			common(u.GetCommonTlsContext())
		}
	}
	delete(set, "")
	return slices.Sorted(maps.Keys(set))
}

// secretsOf returns a set's secrets by name.
func (r resources) secretsOf() map[string]*tlsv3.Secret {
	out := make(map[string]*tlsv3.Secret, len(r[resourcev3.SecretType]))
	for n, m := range r[resourcev3.SecretType] {
		out[n] = m.(*tlsv3.Secret)
	}
	return out
}

// prune drops RDS and EDS resources outside the subscriptions.
func (r resources) prune(names map[string][]string) {
	for typ, want := range names {
		for n := range r[typ] {
			if !slices.Contains(want, n) {
				delete(r[typ], n)
			}
		}
	}
}

// complete reports whether the set can be compiled without missing
// references; missing says what it waits for.
func (r resources) complete(received map[string]bool, names map[string][]string) (ok bool, missing []string) {
	for _, t := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		if !received[t] {
			missing = append(missing, t)
		}
	}
	for _, typ := range []string{resourcev3.RouteType, resourcev3.EndpointType} {
		for _, n := range names[typ] {
			if _, ok := r[typ][n]; !ok {
				missing = append(missing, typ+"/"+n)
			}
		}
	}
	return len(missing) == 0, missing
}

// tableResources lays a set out for table.Compile, sorted by name so that
// errors come in a stable order.
func (r resources) tableResources(versions map[string]string) table.Resources {
	out := table.Resources{Versions: maps.Clone(versions)}
	for _, n := range slices.Sorted(maps.Keys(r[resourcev3.ListenerType])) {
		out.Listeners = append(out.Listeners, r[resourcev3.ListenerType][n].(*listenerv3.Listener))
	}
	for _, n := range slices.Sorted(maps.Keys(r[resourcev3.RouteType])) {
		out.Routes = append(out.Routes, r[resourcev3.RouteType][n].(*routev3.RouteConfiguration))
	}
	for _, n := range slices.Sorted(maps.Keys(r[resourcev3.ClusterType])) {
		out.Clusters = append(out.Clusters, r[resourcev3.ClusterType][n].(*clusterv3.Cluster))
	}
	for _, n := range slices.Sorted(maps.Keys(r[resourcev3.EndpointType])) {
		out.Endpoints = append(out.Endpoints, r[resourcev3.EndpointType][n].(*endpointv3.ClusterLoadAssignment))
	}
	return out
}

// sameResources reports whether got (a response's resources) changes
// nothing in have for the type.
func sameResources(typeURL string, have, got map[string]xdsproto.Message) bool {
	if fullState(typeURL) && len(have) != len(got) {
		return false
	}
	for n, m := range got {
		if old, ok := have[n]; !ok || !xdsproto.Equal(old, m) {
			return false
		}
	}
	return true
}
