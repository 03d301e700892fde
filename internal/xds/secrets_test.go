package xds

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/meshlens/meshlens/internal/meshca"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// fakeCA issues a recognisable identity per node and records who asked.
type fakeCA struct {
	mu    sync.Mutex
	asked []string
}

func (f *fakeCA) Identity(mesh, kind, name string) (*meshca.Identity, error) {
	f.mu.Lock()
	f.asked = append(f.asked, mesh+"/"+kind+"/"+name)
	f.mu.Unlock()
	return &meshca.Identity{
		CertPEM: []byte("cert of " + name), KeyPEM: []byte("key of " + name), RootPEM: []byte("root of " + mesh),
		RenewAt: time.Unix(1000, 0),
	}, nil
}

// TestMeshCASecretsInView: under the mesh CA, the ACM example's listener
// and client policy name the mesh CA's secrets, and a node's view holds
// its own identity under them and the mesh root, nobody else's; without
// the CA, no secret is named or served.
func TestMeshCASecretsInView(t *testing.T) {
	t.Parallel()
	lookup := loadMesh(t, "../../examples/appmesh-acm-tls.yaml")
	ca := &fakeCA{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := NewServer(ctx, testLogger(t), Options{Secrets: ca})
	tr := newTranslator(lookup, nil)
	tr.meshCA = true

	for _, tc := range []struct {
		node      string
		want      map[string]string // secret name -> content
		certNames []string
	}{
		{"checkout", map[string]string{MeshCAIdentitySecret: "cert of checkout", MeshCATrustSecret: "root of shop"}, nil},
		{"frontend", map[string]string{MeshCAIdentitySecret: "cert of frontend", MeshCATrustSecret: "root of shop"}, nil},
	} {
		id := nodeid.ID{Mesh: "shop", Kind: nodeid.VirtualNode, Name: tc.node}
		v := tr.view(id, FlavourEnvoy)
		if len(v.Notes) != 0 {
			t.Errorf("%s: notes %v, want none under the mesh CA", tc.node, v.Notes)
		}
		renew, err := s.addSecrets(id, v)
		if err != nil || !renew.Equal(time.Unix(1000, 0)) {
			t.Fatalf("%s: addSecrets: %v, renew %v", tc.node, err, renew)
		}
		got := map[string]string{}
		for _, sec := range v.Secrets {
			switch x := sec.Type.(type) {
			case *tlsv3.Secret_TlsCertificate:
				got[sec.Name] = string(x.TlsCertificate.GetCertificateChain().GetInlineBytes())
				if k := x.TlsCertificate.GetPrivateKey().GetInlineBytes(); !bytes.Equal(k, []byte("key of "+tc.node)) {
					t.Errorf("%s: key %q", tc.node, k)
				}
			case *tlsv3.Secret_ValidationContext:
				got[sec.Name] = string(x.ValidationContext.GetTrustedCa().GetInlineBytes())
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: secrets %v, want %v", tc.node, got, tc.want)
		}
		for n, w := range tc.want {
			if got[n] != w {
				t.Errorf("%s: secret %s = %q, want %q", tc.node, n, got[n], w)
			}
		}
	}
	if strings.Join(ca.asked, ",") != "shop/virtualNode/checkout,shop/virtualNode/frontend" {
		t.Errorf("identities asked for: %v", ca.asked)
	}

	// Without the CA: nothing named, nothing served, the ACM note back.
	plain := newTranslator(lookup, nil)
	v := plain.view(nodeid.ID{Mesh: "shop", Kind: nodeid.VirtualNode, Name: "frontend"}, FlavourEnvoy)
	if certs, trusts := secretRefs(v); len(certs)+len(trusts) != 0 || len(v.Notes) == 0 {
		t.Errorf("without the mesh CA: secrets %v %v, notes %v", certs, trusts, v.Notes)
	}
}
