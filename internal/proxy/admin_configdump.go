package proxy

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
)

// Admin /config_dump: the applied xDS resources.
func (p *Proxy) handleConfigDump(w http.ResponseWriter, r *http.Request) {
	_, includeEDS := r.URL.Query()["include_eds"]
	writeAdminJSON(w, p.configDump(includeEDS))
}

// configDump renders the received xDS resources in Envoy's ConfigDump
// shape (adminjson.go): ClustersConfigDump, (EndpointsConfigDump with
// include_eds), ListenersConfigDump, RoutesConfigDump, all as dynamic
// resources.
func (p *Proxy) configDump(includeEDS bool) configDumpJSON {
	rs := p.state.Load()
	var dump configDumpJSON
	if rs == nil {
		return dump
	}
	s := rs.snap
	updated := pbTime(p.appliedAt(rs))
	ver := func(t string) string { return s.Versions[t] }

	clusters := clustersConfigDumpJSON{VersionInfo: ver(typeCluster)}
	for _, m := range sortedResources(s.Resources[typeCluster]) {
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, dynamicClusterJSON{
			VersionInfo: ver(typeCluster), Cluster: pbAny{m}, LastUpdated: updated,
		})
	}
	dump.Configs = append(dump.Configs, typed{adminTypes + "ClustersConfigDump", clusters})

	if includeEDS {
		var eps endpointsConfigDumpJSON
		for _, m := range sortedResources(s.Resources[typeEndpoint]) {
			eps.DynamicEndpointConfigs = append(eps.DynamicEndpointConfigs, dynamicEndpointConfigJSON{
				VersionInfo: ver(typeEndpoint), EndpointConfig: pbAny{m}, LastUpdated: updated,
			})
		}
		dump.Configs = append(dump.Configs, typed{adminTypes + "EndpointsConfigDump", eps})
	}

	listeners := listenersConfigDumpJSON{VersionInfo: ver(typeListener)}
	for _, m := range sortedResources(s.Resources[typeListener]) {
		listeners.DynamicListeners = append(listeners.DynamicListeners, dynamicListenerJSON{
			Name: resourceName(m),
			ActiveState: dynamicListenerStateJSON{
				VersionInfo: ver(typeListener), Listener: pbAny{m}, LastUpdated: updated,
			},
		})
	}
	dump.Configs = append(dump.Configs, typed{adminTypes + "ListenersConfigDump", listeners})

	var routes routesConfigDumpJSON
	for _, m := range sortedResources(s.Resources[typeRoute]) {
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, dynamicRouteConfigJSON{
			VersionInfo: ver(typeRoute), RouteConfig: pbAny{m}, LastUpdated: updated,
		})
	}
	dump.Configs = append(dump.Configs, typed{adminTypes + "RoutesConfigDump", routes})
	return dump
}

// appliedAt is when a snapshot state was swapped in.
func (p *Proxy) appliedAt(rs *runtimeState) time.Time {
	if rs.appliedAt.IsZero() {
		return p.started
	}
	return rs.appliedAt
}

func resourceName(m xdsproto.Message) string {
	switch r := m.(type) {
	case interface{ GetName() string }:
		return r.GetName()
	case interface{ GetClusterName() string }:
		return r.GetClusterName()
	}
	return ""
}

func sortedResources(ms []xdsproto.Message) []xdsproto.Message {
	out := slices.Clone(ms)
	slices.SortStableFunc(out, func(a, b xdsproto.Message) int { return strings.Compare(resourceName(a), resourceName(b)) })
	return out
}
