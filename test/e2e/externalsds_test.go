package e2e

import (
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// TestExternalSDSSocket: a proxy with APPMESH_SDS_SOCKET_PATH takes the
// secrets its listener names from the SDS server on that socket (as a
// SPIRE agent serves them), with no mesh CA in the control plane: the
// certificate on the wire is the one the socket served.
func TestExternalSDSSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, _, root, rootKey := ownRoot(t, dir)
	leaf := leafCert(t, root, rootKey, "spiffe://strict/virtualNode/api", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	kder := mustPKCS8(t, leaf)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{resourcev3.SecretType: {
		&tlsv3.Secret{Name: "spiffe://strict/virtualNode/api", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})),
			PrivateKey:       inline(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})),
		}}},
		&tlsv3.Secret{Name: "spiffe://strict", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})),
		}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.SetSnapshot(ctx, "mesh/strict/virtualNode/api", snap); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	secretv3.RegisterSecretDiscoveryServiceServer(g, serverv3.NewServer(ctx, cache, nil))
	go g.Serve(ln)
	defer g.Stop()

	s := startServer(t, t.TempDir()) // no mesh CA
	s.mustCLI(t, strictMesh("STRICT"), "apply", "-f", "-")
	app := startXFCCApp(t, "api")
	api := startProxyEnv(t, s, "mesh/strict/virtualNode/api", []string{"APPMESH_SDS_SOCKET_PATH=" + sock}, true,
		"--ingress-addr", "127.0.0.1:0", "--listen", "8080=127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+app.addr, "--register=false")
	port8080 := api.listenerAddrs(t, "lds_ingress_*")[1]
	client := leafCert(t, root, rootKey, "spiffe://strict/virtualNode/client", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	eventually(t, 20*time.Second, "the socket's certificate on the wire", func() error {
		uri, serial, err := peerURI(port8080, client)
		if err != nil || uri != "spiffe://strict/virtualNode/api" || serial != mustLeaf(t, leaf).SerialNumber.String() {
			return fmt.Errorf("%q %s %v\n%s", uri, serial, err, lastLines(api.logs.String(), 10))
		}
		return nil
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
