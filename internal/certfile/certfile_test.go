package certfile

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for 127.0.0.1 with the given
// serial, and its key, as PEM files.
func writePair(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "certfile test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "EC PRIVATE KEY", kder)
}

// bump moves both files' modification times forward, as a rotation
// written within the same clock tick would not.
func bump(t *testing.T, d time.Duration, files ...string) {
	t.Helper()
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f, fi.ModTime().Add(d), fi.ModTime().Add(d)); err != nil {
			t.Fatal(err)
		}
	}
}

// servedSerial makes a TLS handshake with a server using r and returns
// the serial number of the certificate it presented.
func servedSerial(t *testing.T, r *Reloader) int64 {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.(*tls.Conn).Handshake()
		c.Close()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// A rotated pair is served once Interval passed; a pair that does not
// load keeps the one in use, with one warning, until a good one comes.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePair(t, cert, key, 1)
	var warnings atomic.Int32
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := Load(cert, key, log)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	r.now = func() time.Time { return clock }
	r.log = slog.New(countWarnings{&warnings})
	if got := servedSerial(t, r); got != 1 {
		t.Fatalf("serial %d served, want 1", got)
	}

	writePair(t, cert, key, 2)
	bump(t, 2*time.Second, cert, key)
	if got := servedSerial(t, r); got != 1 {
		t.Fatalf("serial %d served before Interval passed, want 1", got)
	}
	clock = clock.Add(DefaultInterval)
	if got := servedSerial(t, r); got != 2 {
		t.Fatalf("serial %d served after the rotation, want 2", got)
	}

	// A certificate written before its key: they do not match.
	writePair(t, cert, filepath.Join(dir, "other.key"), 3)
	bump(t, 4*time.Second, cert)
	for range 3 {
		clock = clock.Add(DefaultInterval)
		if got := servedSerial(t, r); got != 2 {
			t.Fatalf("serial %d served with a mismatched pair on disk, want 2 kept", got)
		}
	}
	if n := warnings.Load(); n != 1 {
		t.Fatalf("%d warnings for one bad pair, want 1", n)
	}
	writePair(t, cert, key, 4)
	bump(t, 6*time.Second, cert, key)
	clock = clock.Add(DefaultInterval)
	if got := servedSerial(t, r); got != 4 {
		t.Fatalf("serial %d served once the pair is whole again, want 4", got)
	}
}

func TestLoadRefusesABadPair(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := Load(cert, key, nil); err == nil {
		t.Fatal("missing files loaded")
	}
	writePair(t, cert, filepath.Join(dir, "x.key"), 1)
	writePair(t, filepath.Join(dir, "x.crt"), key, 2)
	if _, err := Load(cert, key, nil); err == nil {
		t.Fatal("a certificate with another certificate's key loaded")
	}
}

// countWarnings is a slog handler counting warnings.
type countWarnings struct{ n *atomic.Int32 }

func (h countWarnings) Enabled(_ context.Context, l slog.Level) bool { return true }
func (h countWarnings) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level == slog.LevelWarn {
		h.n.Add(1)
	}
	return nil
}
func (h countWarnings) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countWarnings) WithGroup(string) slog.Handler      { return h }
