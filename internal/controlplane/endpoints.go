package controlplane

import (
	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/registry"
	"github.com/meshlens/meshlens/internal/xds"
)

// endpointView is an immutable picture of where every virtual node's
// instances are, taken at one moment, so that one xDS build sees one
// consistent set of endpoints.
type endpointView struct {
	lookup    v1alpha1.Lookup
	instances []registry.Instance
	dns       map[string][]string // hostname -> addresses
}

var _ xds.Endpoints = (*endpointView)(nil)

// Endpoints selects a virtual node's instances by its service discovery:
// awsCloudMap selects registered instances by namespace, service and
// attributes; dns uses the resolved addresses with the node's first
// listener port; a node without service discovery gets the instances
// registered under its own name.
func (v *endpointView) Endpoints(mesh, node string) []xds.Endpoint {
	r := v.lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: mesh, Name: node})
	if r == nil || r.VirtualNodeSpec == nil {
		return nil
	}
	spec := r.VirtualNodeSpec
	var out []xds.Endpoint
	add := func(in registry.Instance) {
		out = append(out, xds.Endpoint{Address: in.Address, Port: uint32(in.Port), Healthy: in.HealthStatus == registry.Healthy})
	}
	switch sd := spec.ServiceDiscovery; {
	case sd != nil && sd.AWSCloudMap != nil:
		cm := sd.AWSCloudMap
		for _, in := range v.instances {
			if in.NamespaceName == cm.NamespaceName && in.ServiceName == cm.ServiceName && hasAttributes(in, cm.Attributes) {
				add(in)
			}
		}
	case sd != nil && sd.DNS != nil:
		port := firstListenerPort(spec)
		if port == 0 {
			return nil
		}
		for _, addr := range v.dns[sd.DNS.Hostname] {
			out = append(out, xds.Endpoint{Address: addr, Port: uint32(port), Healthy: true})
		}
	default:
		for _, in := range v.instances {
			if in.Mesh == mesh && in.VirtualNode == node {
				add(in)
			}
		}
	}
	return out
}

func hasAttributes(in registry.Instance, attrs []v1alpha1.AWSCloudMapInstanceAttribute) bool {
	for _, a := range attrs {
		if v, ok := in.Attributes[a.Key]; !ok || v != a.Value {
			return false
		}
	}
	return true
}

func firstListenerPort(spec *v1alpha1.VirtualNodeSpec) int {
	for _, l := range spec.Listeners {
		if l.PortMapping != nil {
			return l.PortMapping.Port
		}
	}
	return 0
}
