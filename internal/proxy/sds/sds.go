// Package sds keeps the TLS secrets a proxy receives over SDS (Envoy's
// envoy.extensions.transport_sockets.tls.v3.Secret on the ADS stream): a
// certificate with its key, or a validation context's trusted CAs. Each
// name is an atomic pointer, so a renewed secret replaces the old one for
// the next handshake while connections already made keep theirs: rotation
// drops no request.
package sds

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
)

// maxSecretBytes bounds one PEM field of a secret.
const maxSecretBytes = 1 << 20

// Secret is one compiled secret: a certificate (Cert, Leaf) or trusted
// CAs (Roots).
type Secret struct {
	Name  string
	Cert  *tls.Certificate
	Leaf  *x509.Certificate
	Roots *x509.CertPool
	// NotAfter is when the certificate (or the first trusted CA to do
	// so) expires.
	NotAfter time.Time
}

// Ref is the current value of one secret name; nil until received.
type Ref struct {
	name string
	p    atomic.Pointer[Secret]
}

// Name is the secret's name.
func (r *Ref) Name() string { return r.name }

// Load returns the current secret, or nil.
func (r *Ref) Load() *Secret { return r.p.Load() }

// Store holds the secrets by name. It is safe for concurrent use.
type Store struct {
	mu   sync.Mutex
	refs map[string]*Ref
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{refs: map[string]*Ref{}} }

// Ref returns the reference of a name, creating it (empty) if needed.
func (s *Store) Ref(name string) *Ref {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.refs[name]
	if r == nil {
		r = &Ref{name: name}
		s.refs[name] = r
	}
	return r
}

// Update compiles every secret and then swaps them in; a secret that
// does not compile refuses the whole update (nothing changes).
func (s *Store) Update(secrets map[string]*tlsv3.Secret) error {
	compiled := make(map[string]*Secret, len(secrets))
	for _, name := range slices.Sorted(maps.Keys(secrets)) {
		c, err := Compile(secrets[name])
		if err != nil {
			return err
		}
		compiled[name] = c
	}
	for name, c := range compiled {
		s.Ref(name).p.Store(c)
	}
	return nil
}

// Secrets lists the secrets received, by name.
func (s *Store) Secrets() []*Secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Secret
	for _, n := range slices.Sorted(maps.Keys(s.refs)) {
		if v := s.refs[n].Load(); v != nil {
			out = append(out, v)
		}
	}
	return out
}

// Compile checks and parses one secret.
func Compile(sec *tlsv3.Secret) (*Secret, error) {
	name := sec.GetName()
	out := &Secret{Name: name}
	switch t := sec.GetType().(type) {
	case *tlsv3.Secret_TlsCertificate:
		chain, err := inline(t.TlsCertificate.GetCertificateChain())
		if err != nil {
			return nil, fmt.Errorf("secret %s: certificate_chain: %w", name, err)
		}
		key, err := inline(t.TlsCertificate.GetPrivateKey())
		if err != nil {
			return nil, fmt.Errorf("secret %s: private_key: %w", name, err)
		}
		cert, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		cert.Leaf = leaf
		out.Cert, out.Leaf, out.NotAfter = &cert, leaf, leaf.NotAfter
	case *tlsv3.Secret_ValidationContext:
		ca, err := inline(t.ValidationContext.GetTrustedCa())
		if err != nil {
			return nil, fmt.Errorf("secret %s: trusted_ca: %w", name, err)
		}
		pool := x509.NewCertPool()
		rest := ca
		for len(rest) > 0 {
			var c *x509.Certificate
			c, rest, err = nextCert(rest)
			if err != nil {
				return nil, fmt.Errorf("secret %s: trusted_ca: %w", name, err)
			}
			if c == nil {
				break
			}
			pool.AddCert(c)
			if out.NotAfter.IsZero() || c.NotAfter.Before(out.NotAfter) {
				out.NotAfter = c.NotAfter
			}
		}
		if out.NotAfter.IsZero() {
			return nil, fmt.Errorf("secret %s: trusted_ca: no PEM certificates", name)
		}
		out.Roots = pool
	default:
		return nil, fmt.Errorf("secret %s: only tls_certificate and validation_context secrets are supported", name)
	}
	return out, nil
}

// inline reads an inline data source; a secret's key material never
// names a file.
func inline(d *corev3.DataSource) ([]byte, error) {
	var b []byte
	switch s := d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		b = s.InlineBytes
	case *corev3.DataSource_InlineString:
		b = []byte(s.InlineString)
	case nil:
		return nil, errors.New("missing")
	default:
		return nil, errors.New("only inline_bytes and inline_string are supported")
	}
	if len(b) > maxSecretBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxSecretBytes)
	}
	return b, nil
}
