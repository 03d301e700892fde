package xds

import (
	"cmp"
	"net"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// loadAssignment returns the endpoints of one outbound cluster, built once
// per input: the target node's instances, on the target listener's port,
// grouped by zone.
func (t *translator) loadAssignment(mesh string, tg target) *endpointv3.ClusterLoadAssignment {
	return cached(t, t.clas, tg.cluster, func() *endpointv3.ClusterLoadAssignment {
		single := false
		if vn := t.virtualNode(mesh, tg.node); vn != nil {
			single = len(vn.Listeners) == 1
		}
		// App Mesh asks for the listener's own port in a health check:
		// that means "where the traffic goes", which is the instance's
		// registered port when it has its own (a mapped container port, or
		// several instances on one host). Only another port moves the
		// checks.
		var hcPort uint32
		if tg.listener != nil && tg.listener.HealthCheck != nil && tg.listener.HealthCheck.Port > 0 &&
			uint32(tg.listener.HealthCheck.Port) != tg.port {
			hcPort = uint32(tg.listener.HealthCheck.Port)
		}
		src := claSource{mesh: mesh, node: tg.node, port: tg.port, hcPort: hcPort, single: single,
			eps: t.nodeEndpoints(mesh, tg.node), gen: t.gen}
		t.mu.Lock()
		p, ok := t.prevClas[tg.cluster]
		t.mu.Unlock()
		if ok && p.mesh == src.mesh && p.node == src.node && p.port == src.port && p.hcPort == src.hcPort &&
			p.single == src.single && slices.Equal(p.eps, src.eps) {
			// Built from the same arguments.
			src.cla = p.cla
		} else {
			src.cla = buildLoadAssignment(tg.cluster, tg.port, single, hcPort, src.eps)
		}
		t.mu.Lock()
		t.claFrom[tg.cluster] = src
		t.mu.Unlock()
		return src.cla
	})
}

// buildLoadAssignment turns instances into a ClusterLoadAssignment.
//
// An instance's own port is used when its node has a single listener;
// otherwise the listener's port. Instances are grouped into one locality
// per zone, weighted by its number of instances so that locality-aware
// clients (gRPC's wrr_locality) spread load per instance as Envoy does.
// Duplicate addresses are dropped: gRPC rejects an assignment that lists
// one twice.
func buildLoadAssignment(cluster string, listenerPort uint32, singleListener bool, hcPort uint32, eps []Endpoint) *endpointv3.ClusterLoadAssignment {
	byZone := map[string][]*endpointv3.LbEndpoint{}
	seen := map[string]bool{}
	sorted := slices.Clone(eps)
	slices.SortFunc(sorted, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Zone, b.Zone), cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
	})
	for _, ep := range sorted {
		if ep.Address == "" {
			continue
		}
		port := listenerPort
		if singleListener && ep.Port != 0 {
			port = ep.Port
		}
		key := net.JoinHostPort(ep.Address, strconv.FormatUint(uint64(port), 10))
		if seen[key] {
			continue
		}
		seen[key] = true
		byZone[ep.Zone] = append(byZone[ep.Zone], lbEndpoint(ep.Address, port, ep.Healthy, hcPort))
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	zones := make([]string, 0, len(byZone))
	for z := range byZone {
		zones = append(zones, z)
	}
	slices.Sort(zones)
	for _, z := range zones {
		cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{
			Locality:            &corev3.Locality{Zone: z},
			LbEndpoints:         byZone[z],
			LoadBalancingWeight: wrapperspb.UInt32(uint32(len(byZone[z]))),
		})
	}
	return cla
}

func lbEndpoint(addr string, port uint32, healthy bool, hcPort uint32) *endpointv3.LbEndpoint {
	status := corev3.HealthStatus_HEALTHY
	if !healthy {
		status = corev3.HealthStatus_UNHEALTHY
	}
	ep := &endpointv3.Endpoint{Address: socketAddress(addr, port)}
	if hcPort != 0 && hcPort != port {
		ep.HealthCheckConfig = &endpointv3.Endpoint_HealthCheckConfig{PortValue: hcPort}
	}
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: ep},
		HealthStatus:   status,
	}
}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       addr,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
