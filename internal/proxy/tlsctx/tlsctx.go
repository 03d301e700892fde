// Package tlsctx turns the TLS contexts of xDS (DownstreamTlsContext,
// UpstreamTlsContext) into crypto/tls configurations, and keeps Envoy's
// ssl.* stats of the handshakes made with them, for listeners and
// clusters alike.
package tlsctx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"sync/atomic"

	"github.com/meshlens/meshlens/internal/proxy/sds"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/stats"
)

// Certificate verification failures, told apart for Envoy's ssl.* stats.
var errNoPeerCert = errors.New("the peer sent no certificate")

// sanError: the certificate is valid but carries none of the SANs asked
// for.
type sanError struct{ msg string }

func (e *sanError) Error() string { return e.msg }

// SSLStats are Envoy's ssl.* stats of a listener or a cluster.
type SSLStats struct {
	handshake, sessionReused, noCertificate, connectionError *stats.Counter
	failVerifyNoCert, failVerifyError, failVerifySAN         *stats.Counter
}

// NewSSLStats resolves the ssl.* stats under sc (no-ops when sc is nil).
func NewSSLStats(sc *stats.Scope) *SSLStats {
	if sc == nil {
		return &SSLStats{}
	}
	return &SSLStats{
		handshake:        sc.Counter("ssl.handshake"),
		sessionReused:    sc.Counter("ssl.session_reused"),
		noCertificate:    sc.Counter("ssl.no_certificate"),
		connectionError:  sc.Counter("ssl.connection_error"),
		failVerifyNoCert: sc.Counter("ssl.fail_verify_no_cert"),
		failVerifyError:  sc.Counter("ssl.fail_verify_error"),
		failVerifySAN:    sc.Counter("ssl.fail_verify_san"),
	}
}

// LazySSL creates a scope's ssl.* stats on the first TLS handshake.
type LazySSL struct{ p atomic.Pointer[SSLStats] }

// Get returns the stats, resolving them under sc on the first call.
func (l *LazySSL) Get(sc *stats.Scope) *SSLStats {
	if s := l.p.Load(); s != nil {
		return s
	}
	l.p.CompareAndSwap(nil, NewSSLStats(sc))
	return l.p.Load()
}

// Record counts a handshake: a success (a resumed session, and for a
// server a client without a certificate, counted too) or why it failed.
func (s *SSLStats) Record(err error, cs tls.ConnectionState, server bool) {
	var san *sanError
	var verr *tls.CertificateVerificationError
	switch {
	case err == nil:
		s.handshake.Inc()
		if cs.DidResume {
			s.sessionReused.Inc()
		}
		if server && len(cs.PeerCertificates) == 0 {
			s.noCertificate.Inc()
		}
	case errors.As(err, &san):
		s.failVerifySAN.Inc()
	case errors.Is(err, errNoPeerCert):
		s.failVerifyNoCert.Inc()
	case errors.As(err, &verr):
		s.failVerifyError.Inc()
	default:
		s.connectionError.Inc()
	}
}

// ErrSDS says a TLS context names SDS secrets but the runtime has no
// secret store: the filter chain or cluster is not served rather than
// served without the TLS it asks for.
var ErrSDS = errors.New("TLS secrets from SDS need a secret store")

// errSecretMissing: an SDS secret named by a TLS context has not been
// received (yet); the handshake fails and is counted.
type errSecretMissing struct{ name string }

func (e errSecretMissing) Error() string { return "SDS secret " + e.name + " not received" }

// DownstreamConfig builds the server side of a filter chain's TLS from
// files and SDS secrets (read from secrets at every handshake, so a
// renewed certificate or trust bundle applies to the next connection).
// nextProtos is what the chain's codec speaks, used when xDS sets no ALPN.
func DownstreamConfig(t *table.DownstreamTLS, nextProtos []string, secrets *sds.Store) (*tls.Config, error) {
	if (t.SDSCertName != "" || t.SDSCAName != "") && secrets == nil {
		return nil, ErrSDS
	}
	c := &tls.Config{
		NextProtos:   nextProtos,
		MinVersion:   tls.VersionTLS12,
		CipherSuites: modernSuites,
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if len(t.ALPN) > 0 {
		c.NextProtos = t.ALPN
	}
	hasCA := t.CAFile != "" || t.SDSCAName != ""
	if t.CAFile != "" {
		pool, err := loadPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
	}
	if hasCA {
		// A missing certificate is refused below rather than by
		// crypto/tls, so that it can be told from a bad one.
		c.ClientAuth = tls.VerifyClientCertIfGiven
	} else if t.RequireClientCert {
		return nil, errors.New("client certificates required but no CA to verify them")
	}
	require, sans := t.RequireClientCert, t.MatchSANs
	if require || len(sans) > 0 {
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				if require {
					return errNoPeerCert
				}
				return nil // accepted without a certificate
			}
			if len(sans) > 0 {
				return matchSAN(cs.PeerCertificates[0], sans)
			}
			return nil
		}
	}
	if t.SDSCertName == "" && t.SDSCAName == "" {
		return c, nil
	}
	d := &dynamicServer{base: c}
	if t.SDSCertName != "" {
		d.cert = secrets.Ref(t.SDSCertName)
	}
	if t.SDSCAName != "" {
		d.ca = secrets.Ref(t.SDSCAName)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: modernSuites, GetConfigForClient: d.config}, nil
}

// dynamicServer is a server TLS configuration whose certificate or
// client CAs come from SDS: the configuration a handshake uses is
// rebuilt when a secret changes, and shared until then.
type dynamicServer struct {
	base     *tls.Config
	cert, ca *sds.Ref
	cur      atomic.Pointer[dynamicConf]
}

type dynamicConf struct {
	cert, ca *sds.Secret
	conf     *tls.Config
}

func (d *dynamicServer) config(*tls.ClientHelloInfo) (*tls.Config, error) {
	var cert, ca *sds.Secret
	if d.cert != nil {
		if cert = d.cert.Load(); cert == nil {
			return nil, errSecretMissing{d.cert.Name()}
		}
	}
	if d.ca != nil {
		if ca = d.ca.Load(); ca == nil {
			return nil, errSecretMissing{d.ca.Name()}
		}
	}
	if cur := d.cur.Load(); cur != nil && cur.cert == cert && cur.ca == ca {
		return cur.conf, nil
	}
	conf := d.base.Clone()
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert.Cert}
	}
	if ca != nil {
		conf.ClientCAs = ca.Roots
	}
	d.cur.Store(&dynamicConf{cert: cert, ca: ca, conf: conf})
	return conf, nil
}

// modernSuites are the TLS 1.2 cipher suites offered and accepted:
// ECDHE with AEAD ciphers only (TLS 1.3's are always on).
var modernSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// UpstreamConfig builds the client side of a cluster's TLS. As in
// Envoy, a context without a CA does not verify the server; with one, the
// chain is verified against it and the SAN against MatchSANs (not the
// hostname). SDS secrets are read from secrets at every handshake.
func UpstreamConfig(t *table.UpstreamTLS, secrets *sds.Store) (*tls.Config, error) {
	if (t.SDSCertName != "" || t.SDSCAName != "") && secrets == nil {
		return nil, ErrSDS
	}
	c := &tls.Config{ServerName: t.SNI, MinVersion: tls.VersionTLS12, CipherSuites: modernSuites, InsecureSkipVerify: true}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if t.SDSCertName != "" {
		ref := secrets.Ref(t.SDSCertName)
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if s := ref.Load(); s != nil {
				return s.Cert, nil
			}
			return &tls.Certificate{}, nil // none yet: the server decides
		}
	}
	var pool func() (*x509.CertPool, error)
	switch {
	case t.CAFile != "":
		p, err := loadPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		pool = func() (*x509.CertPool, error) { return p, nil }
	case t.SDSCAName != "":
		ref := secrets.Ref(t.SDSCAName)
		pool = func() (*x509.CertPool, error) {
			if s := ref.Load(); s != nil {
				return s.Roots, nil
			}
			return nil, errSecretMissing{ref.Name()}
		}
	}
	if pool != nil {
		sans := t.MatchSANs
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			roots, err := pool()
			if err != nil {
				return err
			}
			certs := make([]*x509.Certificate, 0, len(raw))
			for _, r := range raw {
				cert, err := x509.ParseCertificate(r)
				if err != nil {
					return fmt.Errorf("upstream certificate: %w", err)
				}
				certs = append(certs, cert)
			}
			if len(certs) == 0 {
				return errNoPeerCert
			}
			inter := x509.NewCertPool()
			for _, ic := range certs[1:] {
				inter.AddCert(ic)
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
				return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
			}
			if len(sans) > 0 {
				return matchSAN(certs[0], sans)
			}
			return nil
		}
	}
	return c, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("load CA %s: no PEM certificates", file)
	}
	return pool, nil
}

// matchSAN reports whether the certificate carries one of the exact SANs.
func matchSAN(cert *x509.Certificate, sans []string) error {
	var have []string
	have = append(have, cert.DNSNames...)
	have = append(have, cert.EmailAddresses...)
	for _, ip := range cert.IPAddresses {
		have = append(have, ip.String())
	}
	for _, u := range cert.URIs {
		have = append(have, (*url.URL)(u).String())
	}
	for _, s := range sans {
		if slices.Contains(have, s) {
			return nil
		}
	}
	return &sanError{fmt.Sprintf("certificate SANs %q match none of %q", have, sans)}
}

// LocalURI returns a function that reports the first URI SAN of the
// certificate a server TLS context presents now (its SDS secret's
// current one, or its file's), for x-forwarded-client-cert's By.
func LocalURI(t *table.DownstreamTLS, conf *tls.Config, secrets *sds.Store) func() string {
	if t.SDSCertName != "" && secrets != nil {
		ref := secrets.Ref(t.SDSCertName)
		return func() string {
			if s := ref.Load(); s != nil && len(s.Leaf.URIs) > 0 {
				return s.Leaf.URIs[0].String()
			}
			return ""
		}
	}
	var uri string
	if conf != nil && len(conf.Certificates) > 0 {
		if leaf := conf.Certificates[0].Leaf; leaf != nil && len(leaf.URIs) > 0 {
			uri = leaf.URIs[0].String()
		}
	}
	return func() string { return uri }
}
