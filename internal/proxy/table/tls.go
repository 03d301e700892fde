package table

import (
	"errors"
	"fmt"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
)

// tlsCommon is what a downstream and an upstream TLS context share.
type tlsCommon struct {
	certFile, keyFile string
	caFile            string
	sans              []string
	sdsCert, sdsCA    string
	alpn              []string
}

func downstreamTLS(ts *corev3.TransportSocket) (*DownstreamTLS, error) {
	var ctx tlsv3.DownstreamTlsContext
	if err := unpack(ts.GetTypedConfig(), &ctx); err != nil {
		return nil, err
	}
	cm, err := commonTLS(ctx.GetCommonTlsContext())
	if err != nil {
		return nil, fmt.Errorf("common_tls_context: %w", err)
	}
	if cm.certFile == "" && cm.sdsCert == "" {
		return nil, errors.New("common_tls_context: a server certificate (tls_certificates or tls_certificate_sds_secret_configs) is required")
	}
	return &DownstreamTLS{
		CertFile: cm.certFile, KeyFile: cm.keyFile, CAFile: cm.caFile,
		RequireClientCert: ctx.GetRequireClientCertificate().GetValue(),
		MatchSANs:         cm.sans, SDSCertName: cm.sdsCert, SDSCAName: cm.sdsCA, ALPN: cm.alpn,
	}, nil
}

func upstreamTLS(ts *corev3.TransportSocket) (*UpstreamTLS, error) {
	var ctx tlsv3.UpstreamTlsContext
	if err := unpack(ts.GetTypedConfig(), &ctx); err != nil {
		return nil, err
	}
	cm, err := commonTLS(ctx.GetCommonTlsContext())
	if err != nil {
		return nil, fmt.Errorf("common_tls_context: %w", err)
	}
	return &UpstreamTLS{
		CertFile: cm.certFile, KeyFile: cm.keyFile, CAFile: cm.caFile, MatchSANs: cm.sans,
		SNI: ctx.GetSni(), ALPN: cm.alpn, SDSCertName: cm.sdsCert, SDSCAName: cm.sdsCA,
	}, nil
}

// commonTLS reads certificates, trust and SAN checks. Anything that would
// loosen or change verification if ignored (pinning, CRLs, custom
// validators, certificate providers, non-exact SAN matchers) is refused.
func commonTLS(c *tlsv3.CommonTlsContext) (tlsCommon, error) {
	var out tlsCommon
	if c == nil {
		return out, nil
	}
	if certs := c.GetTlsCertificates(); len(certs) > 0 {
		cert := certs[0]
		var err error
		if out.certFile, err = fileSource(cert.GetCertificateChain()); err != nil {
			return out, fmt.Errorf("tls_certificates[0].certificate_chain: %w", err)
		}
		if out.keyFile, err = fileSource(cert.GetPrivateKey()); err != nil {
			return out, fmt.Errorf("tls_certificates[0].private_key: %w", err)
		}
	}
	if sds := c.GetTlsCertificateSdsSecretConfigs(); len(sds) > 0 {
		out.sdsCert = sds[0].GetName()
	}
	switch {
	case c.GetTlsCertificateProviderInstance() != nil, c.GetTlsCertificateCertificateProvider() != nil,
		c.GetTlsCertificateCertificateProviderInstance() != nil:
		return out, errors.New("certificate providers " + errNotSupported + "; use files or SDS")
	case c.GetCustomHandshaker() != nil:
		return out, errors.New("custom_handshaker " + errNotSupported)
	case c.GetCustomTlsCertificateSelector() != nil:
		return out, errors.New("custom_tls_certificate_selector " + errNotSupported)
	}
	out.alpn = c.GetAlpnProtocols()
	switch v := c.GetValidationContextType().(type) {
	case nil:
	case *tlsv3.CommonTlsContext_ValidationContext:
		if err := validationContext(v.ValidationContext, &out); err != nil {
			return out, fmt.Errorf("validation_context: %w", err)
		}
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		out.sdsCA = v.ValidationContextSdsSecretConfig.GetName()
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		if err := validationContext(v.CombinedValidationContext.GetDefaultValidationContext(), &out); err != nil {
			return out, fmt.Errorf("combined_validation_context.default_validation_context: %w", err)
		}
		out.sdsCA = v.CombinedValidationContext.GetValidationContextSdsSecretConfig().GetName()
	default:
		return out, errors.New("validation context certificate providers " + errNotSupported)
	}
	return out, nil
}

func validationContext(v *tlsv3.CertificateValidationContext, out *tlsCommon) error {
	if v == nil {
		return nil
	}
	switch {
	case len(v.GetVerifyCertificateSpki()) > 0:
		return errors.New("verify_certificate_spki " + errNotSupported)
	case len(v.GetVerifyCertificateHash()) > 0:
		return errors.New("verify_certificate_hash " + errNotSupported)
	case v.GetCrl() != nil:
		return errors.New("crl " + errNotSupported)
	case v.GetCustomValidatorConfig() != nil:
		return errors.New("custom_validator_config " + errNotSupported)
	case v.GetCaCertificateProviderInstance() != nil:
		return errors.New("ca_certificate_provider_instance " + errNotSupported)
	case v.GetTrustChainVerification() != tlsv3.CertificateValidationContext_VERIFY_TRUST_CHAIN:
		return errors.New("trust_chain_verification ACCEPT_UNTRUSTED " + errNotSupported)
	case v.GetAllowExpiredCertificate():
		return errors.New("allow_expired_certificate " + errNotSupported)
	}
	if ca := v.GetTrustedCa(); ca != nil {
		f, err := fileSource(ca)
		if err != nil {
			return fmt.Errorf("trusted_ca: %w", err)
		}
		out.caFile = f
	}
	for i, m := range v.GetMatchTypedSubjectAltNames() {
		s, err := exactOnly(m.GetMatcher())
		if err != nil {
			return fmt.Errorf("match_typed_subject_alt_names[%d].matcher: %w", i, err)
		}
		out.sans = append(out.sans, s)
	}
	for i, m := range v.GetMatchSubjectAltNames() {
		s, err := exactOnly(m)
		if err != nil {
			return fmt.Errorf("match_subject_alt_names[%d]: %w", i, err)
		}
		out.sans = append(out.sans, s)
	}
	return nil
}

// exactOnly accepts an exact, case-sensitive SAN matcher.
func exactOnly(m *matcherv3.StringMatcher) (string, error) {
	e, ok := m.GetMatchPattern().(*matcherv3.StringMatcher_Exact)
	if !ok || m.GetIgnoreCase() {
		return "", errors.New("only exact, case-sensitive SAN matchers are supported")
	}
	return e.Exact, nil
}

// fileSource reads a DataSource that names a file: the proxy loads
// certificates itself, and inline key material in xDS is refused rather
// than written to disk.
func fileSource(d *corev3.DataSource) (string, error) {
	if d == nil {
		return "", nil
	}
	f, ok := d.GetSpecifier().(*corev3.DataSource_Filename)
	if !ok {
		return "", errors.New("only filename data sources are supported")
	}
	return f.Filename, nil
}
