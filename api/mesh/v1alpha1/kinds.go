package v1alpha1

import (
	"fmt"
	"strings"
)

// kindNames maps every accepted spelling, lower-cased, to its kind: the
// singular, the plural and a short name, as kubectl accepts kinds.
var kindNames = map[string]Kind{}

// kindInfo describes the names of a kind.
type kindInfo struct {
	plural string // lowerCamel plural, as used in REST paths
	short  string
}

var kindInfos = map[Kind]kindInfo{
	KindMesh:           {plural: "meshes", short: "mesh"},
	KindVirtualNode:    {plural: "virtualNodes", short: "vn"},
	KindVirtualService: {plural: "virtualServices", short: "vs"},
	KindVirtualRouter:  {plural: "virtualRouters", short: "vr"},
	KindRoute:          {plural: "routes", short: "rt"},
	KindVirtualGateway: {plural: "virtualGateways", short: "vg"},
	KindGatewayRoute:   {plural: "gatewayRoutes", short: "gr"},
}

func init() {
	for k, info := range kindInfos {
		kindNames[strings.ToLower(string(k))] = k
		kindNames[strings.ToLower(info.plural)] = k
		kindNames[info.short] = k
	}
}

// ParseKind accepts a kind in any case, singular or plural, or by its
// short name (vn, vs, vr, rt, vg, gr), and returns the canonical kind.
func ParseKind(s string) (Kind, error) {
	k, ok := kindNames[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return "", fmt.Errorf("unknown kind %q: want one of Mesh, VirtualNode (vn), VirtualService (vs), VirtualRouter (vr), Route (rt), VirtualGateway (vg), GatewayRoute (gr)", s)
	}
	return k, nil
}

// Plural returns the kind's plural in lowerCamel case, as REST paths use it.
func (k Kind) Plural() string { return kindInfos[k].plural }

// Valid reports whether k is one of the seven kinds.
func (k Kind) Valid() bool { _, ok := kindInfos[k]; return ok }
