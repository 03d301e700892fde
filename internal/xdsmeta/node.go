package xdsmeta

import (
	"net"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// NodeKeyAdminAddress is the key of the xDS node metadata under which a
// meshlens proxy reports its admin endpoint's address (host:port), so
// that the control plane can open a live tap on it. Envoy ignores
// metadata it does not know.
const NodeKeyAdminAddress = "meshlens.admin_address"

// SetAdminAddress records a proxy's admin address in its node metadata.
func SetAdminAddress(n *corev3.Node, addr string) {
	if n.Metadata == nil {
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	if n.Metadata.Fields == nil {
		n.Metadata.Fields = map[string]*structpb.Value{}
	}
	n.Metadata.Fields[NodeKeyAdminAddress] = structpb.NewStringValue(addr)
}

// AdminAddress is the admin address a node reports, empty when it reports
// none or one that is not host:port.
func AdminAddress(n *corev3.Node) string {
	a := n.GetMetadata().GetFields()[NodeKeyAdminAddress].GetStringValue()
	if _, _, err := net.SplitHostPort(a); err != nil {
		return ""
	}
	return a
}
