package xds

import (
	"strconv"
)

// The resource names the control plane writes and the proxy reads are in
// internal/xdsmeta; the ones below only the control plane uses.

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
