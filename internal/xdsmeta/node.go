package xdsmeta

import (
	"net"

	"google.golang.org/protobuf/types/known/structpb"
)

// NodeKeyAdminAddress is the key of the xDS node metadata under which a
// meshlens proxy reports its admin endpoint's address (host:port), so
// that the control plane can open a live tap on it. Envoy ignores
// metadata it does not know.
const NodeKeyAdminAddress = "meshlens.admin_address"

// SetAdminAddress records a proxy's admin address in its node metadata
// md, and returns md (a new one when md is nil).
func SetAdminAddress(md *structpb.Struct, addr string) *structpb.Struct {
	if md == nil {
		md = &structpb.Struct{}
	}
	if md.Fields == nil {
		md.Fields = map[string]*structpb.Value{}
	}
	md.Fields[NodeKeyAdminAddress] = structpb.NewStringValue(addr)
	return md
}

// Node is an xDS node as the control plane's and the proxy's types both
// read it.
type Node interface{ GetMetadata() *structpb.Struct }

// AdminAddress is the admin address a node reports, empty when it reports
// none or one that is not host:port.
func AdminAddress(n Node) string {
	a := n.GetMetadata().GetFields()[NodeKeyAdminAddress].GetStringValue()
	if _, _, err := net.SplitHostPort(a); err != nil {
		return ""
	}
	return a
}
