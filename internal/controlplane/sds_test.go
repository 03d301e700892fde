package controlplane

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshlens/meshlens/internal/auth"
	"github.com/meshlens/meshlens/internal/xds"
)

// billingNode is a virtual node whose listener names an SDS secret of its
// own: a name only its view holds.
const billingNode = `
---
kind: VirtualNode
mesh: shop
name: billing
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      tls:
        mode: STRICT
        certificate:
          sds: {secretName: billing-cert}
  serviceDiscovery: {awsCloudMap: {namespaceName: shop.local, serviceName: billing}}
`

// TestStandaloneSDSServesTheNodesOwnSecrets: a data plane that asks the
// standalone SecretDiscoveryService for its secrets, one stream per
// secret name as Envoy does with a gRPC SDS config source, gets exactly
// the secret it named: its own identity from the mesh CA (URI SAN
// spiffe://shop/virtualNode/checkout, chaining to the root served as the
// trust secret). A name only another node's view holds is never served
// to it, a stream claiming another node is refused, and so is a stream
// with a token that is not valid.
func TestStandaloneSDSServesTheNodesOwnSecrets(t *testing.T) {
	t.Parallel()
	tokens := tokenStore(t)
	write := newToken(t, tokens, auth.Spec{Role: auth.RoleWrite})
	checkoutToken := newToken(t, tokens, auth.Spec{Mesh: "shop", Node: "checkout"})
	cp := startCP(t, Config{Auth: tokens, CA: CAConfig{GenerateKey: true}})
	cp.api.Token = write
	mesh, err := os.ReadFile("../../examples/appmesh-acm-tls.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cp.apply(t, string(mesh)+billingNode)

	conn, err := grpc.NewClient(cp.s.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := secretv3.NewSecretDiscoveryServiceClient(conn)
	// ask opens a stream with token as node, asks for names and returns
	// the stream.
	ask := func(ctx context.Context, token, node string, names []string) (secretv3.SecretDiscoveryService_StreamSecretsClient, error) {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		stream, err := client.StreamSecrets(ctx)
		if err != nil {
			return nil, err
		}
		req := &discovery.DiscoveryRequest{
			Node:          &corev3.Node{Id: "mesh/shop/virtualNode/" + node, Cluster: node, UserAgentName: "envoy"},
			TypeUrl:       resource.SecretType,
			ResourceNames: names,
		}
		return stream, stream.Send(req)
	}
	secretsOf := func(r *discovery.DiscoveryResponse) map[string]*tlsv3.Secret {
		t.Helper()
		out := map[string]*tlsv3.Secret{}
		for _, a := range r.GetResources() {
			s := &tlsv3.Secret{}
			if err := a.UnmarshalTo(s); err != nil {
				t.Fatalf("resource %s: %v", a.GetTypeUrl(), err)
			}
			out[s.GetName()] = s
		}
		return out
	}
	// fetch asks for one secret on a stream of its own, as Envoy does,
	// and returns the only secret of the first response.
	fetch := func(name string) *tlsv3.Secret {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		stream, err := ask(ctx, checkoutToken, "checkout", []string{name})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: no response: %v", name, err)
		}
		got := secretsOf(r)
		if len(got) != 1 || got[name] == nil {
			t.Fatalf("asked for %s, got %d secrets: %v", name, len(got), got)
		}
		return got[name]
	}

	ident := fetch(xds.MeshCAIdentitySecret).GetTlsCertificate()
	trust := fetch(xds.MeshCATrustSecret).GetValidationContext()
	if ident == nil || trust == nil {
		t.Fatalf("identity %v, trust %v: want a TLS certificate and a validation context", ident, trust)
	}
	leaf := parsePEMCert(t, ident.GetCertificateChain().GetInlineBytes())
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://shop/virtualNode/checkout" {
		t.Errorf("certificate URI SANs %v, want spiffe://shop/virtualNode/checkout", leaf.URIs)
	}
	if len(ident.GetPrivateKey().GetInlineBytes()) == 0 {
		t.Error("the identity has no private key")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(trust.GetTrustedCa().GetInlineBytes()) {
		t.Fatalf("trusted CA is not PEM: %q", trust.GetTrustedCa().GetInlineBytes())
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("the identity does not chain to the served trust root: %v", err)
	}

	// A name only billing's view holds: checkout's stream is never served
	// it; asking for its identity as well (with the ACK of the first
	// response, as Envoy does), it gets its identity alone.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	stream, err := ask(ctx, checkoutToken, "checkout", []string{"billing-cert"})
	if err != nil {
		t.Fatal(err)
	}
	asked := false
	for {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("no response with checkout's identity: %v", err)
		}
		got := secretsOf(r)
		if got["billing-cert"] != nil {
			t.Fatalf("checkout was served billing's secret billing-cert")
		}
		if got[xds.MeshCAIdentitySecret] != nil {
			break
		}
		if !asked {
			asked = true
			if err := stream.Send(&discovery.DiscoveryRequest{
				Node:          &corev3.Node{Id: "mesh/shop/virtualNode/checkout", Cluster: "checkout", UserAgentName: "envoy"},
				TypeUrl:       resource.SecretType,
				ResourceNames: []string{"billing-cert", xds.MeshCAIdentitySecret},
				VersionInfo:   r.GetVersionInfo(),
				ResponseNonce: r.GetNonce(),
			}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Claiming another node, or with a token that is not valid: refused.
	for _, tc := range []struct {
		name, token, node string
		want              codes.Code
	}{
		{"another node", checkoutToken, "billing", codes.PermissionDenied},
		{"wrong token", "mlt_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "checkout", codes.Unauthenticated},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		stream, err := ask(ctx, tc.token, tc.node, []string{"billing-cert"})
		if err == nil || errors.Is(err, io.EOF) && stream != nil {
			// A stream the server ended fails Send with io.EOF: Recv
			// returns its status.
			var r *discovery.DiscoveryResponse
			r, err = stream.Recv()
			if err == nil {
				t.Errorf("%s: served %v", tc.name, secretsOf(r))
			}
		}
		if status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		cancel()
	}
}

func parsePEMCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("certificate chain is not PEM: %q", b)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
