package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshlens/meshlens/internal/meshca"
)

// caKeyFileName is where --ca-generate-key writes the key-encryption key,
// next to the store.
const caKeyFileName = "ca.key"

// CAConfig configures the mesh certificate authority (see
// docs/security.md).
type CAConfig struct {
	// Enabled runs the mesh CA. Setting KeyFile, GenerateKey or Roots
	// enables it too.
	Enabled bool
	// KeyFile holds the key that encrypts the CA private keys in the
	// store; empty reads meshca.KeyEnv instead.
	KeyFile string
	// GenerateKey writes a new key to <data dir>/ca.key (mode 0600) when
	// no key is given and that file does not exist, and uses it.
	GenerateKey bool
	// Validity of issued identities (default 24h), renewed at half-life.
	Validity time.Duration
	// Roots are users' own roots, "mesh=cert.pem,key.pem" each.
	Roots []string
}

func (c CAConfig) enabled() bool {
	return c.Enabled || c.KeyFile != "" || c.GenerateKey || len(c.Roots) > 0
}

// ParseCARoot reads a --ca-root value: mesh=cert-file,key-file.
func ParseCARoot(s string) (mesh string, rf meshca.RootFiles, err error) {
	mesh, files, ok := strings.Cut(s, "=")
	cert, key, ok2 := strings.Cut(files, ",")
	if !ok || !ok2 || mesh == "" || cert == "" || key == "" {
		return "", rf, fmt.Errorf("--ca-root %q: want <mesh>=<certificate file>,<key file>", s)
	}
	return mesh, meshca.RootFiles{CertFile: cert, KeyFile: key}, nil
}

// openCA starts the mesh CA over the store, or returns nil when it is
// not enabled.
func openCA(cfg Config, st meshca.Store) (*meshca.Authority, error) {
	c := cfg.CA
	if !c.enabled() {
		return nil, nil
	}
	key, err := meshca.LoadKey(c.KeyFile, os.Getenv)
	if err != nil && c.GenerateKey && c.KeyFile == "" && os.Getenv(meshca.KeyEnv) == "" {
		f := filepath.Join(cfg.DataDir, caKeyFileName)
		key, err = meshca.GenerateKeyFile(f)
		if err == nil {
			cfg.Logger.Warn("mesh CA: using the key-encryption key next to the store; keep a copy elsewhere, and prefer --ca-key-file from a secret store", "file", f)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("mesh CA: %w", err)
	}
	roots := map[string]meshca.RootFiles{}
	for _, r := range c.Roots {
		mesh, rf, err := ParseCARoot(r)
		if err != nil {
			return nil, err
		}
		roots[mesh] = rf
	}
	a, err := meshca.New(meshca.Options{Key: key, Store: st, Validity: c.Validity, Roots: roots, Log: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("mesh CA: %w", err)
	}
	cfg.Logger.Info("mesh CA: on", "validity", a.Validity(), "own_roots", len(roots))
	return a, nil
}
