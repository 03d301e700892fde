package table

import (
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"

	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// MeshMetadata is what filter_metadata["meshlens"] says about the App
// Mesh resources behind a cluster, virtual host, route or filter chain
// (see xdsmeta.Labels). The proxy labels its mesh metrics (source and
// destination of each request) with it; it never changes what is routed
// where.
type MeshMetadata = xdsmeta.Labels

// meshMetadata reads filter_metadata["meshlens"]; a malformed value
// labels nothing rather than refusing a configuration.
func meshMetadata(m *corev3.Metadata) MeshMetadata {
	return xdsmeta.ReadLabels(m)
}
