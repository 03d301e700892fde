package proxy

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Admin /config_dump: the applied xDS resources.
func (p *Proxy) handleConfigDump(w http.ResponseWriter, r *http.Request) {
	_, includeEDS := r.URL.Query()["include_eds"]
	dump, err := p.configDump(includeEDS)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, dump)
}

// configDump renders the received xDS resources in Envoy's ConfigDump
// shape: ClustersConfigDump, (EndpointsConfigDump with include_eds),
// ListenersConfigDump, RoutesConfigDump, all as dynamic resources.
func (p *Proxy) configDump(includeEDS bool) (*adminv3.ConfigDump, error) {
	rs := p.state.Load()
	dump := &adminv3.ConfigDump{}
	if rs == nil {
		return dump, nil
	}
	s := rs.snap
	updated := timestamppb.New(p.appliedAt(rs))
	ver := func(t string) string { return s.Versions[t] }
	var msgs []proto.Message

	clusters := &adminv3.ClustersConfigDump{VersionInfo: ver(typeCluster)}
	for _, m := range sortedResources(s.Resources[typeCluster]) {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("config dump: %w", err)
		}
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{
			VersionInfo: ver(typeCluster), Cluster: a, LastUpdated: updated,
		})
	}
	msgs = append(msgs, clusters)

	if includeEDS {
		eps := &adminv3.EndpointsConfigDump{}
		for _, m := range sortedResources(s.Resources[typeEndpoint]) {
			a, err := anypb.New(m)
			if err != nil {
				return nil, fmt.Errorf("config dump: %w", err)
			}
			eps.DynamicEndpointConfigs = append(eps.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
				VersionInfo: ver(typeEndpoint), EndpointConfig: a, LastUpdated: updated,
			})
		}
		msgs = append(msgs, eps)
	}

	listeners := &adminv3.ListenersConfigDump{VersionInfo: ver(typeListener)}
	for _, m := range sortedResources(s.Resources[typeListener]) {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("config dump: %w", err)
		}
		listeners.DynamicListeners = append(listeners.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: resourceName(m),
			ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{
				VersionInfo: ver(typeListener), Listener: a, LastUpdated: updated,
			},
		})
	}
	msgs = append(msgs, listeners)

	routes := &adminv3.RoutesConfigDump{}
	for _, m := range sortedResources(s.Resources[typeRoute]) {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("config dump: %w", err)
		}
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
			VersionInfo: ver(typeRoute), RouteConfig: a, LastUpdated: updated,
		})
	}
	msgs = append(msgs, routes)

	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("config dump: %w", err)
		}
		dump.Configs = append(dump.Configs, a)
	}
	return dump, nil
}

// appliedAt is when a snapshot state was swapped in.
func (p *Proxy) appliedAt(rs *runtimeState) time.Time {
	if rs.appliedAt.IsZero() {
		return p.started
	}
	return rs.appliedAt
}

func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case interface{ GetName() string }:
		return r.GetName()
	case interface{ GetClusterName() string }:
		return r.GetClusterName()
	}
	return ""
}

func sortedResources(ms []proto.Message) []proto.Message {
	out := slices.Clone(ms)
	slices.SortStableFunc(out, func(a, b proto.Message) int { return strings.Compare(resourceName(a), resourceName(b)) })
	return out
}
