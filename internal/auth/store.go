package auth

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshlens/meshlens/internal/meshca"
)

// Role is what a token may do on the REST API.
type Role string

// The roles, each allowing what the one before allows.
const (
	// RoleRead: GET (and HEAD) requests.
	RoleRead Role = "read"
	// RoleWrite: also apply, put and delete resources, register instances.
	RoleWrite Role = "write"
	// RoleAdmin: also manage tokens, and open any node's xDS stream.
	RoleAdmin Role = "admin"
)

var roleRank = map[Role]int{RoleRead: 1, RoleWrite: 2, RoleAdmin: 3}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if roleRank[r] == 0 {
		return "", fmt.Errorf("role %q: want read, write or admin", s)
	}
	return r, nil
}

// Token is one entry of the token file: what a token allows, never the
// token itself. Exactly one of Role, Node and Mesh is set: a role token is
// for people and tools on the REST API; a node token (Mesh and Node) or a
// mesh token (Mesh only) is a proxy's bootstrap token.
type Token struct {
	ID   string `json:"id"`
	Hash string `json:"sha256"`
	Role Role   `json:"role,omitempty"`
	// Mesh and Node bind a bootstrap token: to the virtual node or
	// gateway Node of Mesh, or (Node empty) to every one in Mesh.
	Mesh        string    `json:"mesh,omitempty"`
	Node        string    `json:"node,omitempty"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
}

// Scope describes what the token allows, for lists and logs:
// "role=admin", "node=demo/greeter" or "mesh=demo".
func (t Token) Scope() string {
	switch {
	case t.Role != "":
		return "role=" + string(t.Role)
	case t.Node != "":
		return "node=" + t.Mesh + "/" + t.Node
	default:
		return "mesh=" + t.Mesh
	}
}

// Spec is what a new token allows.
type Spec struct {
	Role        Role
	Mesh, Node  string
	Description string
}

// Validate checks that exactly one kind of scope is given.
func (s Spec) Validate() error {
	if len(s.Description) > 256 {
		return errors.New("token: description: at most 256 characters")
	}
	switch {
	case s.Role != "" && (s.Mesh != "" || s.Node != ""):
		return errors.New("token: give a role, or a node or mesh to bind a bootstrap token to, not both")
	case s.Role != "":
		_, err := ParseRole(string(s.Role))
		return err
	case s.Node != "" && s.Mesh == "":
		return errors.New("token: node: needs its mesh (<mesh>/<node>)")
	case s.Mesh == "":
		return errors.New("token: give a role (read, write, admin), a node (<mesh>/<node>) or a mesh")
	}
	for _, f := range []struct{ field, v string }{{"mesh", s.Mesh}, {"node", s.Node}} {
		if strings.ContainsAny(f.v, "/ \t\n") || len(f.v) > 255 {
			return fmt.Errorf("token: %s %q: a name has no slash or space and at most 255 characters", f.field, f.v)
		}
	}
	return nil
}

// Principal is who presented a valid token: the token's id and scope.
type Principal struct {
	TokenID    string
	Role       Role
	Mesh, Node string
	// ByTrustDomain: Mesh is a SPIFFE trust domain (a client certificate
	// from the mesh CA), the mesh's name in lower case, so it matches the
	// mesh whose name it is in any case.
	ByTrustDomain bool
	// Kind, when set (a client certificate names virtualNode or
	// virtualGateway), is the only kind of data plane the principal may
	// stand for; a token, which names no kind, leaves it empty.
	Kind string
}

// HasRole reports whether the principal holds role r or a higher one.
// Bootstrap tokens hold no role.
func (p Principal) HasRole(r Role) bool { return roleRank[p.Role] >= roleRank[r] }

// AllowsNode reports whether the principal may receive the configuration
// of (and register instances for) the virtual node or gateway name of
// mesh: a bootstrap token bound to it or to its mesh, or an admin.
func (p Principal) AllowsNode(mesh, name string) bool {
	switch {
	case p.HasRole(RoleAdmin):
		return true
	case p.Role != "" || !p.inMesh(mesh):
		return false
	default:
		return p.Node == "" || p.Node == name
	}
}

// AllowsKindNode is AllowsNode for a data plane of kind (virtualNode or
// virtualGateway): a principal bound to one kind does not stand for a
// node of the other kind that has the same name.
func (p Principal) AllowsKindNode(kind, mesh, name string) bool {
	if p.Kind != "" && p.Kind != kind && !p.HasRole(RoleAdmin) {
		return false
	}
	return p.AllowsNode(mesh, name)
}

// inMesh reports whether the principal is bound to mesh.
func (p Principal) inMesh(mesh string) bool {
	if p.ByTrustDomain {
		return meshca.TrustDomainOf(mesh) == p.Mesh
	}
	return p.Mesh == mesh
}

// String names the principal for logs: the token id and its scope.
func (p Principal) String() string {
	return p.TokenID + " (" + Token{Role: p.Role, Mesh: p.Mesh, Node: p.Node}.Scope() + ")"
}

// fileFormat is the token file: a version and the tokens' entries.
type fileFormat struct {
	Version int     `json:"version"`
	Tokens  []Token `json:"tokens"`
}

const fileVersion = 1

// maxFileBytes bounds the token file.
const maxFileBytes = 16 << 20

// recheck is how often Authenticate looks whether the file changed.
const recheck = time.Second

// ErrNotFound: Revoke was given an id that is not in the file.
var ErrNotFound = errors.New("no such token")

// Store is the token file. It is safe for concurrent use; the file is
// reread when its size or modification time changes (checked at most once
// a second), so another process's changes are seen.
type Store struct {
	path string

	mu      sync.Mutex
	tokens  map[string]Token // by id
	stamp   fileStamp        // of the file last read
	checked time.Time        // last time the stamp was compared
}

type fileStamp struct {
	size    int64
	modTime time.Time
	exists  bool
}

// Open reads the token file at path. A missing file is an empty store:
// it is created by the first Create.
func Open(path string) (*Store, error) {
	s := &Store{path: path, tokens: map[string]Token{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the token file's path.
func (s *Store) Path() string { return s.path }

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, fmt.Errorf("token file: %w", err)
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime(), exists: true}, nil
}

// load reads the file into s.tokens; s.mu is held.
func (s *Store) load() error {
	st, err := stampOf(s.path)
	if err != nil {
		return err
	}
	s.checked = time.Now()
	if !st.exists {
		s.tokens, s.stamp = map[string]Token{}, st
		return nil
	}
	if st.size > maxFileBytes {
		return fmt.Errorf("token file %s: larger than %d bytes", s.path, maxFileBytes)
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	tokens, err := parseFile(data)
	if err != nil {
		return fmt.Errorf("token file %s: %w", s.path, err)
	}
	s.tokens, s.stamp = tokens, st
	return nil
}

// parseFile decodes and checks the token file's contents.
func parseFile(data []byte) (map[string]Token, error) {
	out := map[string]Token{}
	if len(bytes.TrimSpace(data)) == 0 {
		return out, nil
	}
	var f fileFormat
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("version: %d, want %d", f.Version, fileVersion)
	}
	for i, t := range f.Tokens {
		if !validID(t.ID) {
			return nil, fmt.Errorf("tokens[%d].id %q: want %d lower-case hex digits", i, t.ID, idLen)
		}
		if len(t.Hash) != 64 || strings.Trim(t.Hash, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("tokens[%d].sha256: want 64 lower-case hex digits", i)
		}
		if err := (Spec{Role: t.Role, Mesh: t.Mesh, Node: t.Node, Description: t.Description}).Validate(); err != nil {
			return nil, fmt.Errorf("tokens[%d]: %w", i, err)
		}
		if _, dup := out[t.ID]; dup {
			return nil, fmt.Errorf("tokens[%d].id %q: appears twice", i, t.ID)
		}
		out[t.ID] = t
	}
	return out, nil
}

// refresh rereads the file if it changed since it was read; s.mu is held.
// A file that became unreadable keeps the tokens last read (and the error
// is returned for the caller to log).
func (s *Store) refresh(force bool) error {
	if !force && time.Since(s.checked) < recheck {
		return nil
	}
	st, err := stampOf(s.path)
	s.checked = time.Now()
	if err != nil {
		return err
	}
	if st == s.stamp {
		return nil
	}
	return s.load()
}

// Len is the number of tokens.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.refresh(false)
	return len(s.tokens)
}

// Authenticate checks a token (as ParseAuthorization returns it) and
// returns who it belongs to. The comparison of the stored hash takes the
// same time whatever the token.
func (s *Store) Authenticate(token string) (Principal, error) {
	id, err := ParseToken(token)
	if err != nil {
		return Principal{}, err
	}
	h := hashToken(token)
	s.mu.Lock()
	_ = s.refresh(false) // an unreadable file keeps the tokens last read
	t, ok := s.tokens[id]
	s.mu.Unlock()
	if !ok {
		t.Hash = strings.Repeat("0", 64)
	}
	if subtle.ConstantTimeCompare([]byte(h), []byte(t.Hash)) != 1 || !ok {
		return Principal{TokenID: id}, fmt.Errorf("%w (id %s)", ErrInvalid, id)
	}
	return Principal{TokenID: id, Role: t.Role, Mesh: t.Mesh, Node: t.Node}, nil
}

// List returns the tokens' entries, oldest first.
func (s *Store) List() ([]Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(true); err != nil {
		return nil, err
	}
	out := make([]Token, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Token) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Create adds a token and returns it (the only time it is seen) with its
// entry.
func (s *Store) Create(spec Spec) (string, Token, error) {
	if err := spec.Validate(); err != nil {
		return "", Token{}, err
	}
	tok, id, err := newToken()
	if err != nil {
		return "", Token{}, err
	}
	t := Token{ID: id, Hash: hashToken(tok), Role: spec.Role, Mesh: spec.Mesh, Node: spec.Node,
		Description: spec.Description, Created: time.Now().UTC().Truncate(time.Second)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(true); err != nil {
		return "", Token{}, err
	}
	next := make(map[string]Token, len(s.tokens)+1)
	for k, v := range s.tokens {
		next[k] = v
	}
	next[id] = t
	if err := s.write(next); err != nil {
		return "", Token{}, err
	}
	return tok, t, nil
}

// Revoke removes the token with the given id.
func (s *Store) Revoke(id string) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(true); err != nil {
		return Token{}, err
	}
	t, ok := s.tokens[id]
	if !ok {
		return Token{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	next := make(map[string]Token, len(s.tokens))
	for k, v := range s.tokens {
		if k != id {
			next[k] = v
		}
	}
	if err := s.write(next); err != nil {
		return Token{}, err
	}
	return t, nil
}

// write replaces the file with tokens (mode 0600, through a rename, so a
// reader never sees half a file); s.mu is held.
func (s *Store) write(tokens map[string]Token) error {
	f := fileFormat{Version: fileVersion, Tokens: make([]Token, 0, len(tokens))}
	for _, t := range tokens {
		f.Tokens = append(f.Tokens, t)
	}
	slices.SortFunc(f.Tokens, func(a, b Token) int { return strings.Compare(a.ID, b.ID) })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode token file: %w", err)
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tokens-*")
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write token file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	s.tokens = tokens
	st, err := stampOf(s.path)
	if err == nil {
		s.stamp = st
	}
	s.checked = time.Now()
	return nil
}
