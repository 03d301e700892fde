package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/meshlens/meshlens/internal/meshca"
)

// TestMeshCAStartRefusals: a mesh CA without a key-encryption key, a bad
// --ca-root, or --xds-client-certs without TLS or the CA stops the server
// at start with an error that names the flag; --ca-generate-key writes a
// 0600 key next to the store.
func TestMeshCAStartRefusals(t *testing.T) {
	t.Setenv("MESHLENS_CA_KEY", "")
	for _, tc := range []struct {
		name string
		ca   CAConfig
		tls  bool
		want string
	}{
		{"no key", CAConfig{Enabled: true}, false, "--ca-key-file"},
		{"bad root flag", CAConfig{GenerateKey: true, Roots: []string{"demo"}}, false, "--ca-root"},
		{"missing root files", CAConfig{GenerateKey: true, Roots: []string{"demo=/nonexistent.pem,/nonexistent.key"}}, false, "mesh demo"},
		{"client certs without TLS", CAConfig{GenerateKey: true, XDSClientCerts: true}, false, "--xds-tls-cert"},
		{"client certs without the CA", CAConfig{XDSClientCerts: true}, true, "needs the mesh CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{DataDir: t.TempDir(), APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", CA: tc.ca}
			if tc.tls {
				cfg.XDSTLS = &tls.Config{}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := New(ctx, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %q", err, tc.want)
			}
		})
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, Config{DataDir: dir, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", CA: CAConfig{GenerateKey: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.store.Close()
	if fi, err := os.Stat(filepath.Join(dir, caKeyFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key: %v", err)
	}
}

// A client certificate from the mesh CA names its mesh by trust domain,
// the mesh's name in lower case: it stands for its node in the mesh of
// that name whatever its case, and in no other mesh.
func TestCertPrincipalMatchesMeshByTrustDomain(t *testing.T) {
	s := &Server{cfg: Config{CA: CAConfig{XDSClientCerts: true}}}
	id := meshca.IDFor("Demo-Mesh", meshca.KindVirtualNode, "Web")
	cert := &x509.Certificate{URIs: []*url.URL{mustParseURL(t, id.String())}}
	ctx := peer.NewContext(context.Background(), &peer.Peer{
		AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}},
	})
	p, ok := s.certPrincipal(ctx)
	if !ok {
		t.Fatalf("no principal for %s", id)
	}
	for _, c := range []struct {
		kind, mesh, node string
		want             bool
	}{
		{"virtualNode", "Demo-Mesh", "Web", true},
		// A virtual node's certificate does not stand for the gateway
		// of the same name.
		{"virtualGateway", "Demo-Mesh", "Web", false},
		{"virtualNode", "demo-mesh", "Web", true},
		{"virtualNode", "DEMO-MESH", "Web", true},
		{"virtualNode", "Demo-Mesh", "web", false},
		{"virtualNode", "Demo-Mesh", "Other", false},
		{"virtualNode", "Other", "Web", false},
		{"virtualNode", "Demo-Mesh-2", "Web", false},
	} {
		if got := p.AllowsKindNode(c.kind, c.mesh, c.node); got != c.want {
			t.Errorf("%s (%s) allows %s %s/%s = %v, want %v", id, p, c.kind, c.mesh, c.node, got, c.want)
		}
	}
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
