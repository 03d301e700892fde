package sidecar

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meshlens/meshlens/internal/apiclient"
)

// controlPlaneAuth is how the sidecar proves itself to the control plane:
// its bootstrap token, and the CA its TLS certificate is checked against.
type controlPlaneAuth struct {
	token  string
	caFile string
	// identity, when set, returns the proxy's mesh CA identity once it
	// has one: the TLS client certificate of later connections to the
	// control plane (see meshlens server --xds-client-certs).
	identity func() *tls.Certificate
}

// maxTokenFile bounds the token file read.
const maxTokenFile = 4096

// authFromConfig reads the token from --token-file, --token or
// MESHLENS_TOKEN, in that order.
func authFromConfig(cfg Config) (controlPlaneAuth, error) {
	a := controlPlaneAuth{token: cfg.Token, caFile: cfg.CAFile}
	if cfg.TokenFile != "" {
		data, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return a, configf("--token-file: %v", err)
		}
		if len(data) > maxTokenFile {
			return a, configf("--token-file %s: larger than %d bytes; want one token", cfg.TokenFile, maxTokenFile)
		}
		a.token = string(data)
	}
	if a.token == "" && cfg.Getenv != nil {
		a.token = cfg.Getenv("MESHLENS_TOKEN")
	}
	a.token = strings.TrimSpace(a.token)
	if strings.ContainsAny(a.token, " \t\r\n") {
		return a, configf("bootstrap token: has white space inside; want one token (mlt_...)")
	}
	if a.caFile != "" {
		if _, err := apiclient.TLSConfig(a.caFile); err != nil {
			return a, configf("--ca-file: %v", err)
		}
	}
	return a, nil
}

// dialOptions are the gRPC options for the control plane's xDS address.
func (a controlPlaneAuth) dialOptions() []grpc.DialOption {
	var opts []grpc.DialOption
	if a.caFile != "" {
		cfg, _ := apiclient.TLSConfig(a.caFile) // checked by authFromConfig
		if a.identity != nil {
			id := a.identity
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if c := id(); c != nil {
					return c, nil
				}
				return &tls.Certificate{}, nil // bootstrap: the token speaks
			}
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	if a.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: a.token, tls: a.caFile != ""}))
	}
	return opts
}

// apiClient is the REST client for registrations.
func (a controlPlaneAuth) apiClient(server string) (*apiclient.Client, error) {
	var hc *http.Client
	if a.caFile != "" {
		var err error
		if hc, err = apiclient.HTTPClient(a.caFile); err != nil {
			return nil, err
		}
	}
	c, err := apiclient.New(server, hc)
	if err != nil {
		return nil, err
	}
	c.Token = a.token
	return c, nil
}

// bearer sends the token as authorization metadata on every call. It is
// sent over plaintext too (a loopback control plane, or a lab): with
// --ca-file it travels inside TLS.
type bearer struct {
	token string
	tls   bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.tls }

var _ credentials.PerRPCCredentials = bearer{}

// String hides the token from anything that prints the credentials.
func (b bearer) String() string { return fmt.Sprintf("bearer(%d bytes)", len(b.token)) }
