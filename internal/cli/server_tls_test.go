package cli

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/certfile"
)

// TestServerTLSLogsToTheServersLogger: the certificate files behind
// --api-tls-cert and --xds-tls-cert are read again when they change, and
// what that says (here: a rotation that does not load) goes to the
// server's logger, in its format and at its level, not to the process's
// default logger.
func TestServerTLSLogsToTheServersLogger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg, err := serverTLS("--api-tls-cert", certFile, "--api-tls-key", keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// A certificate written before its key: it does not load.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(certfile.DefaultInterval + 100*time.Millisecond)
	cert, err := cfg.GetCertificate(nil)
	if err != nil || cert == nil || !bytes.Equal(cert.Certificate[0], der) {
		t.Fatalf("after a rotation that does not load: %v, %v; want the first certificate", cert, err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "do not load") {
		t.Fatalf("the server's log: %q; want the warning of the pair that does not load", logs.String())
	}
}
