package xds

import (
	"strconv"
)

// The ports App Mesh's iptables rules redirected a task's traffic to: every
// inbound connection to 15000, every outbound one to 15001. The sidecar
// listeners keep them so existing task definitions and init containers
// carry over unchanged.
const (
	InboundPort  = 15000
	OutboundPort = 15001
)

// Resource names. They are App Mesh's, so dashboards, alarms and
// config-dump scripts written against App Mesh's Envoy keep working.
const (
	// InboundListenerName is the sidecar's single inbound listener.
	InboundListenerName = "lds_ingress_0.0.0.0_15000"
	// OutboundListenerName is the sidecar's single outbound listener.
	OutboundListenerName = "lds_egress_0.0.0.0_15001"
	// OutboundRouteName is the route configuration of every HTTP backend
	// of a sidecar.
	OutboundRouteName = "rds_egress_http_15001"
	// PassthroughClusterName is where ALLOW_ALL sends unknown destinations.
	PassthroughClusterName = "cds_egress_passthrough"
)

// GatewayListenerName names a virtual gateway's listener on port.
func GatewayListenerName(port uint32) string {
	return "lds_ingress_0.0.0.0_" + strconv.FormatUint(uint64(port), 10)
}

// InboundRouteName names the route configuration of one HTTP listener of a
// virtual node or virtual gateway.
func InboundRouteName(protocol string, port uint32) string {
	return "rds_ingress_" + protocol + "_" + strconv.FormatUint(uint64(port), 10)
}

// InboundClusterName names the cluster that reaches the local application
// behind one listener of a virtual node.
func InboundClusterName(mesh, node, protocol string, port uint32) string {
	return "cds_ingress_" + mesh + "_" + node + "_" + protocol + "_" + strconv.FormatUint(uint64(port), 10)
}

// OutboundClusterName names the cluster that reaches one listener of a
// virtual node from anywhere in the mesh. It does not depend on the caller,
// so every data plane that reaches the same listener uses the same name.
func OutboundClusterName(mesh, node, protocol string, port uint32) string {
	return "cds_egress_" + mesh + "_" + node + "_" + protocol + "_" + strconv.FormatUint(uint64(port), 10)
}

// APIListenerName names a proxyless client's listener for one port of a
// virtual service: exactly the authority the client dials, as in
// xds:///greeting.demo.local:9080.
func APIListenerName(service string, port uint32) string {
	return service + ":" + strconv.FormatUint(uint64(port), 10)
}

// APIRouteName names the route configuration behind APIListenerName.
func APIRouteName(protocol, service string, port uint32) string {
	return "rds_egress_" + protocol + "_" + service + "_" + strconv.FormatUint(uint64(port), 10)
}

// virtualHostName names the outbound virtual host of one port of a service.
func virtualHostName(service string, port uint32) string {
	return service + ":" + strconv.FormatUint(uint64(port), 10)
}

// inboundStatPrefix is the stat prefix of an inbound listener. App Mesh's
// image from v1.22.2.1 on used ingress.<protocol>.<port>, and its bootstrap
// extracts appmesh.listener_protocol and appmesh.listener_port from it,
// leaving "ingress" in the tag-extracted name dashboards query.
func inboundStatPrefix(protocol string, port uint32) string {
	return "ingress." + protocol + "." + strconv.FormatUint(uint64(port), 10)
}

// outboundStatPrefix is the stat prefix of every outbound filter.
const outboundStatPrefix = "egress"
