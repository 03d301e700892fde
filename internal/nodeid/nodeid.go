// Package nodeid parses the identity a data plane presents to the control
// plane, in the forms App Mesh's Envoy image accepted: the short form
// mesh/<mesh>/virtualNode/<name> (or virtualGateway) and the ARN form
// arn:<partition>:appmesh:<region>:<account>:mesh/<mesh>/virtualNode/<name>.
//
// It is neutral ground: the control plane uses it to key the xDS view a
// node receives, and the sidecar uses it to read its own identity from the
// environment, without either importing the other.
package nodeid

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Kind is the kind of resource a data plane stands for, spelled as it
// appears in the identity's path.
type Kind string

// The two kinds of data plane App Mesh knows.
const (
	VirtualNode    Kind = "virtualNode"
	VirtualGateway Kind = "virtualGateway"
)

// ID is a data plane's identity: the mesh and the virtual node or virtual
// gateway whose configuration it receives.
type ID struct {
	Mesh string
	Kind Kind
	Name string
}

// String returns the short form, mesh/<mesh>/<kind>/<name>, which is also
// the node id meshlens hands to Envoy.
func (id ID) String() string {
	return "mesh/" + id.Mesh + "/" + string(id.Kind) + "/" + id.Name
}

// ErrNoIdentity is returned by FromEnv when none of the identity variables
// is set.
var ErrNoIdentity = errors.New("no data plane identity: set APPMESH_RESOURCE_ARN (mesh/<mesh>/virtualNode/<name>, mesh/<mesh>/virtualGateway/<name> or its ARN)")

// maxNameLen is App Mesh's limit on resource names.
const maxNameLen = 255

// Parse reads an identity in the short form or the ARN form. Any partition,
// region and account are accepted in an ARN (meshlens's own ARNs use
// region "meshlens" and account 000000000000); the service must be appmesh.
func Parse(s string) (ID, error) {
	if s == "" {
		return ID{}, errors.New("parse node id: empty")
	}
	path := s
	if strings.HasPrefix(s, "arn:") {
		// arn:partition:service:region:account:resource
		parts := strings.SplitN(s, ":", 6)
		if len(parts) != 6 {
			return ID{}, fmt.Errorf("parse node id %q: an ARN has six colon-separated fields (arn:<partition>:appmesh:<region>:<account>:mesh/...)", s)
		}
		if parts[1] == "" {
			return ID{}, fmt.Errorf("parse node id %q: ARN has an empty partition", s)
		}
		if parts[2] != "appmesh" {
			return ID{}, fmt.Errorf("parse node id %q: ARN service is %q, want appmesh", s, parts[2])
		}
		path = parts[5]
	}
	// mesh/<mesh>/<kind>/<name>, split without allocating: every xDS
	// request's node is parsed.
	var segs [4]string
	if strings.Count(path, "/") == 3 {
		rest := path
		for i := range 3 {
			segs[i], rest, _ = strings.Cut(rest, "/")
		}
		segs[3] = rest
	}
	if segs[0] != "mesh" {
		return ID{}, fmt.Errorf("parse node id %q: want mesh/<mesh>/virtualNode/<name> or mesh/<mesh>/virtualGateway/<name>", s)
	}
	id := ID{Mesh: segs[1], Kind: Kind(segs[2]), Name: segs[3]}
	switch id.Kind {
	case VirtualNode, VirtualGateway:
	default:
		if strings.EqualFold(segs[2], string(VirtualNode)) || strings.EqualFold(segs[2], string(VirtualGateway)) {
			return ID{}, fmt.Errorf("parse node id %q: kind %q is spelled virtualNode or virtualGateway", s, segs[2])
		}
		return ID{}, fmt.Errorf("parse node id %q: kind %q is not a data plane kind (virtualNode or virtualGateway)", s, segs[2])
	}
	if err := checkName("mesh", id.Mesh); err != nil {
		return ID{}, fmt.Errorf("parse node id %q: %w", s, err)
	}
	if err := checkName(string(id.Kind), id.Name); err != nil {
		return ID{}, fmt.Errorf("parse node id %q: %w", s, err)
	}
	return id, nil
}

// checkName rejects names App Mesh could never have created: empty, too
// long, or holding spaces or control characters.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("empty %s name", what)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%s name is %d bytes, longer than %d", what, len(name), maxNameLen)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%s name %q holds a space, control or invalid character", what, name)
		}
	}
	return nil
}

// The environment variables App Mesh's Envoy image read its identity from,
// in the order it tried them.
const (
	EnvResourceARN     = "APPMESH_RESOURCE_ARN"
	EnvResourceName    = "APPMESH_RESOURCE_NAME"
	EnvVirtualNodeName = "APPMESH_VIRTUAL_NODE_NAME"
)

// FromEnv reads the identity from APPMESH_RESOURCE_ARN, or failing that
// APPMESH_RESOURCE_NAME, or APPMESH_VIRTUAL_NODE_NAME: the first one set
// wins, as in App Mesh's image, and a malformed value is an error naming
// the variable rather than a reason to try the next. getenv is os.Getenv in
// production and a map lookup in tests.
func FromEnv(getenv func(string) string) (ID, error) {
	for _, name := range []string{EnvResourceARN, EnvResourceName, EnvVirtualNodeName} {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			continue
		}
		id, err := Parse(v)
		if err != nil {
			return ID{}, fmt.Errorf("%s: %w", name, err)
		}
		return id, nil
	}
	return ID{}, ErrNoIdentity
}
