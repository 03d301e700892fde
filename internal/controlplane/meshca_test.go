package controlplane

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
