package controlplane

import (
	"net/netip"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/registry"
	"github.com/meshlens/meshlens/internal/xds"
)

// endpointView is an immutable picture of where every virtual node's
// instances are, taken at one moment, so that one xDS build sees one
// consistent set of endpoints. The registry's view is indexed by Cloud Map
// namespace and service and by virtual node, so selecting one node's
// endpoints costs the instances of that node's service, not every
// instance.
type endpointView struct {
	lookup    v1alpha1.Lookup
	instances *registry.View
	dns       map[string][]string // hostname -> addresses
}

var _ xds.Endpoints = (*endpointView)(nil)

// IP preferences, as App Mesh spells them.
const (
	ipv4Only      = "IPv4_ONLY"
	ipv6Only      = "IPv6_ONLY"
	ipv4Preferred = "IPv4_PREFERRED"
	ipv6Preferred = "IPv6_PREFERRED"
)

// dnsLoadBalancer is the dns responseType that treats the hostname as one
// load balancer: one address, not every address of the answer.
const dnsLoadBalancer = "LOADBALANCER"

// Endpoints selects a virtual node's instances by its service discovery:
// awsCloudMap selects registered instances by namespace, service and
// attributes; dns uses the resolved addresses with the node's first
// listener port; a node without service discovery gets the instances
// registered under its own name. The node's IP preference (or else its
// mesh's) picks the address family, and a dns responseType of
// LOADBALANCER keeps one address.
func (v *endpointView) Endpoints(mesh, node string) []xds.Endpoint {
	r := v.lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: mesh, Name: node})
	if r == nil || r.VirtualNodeSpec == nil {
		return nil
	}
	spec := r.VirtualNodeSpec
	pref := v.meshIPPreference(mesh)
	var out []xds.Endpoint
	add := func(in *registry.Instance) {
		addr := pickAddress(in, pref)
		if addr == "" {
			return
		}
		out = append(out, xds.Endpoint{Address: addr, Port: uint32(in.Port), Healthy: in.HealthStatus == registry.Healthy})
	}
	switch sd := spec.ServiceDiscovery; {
	case sd != nil && sd.AWSCloudMap != nil:
		cm := sd.AWSCloudMap
		if cm.IPPreference != "" {
			pref = cm.IPPreference
		}
		for _, in := range v.instances.Service(cm.NamespaceName, cm.ServiceName) {
			if hasAttributes(in, cm.Attributes) {
				add(in)
			}
		}
	case sd != nil && sd.DNS != nil:
		port := firstListenerPort(spec)
		if port == 0 {
			return nil
		}
		if sd.DNS.IPPreference != "" {
			pref = sd.DNS.IPPreference
		}
		addrs := pickFamily(v.dns[sd.DNS.Hostname], pref)
		if sd.DNS.ResponseType == dnsLoadBalancer && len(addrs) > 1 {
			addrs = addrs[:1]
		}
		for _, addr := range addrs {
			out = append(out, xds.Endpoint{Address: addr, Port: uint32(port), Healthy: true})
		}
	default:
		for _, in := range v.instances.Node(mesh, node) {
			add(in)
		}
	}
	return out
}

func (v *endpointView) meshIPPreference(mesh string) string {
	m := v.lookup.Get(v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: mesh})
	if m == nil || m.MeshSpec == nil || m.MeshSpec.ServiceDiscovery == nil {
		return ""
	}
	return m.MeshSpec.ServiceDiscovery.IPPreference
}

// pickAddress returns the address of an instance that an IP preference
// picks: its Address, or its address of the other family from Cloud Map's
// AWS_INSTANCE_IPV4 and AWS_INSTANCE_IPV6 attributes; "" when the
// preference is *_ONLY and the instance has no address of that family.
// With no preference the instance's Address is used.
func pickAddress(in *registry.Instance, pref string) string {
	if pref == "" {
		return in.Address
	}
	var v4, v6 string
	if a, err := netip.ParseAddr(in.Address); err == nil {
		if a.Is4() || a.Is4In6() {
			v4 = in.Address
		} else {
			v6 = in.Address
		}
	}
	if v4 == "" {
		v4 = in.Attributes[registry.AttrIPv4]
	}
	if v6 == "" {
		v6 = in.Attributes[registry.AttrIPv6]
	}
	switch pref {
	case ipv4Only:
		return v4
	case ipv6Only:
		return v6
	case ipv6Preferred:
		if v6 != "" {
			return v6
		}
		return v4
	default: // IPv4_PREFERRED
		if v4 != "" {
			return v4
		}
		return v6
	}
}

// pickFamily filters a DNS answer by an IP preference: *_ONLY keeps that
// family's addresses, *_PREFERRED that family's if the answer has any and
// the other family's otherwise; no preference keeps every address.
func pickFamily(addrs []string, pref string) []string {
	if pref == "" {
		return addrs
	}
	var v4, v6 []string
	for _, s := range addrs {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
		case a.Is4() || a.Is4In6():
			v4 = append(v4, s)
		default:
			v6 = append(v6, s)
		}
	}
	switch pref {
	case ipv4Only:
		return v4
	case ipv6Only:
		return v6
	case ipv6Preferred:
		if len(v6) > 0 {
			return v6
		}
		return v4
	default: // IPv4_PREFERRED
		if len(v4) > 0 {
			return v4
		}
		return v6
	}
}

func hasAttributes(in *registry.Instance, attrs []v1alpha1.AWSCloudMapInstanceAttribute) bool {
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
