package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/meshlens/meshlens/internal/auth"
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
	// XDSClientCerts makes the xDS TLS server ask for client
	// certificates: one the mesh CA issued authenticates the call as its
	// node, with no token (a proxy bootstraps with its token, then
	// reconnects with the identity it was given). Needs XDSTLS and the CA.
	XDSClientCerts bool
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

// xdsClientCertTLS makes the xDS TLS configuration ask for client
// certificates and accept those the mesh CA issued (any other is refused
// in the handshake); calls without one still need a token.
func xdsClientCertTLS(cfg Config, ca *meshca.Authority) (*tls.Config, error) {
	if !cfg.CA.XDSClientCerts {
		return cfg.XDSTLS, nil
	}
	if cfg.XDSTLS == nil {
		return nil, errors.New("--xds-client-certs: the xDS address must serve TLS (--xds-tls-cert and --xds-tls-key)")
	}
	if ca == nil {
		return nil, errors.New("--xds-client-certs: needs the mesh CA (--ca-key-file, $MESHLENS_CA_KEY or --ca-generate-key)")
	}
	c := cfg.XDSTLS.Clone()
	c.ClientAuth = tls.RequestClientCert
	c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return nil // a bootstrap call: its token is checked
		}
		_, err := ca.VerifyClient(raw, time.Now())
		return err
	}
	return c, nil
}

// certPrincipal is the principal of a call made with a client
// certificate the mesh CA issued (verified in the handshake, see
// xdsClientCertTLS): the node it names.
func (s *Server) certPrincipal(ctx context.Context) (auth.Principal, bool) {
	if !s.cfg.CA.XDSClientCerts {
		return auth.Principal{}, false
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return auth.Principal{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 || len(ti.State.PeerCertificates[0].URIs) != 1 {
		return auth.Principal{}, false
	}
	id, err := meshca.ParseID(ti.State.PeerCertificates[0].URIs[0].String())
	if err != nil {
		return auth.Principal{}, false
	}
	return auth.Principal{TokenID: "cert:" + id.String(), Mesh: id.TrustDomain, Node: id.Name, ByTrustDomain: true, Kind: id.Kind}, true
}
