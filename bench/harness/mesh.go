package harness

import (
	"fmt"
	"strings"
)

// The benchmark mesh: one server virtual node per protocol (an instance
// carries one port, so each protocol gets its own node and sidecar), one
// virtual service per node, and a client node whose backends are all four.
const (
	meshName   = "bench"
	portHTTP   = 8080 // http listener: HTTP/1.1 inbound
	portH2     = 8081 // http2 listener: h2c inbound
	portGRPC   = 8082 // grpc listener
	portTCP    = 8083 // tcp listener
	clientNode = "client"
)

// serverNode is one protocol's virtual node.
type serverNode struct {
	name, protocol string
	port           int
}

var serverNodes = []serverNode{
	{"app-http", "http", portHTTP},
	{"app-h2", "http2", portH2},
	{"app-grpc", "grpc", portGRPC},
	{"app-tcp", "tcp", portTCP},
}

func serviceName(node string) string { return node + "." + meshName + ".local" }

func nodeID(node string) string { return "mesh/" + meshName + "/virtualNode/" + node }

// meshYAML renders the mesh; accessLog, when set, is the directory where
// every node's access log file goes.
func meshYAML(accessLogDir string) string {
	var b strings.Builder
	logging := func(node string) string {
		if accessLogDir == "" {
			return ""
		}
		return fmt.Sprintf("  logging: {accessLog: {file: {path: %s/%s.log}}}\n", accessLogDir, node)
	}
	fmt.Fprintf(&b, "kind: Mesh\nname: %s\nspec:\n  egressFilter: {type: DROP_ALL}\n", meshName)
	var backends []string
	for _, n := range serverNodes {
		fmt.Fprintf(&b, "---\nkind: VirtualNode\nmesh: %s\nname: %s\nspec:\n  listeners:\n    - portMapping: {port: %d, protocol: %s}\n  serviceDiscovery: {awsCloudMap: {namespaceName: %s.local, serviceName: %s}}\n%s",
			meshName, n.name, n.port, n.protocol, meshName, n.name, logging(n.name))
		fmt.Fprintf(&b, "---\nkind: VirtualService\nmesh: %s\nname: %s\nspec:\n  provider: {virtualNode: {virtualNodeName: %s}}\n",
			meshName, serviceName(n.name), n.name)
		backends = append(backends, fmt.Sprintf("    - virtualService: {virtualServiceName: %s}\n", serviceName(n.name)))
	}
	fmt.Fprintf(&b, "---\nkind: VirtualNode\nmesh: %s\nname: %s\nspec:\n  backends:\n%s%s",
		meshName, clientNode, strings.Join(backends, ""), logging(clientNode))
	return b.String()
}
