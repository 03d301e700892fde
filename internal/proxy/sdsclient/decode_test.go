package sdsclient

import (
	"strings"
	"testing"

	"github.com/meshlens/meshlens/internal/xdsproto"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/service/discovery/v3"
	resourcev3 "github.com/meshlens/meshlens/internal/xdsproto/resource"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestDecodeValidatesSecrets: a secret that breaks its .proto's rules
// fails the response, naming the secret and the rule.
func TestDecodeValidatesSecrets(t *testing.T) {
	good := trustMirror("spiffe://example.org", "pem")
	bad := &tlsv3.Secret{Name: "bad", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{}},
	}}}
	r := &discoveryv3.DiscoveryResponse{TypeUrl: resourcev3.SecretType, Resources: []*anypb.Any{xdsproto.MustAny(good)}}
	got, err := decode(r)
	if err != nil || got["spiffe://example.org"].GetValidationContext().GetTrustedCa().GetInlineString() != "pem" {
		t.Fatalf("valid secret: %v, %v", got, err)
	}
	r.Resources = append(r.Resources, xdsproto.MustAny(bad))
	if _, err := decode(r); err == nil || !strings.Contains(err.Error(), "secret bad: invalid") {
		t.Errorf("invalid secret: err = %v", err)
	}
}

func trustMirror(name, pem string) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: pem}},
	}}}
}
