package meshca

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) CASecret(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name], nil
}

func (s *memStore) PutCASecret(name string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = v
	return nil
}

func testKey(t *testing.T) *Key {
	t.Helper()
	k, err := GenerateKeyFile(filepath.Join(t.TempDir(), "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, err string
	}{
		{in: "spiffe://demo/virtualNode/web"},
		{in: "spiffe://my-mesh.local/virtualGateway/gw_1"},
		{in: "http://demo/virtualNode/web", err: "scheme"},
		{in: "spiffe://Demo/virtualNode/web", err: "trust domain"},
		{in: "spiffe:///virtualNode/web", err: "empty trust domain"},
		{in: "spiffe://demo/virtualNode", err: "path must be"},
		{in: "spiffe://demo/virtualNode/a/b", err: "path must be"},
		{in: "spiffe://demo/virtualRouter/web", err: "kind"},
		{in: "spiffe://demo/virtualNode/..", err: "segment"},
		{in: "spiffe://demo/virtualNode/a?b", err: "character"},
		{in: "spiffe://demo:8080/virtualNode/a", err: "character"},
	} {
		id, err := ParseID(tc.in)
		if tc.err == "" {
			if err != nil || id.String() != tc.in {
				t.Errorf("ParseID(%q) = %v, %v; want it back", tc.in, id, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseID(%q) error = %v, want one with %q", tc.in, err, tc.err)
		}
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in  string
		err string
	}{
		{in: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"},
		{in: strings.Repeat("ab", 32)},
		{in: "short", err: "5 characters"},
		{in: strings.Repeat("zz", 32), err: "not hex"},
		{in: strings.Repeat("!", 44), err: "not base64"},
	} {
		_, err := ParseKey([]byte(tc.in))
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseKey(%q) = %v, want error %q", tc.in, err, tc.err)
		}
	}
}

func TestLoadKey(t *testing.T) {
	t.Parallel()
	if _, err := LoadKey("", func(string) string { return "" }); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no key: %v, want ErrNoKey", err)
	}
	if _, err := LoadKey("", func(string) string { return strings.Repeat("01", 32) }); err != nil {
		t.Fatalf("env key: %v", err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "k")
	if _, err := GenerateKeyFile(f); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if _, err := LoadKey(f, nil); err != nil {
		t.Fatalf("load generated: %v", err)
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(f, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v, want a refusal", err)
	}
}

func TestIssueVerifyAndRenew(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st := &memStore{}
	key := testKey(t)
	a, err := New(Options{Key: key, Store: st, Validity: 20 * time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	id1, err := a.Identity("Demo", KindVirtualNode, "web")
	if err != nil {
		t.Fatal(err)
	}
	if got := id1.ID.String(); got != "spiffe://demo/virtualNode/web" {
		t.Fatalf("id %s", got)
	}
	leaf := parseCert(t, id1.CertPEM)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(id1.RootPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://demo/virtualNode/web" {
		t.Fatalf("URIs %v", leaf.URIs)
	}
	if want := now.Add(10 * time.Second); !id1.RenewAt.Equal(want) {
		t.Fatalf("renew at %v, want %v", id1.RenewAt, want)
	}
	same, _ := a.Identity("Demo", KindVirtualNode, "web")
	if same != id1 {
		t.Fatal("reissued before half-life")
	}
	now = now.Add(10 * time.Second)
	id2, _ := a.Identity("Demo", KindVirtualNode, "web")
	if id2 == id1 || string(id2.CertPEM) == string(id1.CertPEM) {
		t.Fatal("not renewed at half-life")
	}

	// A restart with the same key reads the same root from the store.
	b, err := New(Options{Key: key, Store: st, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.RootPEM("Demo")
	if err != nil || string(r2) != string(id1.RootPEM) {
		t.Fatalf("root after restart differs (%v)", err)
	}
	// With another key it refuses, saying why.
	c, _ := New(Options{Key: testKey(t), Store: st, Now: clock})
	if _, err := c.RootPEM("Demo"); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v, want ErrWrongKey", err)
	}
	// The stored record holds no private key in the clear.
	for _, v := range st.m {
		if strings.Contains(string(v), "PRIVATE KEY") {
			t.Fatal("private key stored in the clear")
		}
	}
}

func TestUserRoot(t *testing.T) {
	t.Parallel()
	gen, err := New(Options{Key: testKey(t), Store: &memStore{}})
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := gen.generate("x")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kder, _ := x509.MarshalPKCS8PrivateKey(r.key)
	cf, kf := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	os.WriteFile(cf, r.pem, 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	a, err := New(Options{Key: testKey(t), Store: &memStore{}, Roots: map[string]RootFiles{"demo": {cf, kf}}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Identity("demo", KindVirtualGateway, "gw")
	if err != nil || string(id.RootPEM) != string(r.pem) {
		t.Fatalf("identity from a user root: %v", err)
	}
	// Swapped files are refused.
	if _, err := New(Options{Key: testKey(t), Store: &memStore{}, Roots: map[string]RootFiles{"demo": {kf, cf}}}); err == nil {
		t.Fatal("swapped root files accepted")
	}
}

func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyClient(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a, err := New(Options{Key: testKey(t), Store: &memStore{}, Validity: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ident, err := a.Identity("demo", KindVirtualNode, "web")
	if err != nil {
		t.Fatal(err)
	}
	der := parseCert(t, ident.CertPEM).Raw
	if id, err := a.VerifyClient([][]byte{der}, now); err != nil || id.String() != "spiffe://demo/virtualNode/web" {
		t.Fatalf("VerifyClient = %v, %v", id, err)
	}
	if _, err := a.VerifyClient([][]byte{der}, now.Add(2*time.Minute)); err == nil {
		t.Error("expired certificate accepted")
	}
	other, _ := New(Options{Key: testKey(t), Store: &memStore{}})
	oid, _ := other.Identity("demo", KindVirtualNode, "web")
	if _, err := a.VerifyClient([][]byte{parseCert(t, oid.CertPEM).Raw}, now); err == nil {
		t.Error("certificate of another CA accepted")
	}
	stranger, _ := other.Identity("elsewhere", KindVirtualNode, "x")
	if _, err := a.VerifyClient([][]byte{parseCert(t, stranger.CertPEM).Raw}, now); err == nil || !strings.Contains(err.Error(), "no root") {
		t.Errorf("unknown mesh: %v", err)
	}
}
