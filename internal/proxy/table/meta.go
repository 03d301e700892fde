package table

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// MetadataNamespace is the filter_metadata key under which the control
// plane describes the App Mesh resources behind an xDS resource. Envoy
// ignores namespaces it does not know, so the same resources still serve
// an Envoy sidecar.
const MetadataNamespace = "meshlens"

// MeshMetadata is what filter_metadata["meshlens"] says about the App
// Mesh resources behind a cluster, virtual host, route or filter chain.
// The proxy labels its mesh metrics (source and destination of each
// request) with it; it never changes what is routed where. Fields the
// control plane does not send are empty.
type MeshMetadata struct {
	// Mesh and VirtualNode name the virtual node a cluster reaches
	// (keys "mesh" and "virtualNode").
	Mesh        string
	VirtualNode string
	// VirtualService is the virtual service a virtual host, route or
	// TCP filter chain serves (key "virtualService").
	VirtualService string
}

// meshMetadata reads filter_metadata["meshlens"]. Values that are not
// strings are ignored: metadata only labels metrics, so a malformed
// value must not refuse a configuration.
func meshMetadata(m *corev3.Metadata) MeshMetadata {
	s := m.GetFilterMetadata()[MetadataNamespace]
	str := func(key string) string { return s.GetFields()[key].GetStringValue() }
	return MeshMetadata{Mesh: str("mesh"), VirtualNode: str("virtualNode"), VirtualService: str("virtualService")}
}
