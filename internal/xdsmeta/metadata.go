package xdsmeta

import (
	"google.golang.org/protobuf/types/known/structpb"
)

// MetadataNamespace is the filter_metadata key under which the control
// plane describes the App Mesh resources behind an xDS resource. Envoy
// ignores namespaces no filter of it reads, so the same resources still
// serve an Envoy sidecar.
const MetadataNamespace = "meshlens"

// Keys of filter_metadata["meshlens"]. Every value is a string.
const (
	// KeyMesh is the mesh of the virtual node a cluster reaches.
	KeyMesh = "mesh"
	// KeyVirtualNode is the virtual node a cluster reaches.
	KeyVirtualNode = "virtualNode"
	// KeyVirtualService is the virtual service a virtual host, route or
	// TCP filter chain serves.
	KeyVirtualService = "virtualService"
)

// Labels is what filter_metadata["meshlens"] says about the App Mesh
// resources behind a cluster, virtual host, route or filter chain. The
// proxy labels its mesh metrics (source and destination of each request)
// with it; it never changes what is routed where. Fields the control plane
// does not send are empty.
type Labels struct {
	// Mesh and VirtualNode name the virtual node a cluster reaches
	// (keys KeyMesh and KeyVirtualNode).
	Mesh        string
	VirtualNode string
	// VirtualService is the virtual service a virtual host, route or
	// TCP filter chain serves (key KeyVirtualService).
	VirtualService string
}

// FilterMetadata builds filter_metadata with the namespace "meshlens"
// from key/value pairs (keys among KeyMesh, KeyVirtualNode and
// KeyVirtualService). A trailing key without a value is dropped.
func FilterMetadata(kv ...string) map[string]*structpb.Struct {
	fields := make(map[string]*structpb.Value, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		fields[kv[i]] = structpb.NewStringValue(kv[i+1])
	}
	return map[string]*structpb.Struct{MetadataNamespace: {Fields: fields}}
}

// Metadata is xDS metadata as the control plane's and the proxy's types
// both read it.
type Metadata interface {
	GetFilterMetadata() map[string]*structpb.Struct
}

// ReadLabels reads filter_metadata["meshlens"] of m (which may be a nil
// pointer, not a nil interface). Values that are not strings are ignored:
// metadata only labels metrics, so a malformed value must not refuse a
// configuration.
func ReadLabels(m Metadata) Labels {
	s := m.GetFilterMetadata()[MetadataNamespace]
	str := func(key string) string { return s.GetFields()[key].GetStringValue() }
	return Labels{Mesh: str(KeyMesh), VirtualNode: str(KeyVirtualNode), VirtualService: str(KeyVirtualService)}
}
