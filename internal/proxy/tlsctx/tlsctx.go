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

// ErrSDS says a TLS context names SDS secrets, which this runtime cannot
// fetch yet: the filter chain or cluster is not served rather than served
// without the TLS it asks for.
var ErrSDS = errors.New("TLS secrets from SDS are not supported yet")

// DownstreamConfig builds the server side of a filter chain's TLS from
// files. nextProtos is what the chain's codec speaks, used when xDS sets
// no ALPN.
func DownstreamConfig(t *table.DownstreamTLS, nextProtos []string) (*tls.Config, error) {
	if t.SDSCertName != "" || t.SDSCAName != "" {
		return nil, ErrSDS
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	c := &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   nextProtos,
		MinVersion:   tls.VersionTLS12,
	}
	if len(t.ALPN) > 0 {
		c.NextProtos = t.ALPN
	}
	if t.CAFile != "" {
		pool, err := loadPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
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
	return c, nil
}

// UpstreamConfig builds the client side of a cluster's TLS. As in
// Envoy, a context without a CA does not verify the server; with one, the
// chain is verified against it and the SAN against MatchSANs (not the
// hostname).
func UpstreamConfig(t *table.UpstreamTLS) (*tls.Config, error) {
	if t.SDSCertName != "" || t.SDSCAName != "" {
		return nil, ErrSDS
	}
	c := &tls.Config{ServerName: t.SNI, MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if t.CAFile != "" {
		pool, err := loadPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		sans := t.MatchSANs
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
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
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err != nil {
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
