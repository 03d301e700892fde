package meshca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"sync"
	"time"
)

// DefaultValidity is how long an issued identity is valid.
const DefaultValidity = 24 * time.Hour

// MinValidity is the shortest validity accepted (tests use seconds).
const MinValidity = 10 * time.Second

// rootValidity is how long a generated root is valid.
const rootValidity = 10 * 365 * 24 * time.Hour

// backdate is how far before issuance an identity's validity starts, for
// clocks that run a little behind; bounded by a tenth of the validity.
const backdate = time.Minute

// Store keeps the sealed roots. It is the control plane's durable store.
type Store interface {
	// CASecret returns what PutCASecret stored for name, or nil.
	CASecret(name string) ([]byte, error)
	// PutCASecret stores v under name, durably.
	PutCASecret(name string, v []byte) error
}

// RootFiles names a user's own root for a mesh.
type RootFiles struct{ CertFile, KeyFile string }

// Options configure an Authority.
type Options struct {
	// Key seals the generated roots' private keys in Store. Required.
	Key *Key
	// Store keeps generated roots. Required.
	Store Store
	// Validity of issued identities (default DefaultValidity); they are
	// renewed at half of it.
	Validity time.Duration
	// Roots are users' own roots by mesh name; other meshes get a
	// generated root.
	Roots map[string]RootFiles
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives issuance events (default slog.Default()).
	Log *slog.Logger
}

// Authority issues identities from one root per mesh. It is safe for
// concurrent use.
type Authority struct {
	opts Options

	mu     sync.Mutex
	roots  map[string]*root
	issued map[ID]*Identity
}

type root struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// Identity is an issued certificate with its key and the mesh's root.
type Identity struct {
	ID        ID
	CertPEM   []byte // the leaf certificate
	KeyPEM    []byte // its private key, PKCS#8
	RootPEM   []byte // the mesh's root, to verify peers
	NotBefore time.Time
	NotAfter  time.Time
	// RenewAt is half-way through the validity: from then on Identity
	// issues a new one.
	RenewAt time.Time
}

// New checks opts and loads the users' roots (generated roots are loaded
// or created on first use).
func New(opts Options) (*Authority, error) {
	if opts.Key == nil {
		return nil, ErrNoKey
	}
	if opts.Store == nil {
		return nil, errors.New("meshca: no store")
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	if opts.Validity < MinValidity {
		return nil, fmt.Errorf("ca validity %s: shorter than %s", opts.Validity, MinValidity)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	a := &Authority{opts: opts, roots: map[string]*root{}, issued: map[ID]*Identity{}}
	for mesh, rf := range opts.Roots {
		cert, key, err := LoadRootFiles(rf.CertFile, rf.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mesh %s: %w", mesh, err)
		}
		a.roots[mesh] = &root{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}
		opts.Log.Info("mesh CA: using the given root", "mesh", mesh, "subject", cert.Subject.String(), "not_after", cert.NotAfter)
	}
	return a, nil
}

// Validity is how long issued identities are valid.
func (a *Authority) Validity() time.Duration { return a.opts.Validity }

// RootPEM returns the root of a mesh, creating it on first use.
func (a *Authority) RootPEM(mesh string) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, err := a.rootLocked(mesh)
	if err != nil {
		return nil, err
	}
	return r.pem, nil
}

// Identity returns the current identity of a virtual node or gateway,
// issuing a new one when there is none or the last is past RenewAt.
func (a *Authority) Identity(mesh, kind, name string) (*Identity, error) {
	id := IDFor(mesh, kind, name)
	if _, err := ParseID(id.String()); err != nil {
		return nil, fmt.Errorf("mesh CA: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Now()
	if cur := a.issued[id]; cur != nil && now.Before(cur.RenewAt) {
		return cur, nil
	}
	r, err := a.rootLocked(mesh)
	if err != nil {
		return nil, err
	}
	ident, err := a.issue(r, id, now)
	if err != nil {
		return nil, fmt.Errorf("mesh CA: issue %s: %w", id, err)
	}
	a.issued[id] = ident
	a.opts.Log.Info("mesh CA: issued", "id", id.String(), "not_after", ident.NotAfter, "renew_at", ident.RenewAt)
	return ident, nil
}

func (a *Authority) issue(r *root, id ID, now time.Time) (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(id.String())
	if err != nil {
		return nil, err
	}
	v := a.opts.Validity
	notBefore := now.Add(-min(backdate, v/10))
	notAfter := now.Add(v)
	if notAfter.After(r.cert.NotAfter) {
		notAfter = r.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{id.TrustDomain}},
		URIs:                  []*url.URL{u},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.cert, key.Public(), r.key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Identity{
		ID:        id,
		CertPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		RootPEM:   r.pem,
		NotBefore: notBefore,
		NotAfter:  notAfter,
		RenewAt:   now.Add(notAfter.Sub(now) / 2),
	}, nil
}

// sealedRoot is a generated root as stored: its certificate and its
// private key sealed under the key-encryption key.
type sealedRoot struct {
	Cert []byte `json:"cert"` // PEM
	Key  []byte `json:"key"`  // sealed PKCS#8
}

func storeName(mesh string) string { return "mesh/" + mesh + "/root" }

// rootLocked returns the mesh's root: the user's, the stored one, or a
// new one that it stores.
func (a *Authority) rootLocked(mesh string) (*root, error) {
	if r := a.roots[mesh]; r != nil {
		return r, nil
	}
	name := storeName(mesh)
	b, err := a.opts.Store.CASecret(name)
	if err != nil {
		return nil, fmt.Errorf("mesh CA %s: read root: %w", mesh, err)
	}
	var r *root
	if b != nil {
		if r, err = a.unseal(mesh, b); err != nil {
			return nil, fmt.Errorf("mesh CA %s: %w", mesh, err)
		}
	} else {
		if r, b, err = a.generate(mesh); err != nil {
			return nil, fmt.Errorf("mesh CA %s: generate root: %w", mesh, err)
		}
		if err := a.opts.Store.PutCASecret(name, b); err != nil {
			return nil, fmt.Errorf("mesh CA %s: store root: %w", mesh, err)
		}
		// With a shared store another replica may have stored its root
		// first: the stored one is the mesh's.
		stored, err := a.opts.Store.CASecret(name)
		if err != nil {
			return nil, fmt.Errorf("mesh CA %s: read root back: %w", mesh, err)
		}
		if stored != nil && string(stored) != string(b) {
			if r, err = a.unseal(mesh, stored); err != nil {
				return nil, fmt.Errorf("mesh CA %s: %w", mesh, err)
			}
		} else {
			a.opts.Log.Info("mesh CA: generated a root", "mesh", mesh, "not_after", r.cert.NotAfter)
		}
	}
	a.roots[mesh] = r
	return r, nil
}

func (a *Authority) unseal(mesh string, b []byte) (*root, error) {
	var s sealedRoot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("stored root: %w", err)
	}
	kder, err := a.opts.Key.open(s.Key, mesh)
	if err != nil {
		return nil, err
	}
	cert, key, err := ParseRoot(s.Cert, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	if err != nil {
		return nil, fmt.Errorf("stored root: %w", err)
	}
	return &root{cert: cert, key: key, pem: s.Cert}, nil
}

func (a *Authority) generate(mesh string) (*root, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	td, err := url.Parse(TrustDomainURI(TrustDomainOf(mesh)))
	if err != nil {
		return nil, nil, err
	}
	now := a.opts.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"meshlens"}, CommonName: "meshlens mesh CA " + mesh},
		URIs:                  []*url.URL{td},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(rootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := a.opts.Key.seal(kder, mesh)
	if err != nil {
		return nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	b, err := json.Marshal(sealedRoot{Cert: certPEM, Key: sealed})
	if err != nil {
		return nil, nil, err
	}
	return &root{cert: cert, key: key, pem: certPEM}, b, nil
}

// VerifyClient checks a client certificate chain (DER, leaf first)
// against the root of the mesh its SPIFFE id names, and returns the id.
// Only meshes whose root exists are considered: a certificate naming an
// unknown mesh creates nothing.
func (a *Authority) VerifyClient(raw [][]byte, now time.Time) (ID, error) {
	if len(raw) == 0 {
		return ID{}, errors.New("no client certificate")
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return ID{}, fmt.Errorf("client certificate: %w", err)
	}
	if len(leaf.URIs) != 1 {
		return ID{}, errors.New("client certificate: want exactly one URI SAN (a mesh CA identity)")
	}
	id, err := ParseID(leaf.URIs[0].String())
	if err != nil {
		return ID{}, fmt.Errorf("client certificate: %w", err)
	}
	a.mu.Lock()
	r, err := a.existingRootLocked(id.TrustDomain)
	a.mu.Unlock()
	if err != nil {
		return ID{}, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(r.cert)
	inter := x509.NewCertPool()
	for _, b := range raw[1:] {
		if c, err := x509.ParseCertificate(b); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return ID{}, fmt.Errorf("client certificate %s: %w", id, err)
	}
	return id, nil
}

// existingRootLocked is rootLocked without generating a root.
func (a *Authority) existingRootLocked(mesh string) (*root, error) {
	if r := a.roots[mesh]; r != nil {
		return r, nil
	}
	b, err := a.opts.Store.CASecret(storeName(mesh))
	if err != nil {
		return nil, fmt.Errorf("mesh CA %s: read root: %w", mesh, err)
	}
	if b == nil {
		return nil, fmt.Errorf("mesh CA: no root for mesh %q", mesh)
	}
	r, err := a.unseal(mesh, b)
	if err != nil {
		return nil, fmt.Errorf("mesh CA %s: %w", mesh, err)
	}
	a.roots[mesh] = r
	return r, nil
}
