package xds

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"

	"github.com/meshlens/meshlens/internal/meshca"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// The SDS secrets the mesh CA stands behind, as the translation names
// them for ACM certificates and trust (see docs/security.md). Any other
// name a TLS context gives also resolves to the mesh CA: a certificate to
// the node's identity, a validation context to the mesh root, as App
// Mesh's SDS secrets resolved through a SPIRE agent.
const (
	MeshCAIdentitySecret = "meshlens/mesh-ca/identity"
	MeshCATrustSecret    = "meshlens/mesh-ca/trust"
)

// SecretSource is the mesh CA as the server uses it.
type SecretSource interface {
	// Identity returns the current identity of a virtual node or
	// gateway, renewed at RenewAt.
	Identity(mesh, kind, name string) (*meshca.Identity, error)
}

// RegisterSDS adds the standalone secret discovery service to g: a data
// plane that asks for its secrets on a stream of their own gets the same
// secrets as on its ADS stream. Envoy asks for each secret of a gRPC SDS
// config source on a stream of its own and takes exactly one secret per
// response, so these streams are answered by name, from a cache not in
// ADS mode (which would wait for a request naming every secret of the
// view).
func (s *Server) RegisterSDS(g *grpc.Server) {
	secretservice.RegisterSecretDiscoveryServiceServer(g, s.sdsServer)
}

// sdsCallbacks are the server's callbacks for the standalone secret
// discovery service's own go-control-plane server, whose stream ids
// count from 1 as the main server's do: they are made negative so the
// two never name the same stream.
type sdsCallbacks struct{ *Server }

// The standalone service's ids are the main server's, negated: delta
// ones offset by deltaStreamBase as the main server's are.
func sdsID(id int64) int64      { return -id }
func sdsDeltaID(id int64) int64 { return -deltaStreamID(id) }

func (c sdsCallbacks) OnStreamOpen(ctx context.Context, id int64, t string) error {
	return c.Server.OnStreamOpen(ctx, sdsID(id), t)
}

func (c sdsCallbacks) OnStreamClosed(id int64, n *corev3.Node) { c.Server.OnStreamClosed(sdsID(id), n) }

func (c sdsCallbacks) OnStreamRequest(id int64, r *discovery.DiscoveryRequest) error {
	return c.Server.OnStreamRequest(sdsID(id), r)
}

func (c sdsCallbacks) OnStreamResponse(ctx context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	c.Server.OnStreamResponse(ctx, sdsID(id), req, resp)
}

func (c sdsCallbacks) OnDeltaStreamOpen(ctx context.Context, id int64, t string) error {
	c.Server.openStream(ctx, sdsDeltaID(id), true)
	return nil
}

func (c sdsCallbacks) OnDeltaStreamClosed(id int64, n *corev3.Node) {
	c.Server.closeStream(sdsDeltaID(id))
}

func (c sdsCallbacks) OnStreamDeltaRequest(id int64, r *discovery.DeltaDiscoveryRequest) error {
	return c.Server.onDeltaRequest(sdsDeltaID(id), r)
}

func (c sdsCallbacks) OnStreamDeltaResponse(id int64, req *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	c.Server.recordSent(sdsDeltaID(id), resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
}

// secretRefs lists the SDS secrets a view's TLS contexts name: the
// certificates and the validation contexts.
func secretRefs(v *View) (certs, trusts []string) {
	cs, ts := map[string]bool{}, map[string]bool{}
	common := func(c *tlsv3.CommonTlsContext) {
		for _, s := range c.GetTlsCertificateSdsSecretConfigs() {
			cs[s.GetName()] = true
		}
		if n := c.GetValidationContextSdsSecretConfig().GetName(); n != "" {
			ts[n] = true
		}
		if n := c.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName(); n != "" {
			ts[n] = true
		}
	}
	socket := func(t *corev3.TransportSocket, down bool) {
		a := t.GetTypedConfig()
		if a == nil {
			return
		}
		if down {
			var d tlsv3.DownstreamTlsContext
			if a.MessageIs(&d) && a.UnmarshalTo(&d) == nil {
				common(d.GetCommonTlsContext())
			}
			return
		}
		var u tlsv3.UpstreamTlsContext
		if a.MessageIs(&u) && a.UnmarshalTo(&u) == nil {
			common(u.GetCommonTlsContext())
		}
	}
	for _, l := range v.Listeners {
		for _, fc := range l.GetFilterChains() {
			socket(fc.GetTransportSocket(), true)
		}
		socket(l.GetDefaultFilterChain().GetTransportSocket(), true)
	}
	for _, c := range v.Clusters {
		socket(c.GetTransportSocket(), false)
	}
	for n := range cs {
		delete(ts, n) // a secret has one type: a name used for both is the certificate
	}
	return slices.Sorted(maps.Keys(cs)), slices.Sorted(maps.Keys(ts))
}

// addSecrets gives a view the secrets its TLS contexts name, from the
// mesh CA: the node's own identity under every certificate name and the
// mesh root under every validation name. Only the node's own identity is
// ever put in its view. It returns when the identity is to be renewed
// (zero when the view names no secret).
func (s *Server) addSecrets(id nodeid.ID, v *View) (time.Time, error) {
	// A view rebuilt from an earlier one (withEndpoints) starts from a
	// copy of its secrets: they are made afresh, never appended to.
	v.Secrets = nil
	if s.opts.Secrets == nil || v.Missing {
		return time.Time{}, nil
	}
	certs, trusts := secretRefs(v)
	if len(certs) == 0 && len(trusts) == 0 {
		return time.Time{}, nil
	}
	ident, err := s.opts.Secrets.Identity(id.Mesh, string(id.Kind), id.Name)
	if err != nil {
		return time.Time{}, fmt.Errorf("secrets of %s: %w", id, err)
	}
	for _, n := range certs {
		v.Secrets = append(v.Secrets, &tlsv3.Secret{Name: n, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inlineBytes(ident.CertPEM),
			PrivateKey:       inlineBytes(ident.KeyPEM),
		}}})
	}
	for _, n := range trusts {
		v.Secrets = append(v.Secrets, &tlsv3.Secret{Name: n, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inlineBytes(ident.RootPEM),
		}}})
	}
	slices.SortFunc(v.Secrets, func(a, b *tlsv3.Secret) int { return cmpString(a.Name, b.Name) })
	return ident.RenewAt, nil
}

func inlineBytes(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
