package xdsmeta

import (
	"strconv"
	"strings"
)

// The ports App Mesh's iptables rules redirected a task's traffic to: every
// inbound connection to 15000, every outbound one to 15001. The sidecar
// listeners keep them so existing task definitions and init containers
// carry over unchanged.
const (
	InboundPort  = 15000
	OutboundPort = 15001
)

// Prefixes of listener names. The proxy tells a sidecar's inbound
// listener from its outbound one by them.
const (
	// InboundListenerPrefix starts the name of every inbound listener of
	// a sidecar and of every listener of a virtual gateway.
	InboundListenerPrefix = "lds_ingress_"
	// OutboundListenerPrefix starts the name of a sidecar's outbound
	// listener.
	OutboundListenerPrefix = "lds_egress_"
)

// Fixed resource names.
const (
	// InboundListenerName is the sidecar's single inbound listener.
	InboundListenerName = InboundListenerPrefix + "0.0.0.0_15000"
	// OutboundListenerName is the sidecar's single outbound listener.
	OutboundListenerName = OutboundListenerPrefix + "0.0.0.0_15001"
	// OutboundRouteName is the route configuration of every HTTP backend
	// of a sidecar.
	OutboundRouteName = "rds_egress_http_15001"
	// PassthroughClusterName is where ALLOW_ALL sends unknown destinations.
	PassthroughClusterName = "cds_egress_passthrough"
	// BuiltinTracingClusterName reaches the control plane's OTLP
	// receiver (the builtin tracing provider): the proxy's exports to it
	// carry the proxy's control-plane credentials.
	BuiltinTracingClusterName = "cds_tracing_meshlens"
)

// IsInboundListener reports whether name is that of an inbound listener
// (a sidecar's, towards the local application, or a gateway's).
func IsInboundListener(name string) bool {
	return strings.HasPrefix(name, InboundListenerPrefix)
}

// IsOutboundListener reports whether name is that of a sidecar's outbound
// listener (towards the mesh).
func IsOutboundListener(name string) bool {
	return strings.HasPrefix(name, OutboundListenerPrefix)
}

// GatewayListenerName names a virtual gateway's listener on port.
func GatewayListenerName(port uint32) string {
	return InboundListenerPrefix + "0.0.0.0_" + itoa(port)
}

// InboundRouteName names the route configuration of one HTTP listener of a
// virtual node or virtual gateway.
func InboundRouteName(protocol string, port uint32) string {
	return "rds_ingress_" + protocol + "_" + itoa(port)
}

// InboundClusterName names the cluster that reaches the local application
// behind one listener of a virtual node.
func InboundClusterName(mesh, node, protocol string, port uint32) string {
	return "cds_ingress_" + mesh + "_" + node + "_" + protocol + "_" + itoa(port)
}

// OutboundClusterName names the cluster that reaches one listener of a
// virtual node from anywhere in the mesh. It does not depend on the caller,
// so every data plane that reaches the same listener uses the same name.
func OutboundClusterName(mesh, node, protocol string, port uint32) string {
	return "cds_egress_" + mesh + "_" + node + "_" + protocol + "_" + itoa(port)
}

// APIListenerName names a proxyless client's listener for one port of a
// virtual service: exactly the authority the client dials, as in
// xds:///greeting.demo.local:9080.
func APIListenerName(service string, port uint32) string {
	return service + ":" + itoa(port)
}

// APIRouteName names the route configuration behind APIListenerName.
func APIRouteName(protocol, service string, port uint32) string {
	return "rds_egress_" + protocol + "_" + service + "_" + itoa(port)
}

func itoa(port uint32) string { return strconv.FormatUint(uint64(port), 10) }
