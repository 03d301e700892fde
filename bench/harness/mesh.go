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
// every node's access log file goes, and tracing, when set, is the mesh's
// spec.meshlens.tracing (absent, the mesh traces with the builtin provider
// at its default sampling).
func meshYAML(accessLogDir string, tracing *tracingSetting) string {
	var b strings.Builder
	logging := func(node string) string {
		if accessLogDir == "" {
			return ""
		}
		return fmt.Sprintf("  logging: {accessLog: {file: {path: %s/%s.log}}}\n", accessLogDir, node)
	}
	fmt.Fprintf(&b, "kind: Mesh\nname: %s\nspec:\n  egressFilter: {type: DROP_ALL}\n", meshName)
	if tracing != nil {
		fmt.Fprintf(&b, "  meshlens: {tracing: %s}\n", tracing.yaml())
	}
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

// tracingSetting is one tracing configuration of the mesh the tracing
// variants measure.
type tracingSetting struct {
	// variant names the runs in results.json.
	variant string
	// label is how the report names the setting.
	label string
	// provider is builtin or none; percent is the sampling percentage of
	// builtin.
	provider string
	percent  float64
}

// tracingSettings are the tracing variants, tracing off first: the
// report's ratios are to it.
var tracingSettings = []tracingSetting{
	{variant: "tracing-none", label: "off (`provider: none`)", provider: "none"},
	{variant: "tracing-1", label: "1 % (builtin)", provider: "builtin", percent: 1},
	{variant: "tracing-100", label: "100 % (builtin)", provider: "builtin", percent: 100},
}

func (t tracingSetting) yaml() string {
	if t.provider == "none" {
		return "{provider: none}"
	}
	return fmt.Sprintf("{provider: %s, samplingPercentage: %g}", t.provider, t.percent)
}

// inConfig reports whether a sidecar's config_dump (whitespace removed)
// shows the setting: no tracing collector cluster when off, else the
// builtin collector cluster and the sampling percentage.
func (t tracingSetting) inConfig(dump string) bool {
	if t.provider == "none" {
		return !strings.Contains(dump, "cds_tracing_meshlens")
	}
	return strings.Contains(dump, "cds_tracing_meshlens") &&
		strings.Contains(dump, fmt.Sprintf(`"random_sampling":{"value":%g}`, t.percent))
}
