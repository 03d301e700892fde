package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"

	"github.com/meshlens/meshlens/internal/proxy/table"
)

// errSDS says a TLS context names SDS secrets, which this runtime cannot
// fetch yet: the filter chain or cluster is not served rather than served
// without the TLS it asks for.
var errSDS = errors.New("TLS secrets from SDS are not supported yet")

// downstreamTLSConfig builds the server side of a filter chain's TLS from
// files. nextProtos is what the chain's codec speaks, used when xDS sets
// no ALPN.
func downstreamTLSConfig(t *table.DownstreamTLS, nextProtos []string) (*tls.Config, error) {
	if t.SDSCertName != "" || t.SDSCAName != "" {
		return nil, errSDS
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
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if t.RequireClientCert {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	} else if t.RequireClientCert {
		return nil, errors.New("client certificates required but no CA to verify them")
	}
	if len(t.MatchSANs) > 0 {
		sans := t.MatchSANs
		c.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 {
				return nil // no client certificate: accepted unless required (ClientAuth)
			}
			return matchSAN(chains[0][0], sans)
		}
	}
	return c, nil
}

// upstreamTLSConfig builds the client side of a cluster's TLS. As in
// Envoy, a context without a CA does not verify the server; with one, the
// chain is verified against it and the SAN against MatchSANs (not the
// hostname).
func upstreamTLSConfig(t *table.UpstreamTLS) (*tls.Config, error) {
	if t.SDSCertName != "" || t.SDSCAName != "" {
		return nil, errSDS
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
				return errors.New("upstream sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range certs[1:] {
				inter.AddCert(ic)
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err != nil {
				return fmt.Errorf("upstream certificate: %w", err)
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
	return fmt.Errorf("certificate SANs %q match none of %q", have, sans)
}
