package meshca

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of workload a SPIFFE id of the mesh CA names, as in App Mesh's
// resource paths.
const (
	KindVirtualNode    = "virtualNode"
	KindVirtualGateway = "virtualGateway"
)

// maxIDLen is the SPIFFE limit on the length of an id's URI.
const maxIDLen = 2048

// ID is a SPIFFE id issued by the mesh CA: spiffe://<trust domain>/<kind>/<name>.
type ID struct {
	TrustDomain string
	Kind        string
	Name        string
}

// String returns the id as a URI.
func (id ID) String() string {
	return "spiffe://" + id.TrustDomain + "/" + id.Kind + "/" + id.Name
}

// TrustDomainURI is the id of the trust domain itself, spiffe://<domain>.
func TrustDomainURI(domain string) string { return "spiffe://" + domain }

// TrustDomainOf is the trust domain of a mesh: its name in lower case
// (SPIFFE trust domains are lower case; App Mesh names are letters,
// digits, hyphens and underscores).
func TrustDomainOf(mesh string) string { return strings.ToLower(mesh) }

// IDFor is the identity of a virtual node or gateway of a mesh.
func IDFor(mesh, kind, name string) ID {
	return ID{TrustDomain: TrustDomainOf(mesh), Kind: kind, Name: name}
}

// ParseID reads a SPIFFE id of the mesh CA's form. It checks the SPIFFE
// rules (scheme, lower-case trust domain of [a-z0-9._-], path segments of
// [A-Za-z0-9._-] that are not . or .., no query, fragment, port or user)
// and that the path is <virtualNode|virtualGateway>/<name>.
func ParseID(s string) (ID, error) {
	if len(s) > maxIDLen {
		return ID{}, fmt.Errorf("spiffe id: longer than %d bytes", maxIDLen)
	}
	rest, ok := strings.CutPrefix(s, "spiffe://")
	if !ok {
		return ID{}, fmt.Errorf("spiffe id %q: scheme must be spiffe://", s)
	}
	domain, path, _ := strings.Cut(rest, "/")
	if err := checkTrustDomain(domain); err != nil {
		return ID{}, fmt.Errorf("spiffe id %q: %w", s, err)
	}
	segs := strings.Split(path, "/")
	if len(segs) != 2 {
		return ID{}, fmt.Errorf("spiffe id %q: path must be /virtualNode/<name> or /virtualGateway/<name>", s)
	}
	for _, seg := range segs {
		if err := checkSegment(seg); err != nil {
			return ID{}, fmt.Errorf("spiffe id %q: %w", s, err)
		}
	}
	if segs[0] != KindVirtualNode && segs[0] != KindVirtualGateway {
		return ID{}, fmt.Errorf("spiffe id %q: kind %q is not virtualNode or virtualGateway", s, segs[0])
	}
	return ID{TrustDomain: domain, Kind: segs[0], Name: segs[1]}, nil
}

func checkTrustDomain(d string) error {
	if d == "" {
		return errors.New("empty trust domain")
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("trust domain %q: character %q is not one of [a-z0-9._-]", d, c)
		}
	}
	return nil
}

func checkSegment(s string) error {
	if s == "" || s == "." || s == ".." {
		return fmt.Errorf("path segment %q is empty, . or ..", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("path segment %q: character %q is not one of [A-Za-z0-9._-]", s, c)
		}
	}
	return nil
}
