package sds

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
)

func selfSigned(t testing.TB) (certPEM, keyPEM []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func certSecret(name string, c, k []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: k}},
	}}}
}

func caSecret(name string, c []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: string(c)}},
	}}}
}

// TestUpdateSwapsWholeOrNothing: a good update replaces what a reference
// holds; an update with one bad secret changes nothing and names it.
func TestUpdateSwapsWholeOrNothing(t *testing.T) {
	t.Parallel()
	c, k := selfSigned(t)
	s := NewStore()
	ref := s.Ref("id")
	if ref.Load() != nil {
		t.Fatal("secret before any update")
	}
	if err := s.Update(map[string]*tlsv3.Secret{"id": certSecret("id", c, k), "root": caSecret("root", c)}); err != nil {
		t.Fatal(err)
	}
	first := ref.Load()
	if first == nil || first.Leaf == nil || s.Ref("root").Load().Roots == nil {
		t.Fatal("secrets not compiled")
	}
	c2, k2 := selfSigned(t)
	err := s.Update(map[string]*tlsv3.Secret{"id": certSecret("id", c2, k2), "root": caSecret("root", []byte("junk"))})
	if err == nil || !strings.Contains(err.Error(), "secret root") {
		t.Fatalf("bad update: %v, want an error naming the secret", err)
	}
	if ref.Load() != first {
		t.Fatal("a refused update changed a secret")
	}
	if err := s.Update(map[string]*tlsv3.Secret{"id": certSecret("id", c2, k2)}); err != nil || ref.Load() == first {
		t.Fatalf("renewal not swapped in: %v", err)
	}
	for _, bad := range []*tlsv3.Secret{
		certSecret("k", c, []byte("nope")),
		{Name: "f", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/x"}}}}},
		{Name: "none"},
	} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("Compile(%s) accepted", bad.Name)
		}
	}
}

func FuzzCompile(f *testing.F) {
	c, k := selfSigned(f)
	f.Add(c, k, true)
	f.Add(c, []byte{}, false)
	f.Fuzz(func(t *testing.T, chain, key []byte, isCert bool) {
		sec := caSecret("f", chain)
		if isCert {
			sec = certSecret("f", chain, key)
		}
		out, err := Compile(sec)
		if err == nil && out.Cert == nil && out.Roots == nil {
			t.Fatal("compiled to nothing")
		}
	})
}
