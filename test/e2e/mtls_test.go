package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testPKI writes a CA and certificates it signed for the given DNS SANs;
// it returns the CA file and, per SAN, the chain and key files.
func testPKI(t *testing.T, sans ...string) (ca string, certs map[string][2]string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshlens test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ca = write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certs = map[string][2]string{}
	for i, san := range sans {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: san}, DNSNames: []string{san},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certs[san] = [2]string{
			write(san+".pem", &pem.Block{Type: "CERTIFICATE", Bytes: der}),
			write(san+"-key.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		}
	}
	return ca, certs
}

// mtlsMesh: the client calls web (http) and db (tcp) with mutual TLS;
// each listener requires a certificate with the client's SAN, the client
// checks the server's.
func mtlsMesh(ca string, certs map[string][2]string) string {
	listenerTLS := func(san string) string {
		return fmt.Sprintf(`{mode: STRICT, certificate: {file: {certificateChain: %q, privateKey: %q}},
        validation: {trust: {file: {certificateChain: %q}}, subjectAlternativeNames: {match: {exact: [client.mtls.local]}}}}`,
			certs[san][0], certs[san][1], ca)
	}
	return fmt.Sprintf(`
kind: Mesh
name: mtls
---
kind: VirtualNode
mesh: mtls
name: client
spec:
  backends: [{virtualService: {virtualServiceName: web.mtls.local}}, {virtualService: {virtualServiceName: db.mtls.local}}]
  backendDefaults:
    clientPolicy:
      tls:
        certificate: {file: {certificateChain: %q, privateKey: %q}}
        validation:
          trust: {file: {certificateChain: %q}}
          subjectAlternativeNames: {match: {exact: [web.mtls.local, db.mtls.local]}}
---
kind: VirtualNode
mesh: mtls
name: web
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      tls: %s
  serviceDiscovery: {awsCloudMap: {namespaceName: mtls.local, serviceName: web}}
---
kind: VirtualNode
mesh: mtls
name: db
spec:
  listeners:
    - portMapping: {port: 5432, protocol: tcp}
      tls: %s
  serviceDiscovery: {awsCloudMap: {namespaceName: mtls.local, serviceName: db}}
---
kind: VirtualService
mesh: mtls
name: web.mtls.local
spec: {provider: {virtualNode: {virtualNodeName: web}}}
---
kind: VirtualService
mesh: mtls
name: db.mtls.local
spec: {provider: {virtualNode: {virtualNodeName: db}}}
`, certs["client.mtls.local"][0], certs["client.mtls.local"][1], ca, listenerTLS("web.mtls.local"), listenerTLS("db.mtls.local"))
}

// Mutual TLS between sidecars from App Mesh's listener tls and client
// policy, for HTTP and TCP: the applications speak plaintext, the hop
// between the sidecars is TLS both ways verified, and a client without
// the mesh's certificate is refused.
func TestMutualTLSBetweenSidecars(t *testing.T) {
	t.Parallel()
	ca, certs := testPKI(t, "client.mtls.local", "web.mtls.local", "db.mtls.local")
	s := startServer(t, t.TempDir())
	s.mustCLI(t, mtlsMesh(ca, certs), "apply", "-f", "-")

	web := startEchoApp(t, "web")
	webProxy := startProxy(t, s, "mesh/mtls/virtualNode/web", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+web.addr, "--register=false")
	dbProxy := startProxy(t, s, "mesh/mtls/virtualNode/db", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "5432="+startTCPEcho(t), "--register=false")
	webIn, dbIn := webProxy.listenerAddr(t, "lds_ingress_*"), dbProxy.listenerAddr(t, "lds_ingress_*")
	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	register(t, s, "mtls", "web", "web-1", "127.0.0.1", port(webIn))
	register(t, s, "mtls", "db", "db-1", "127.0.0.1", port(dbIn))
	client := startProxy(t, s, "mesh/mtls/virtualNode/client", true, "--egress-addr", "127.0.0.1:0", "--egress-port", "5432=127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	// The egress listener's own socket first, then its --egress-port one.
	egressAddrs := client.listenerAddrs(t, "lds_egress_*")
	if len(egressAddrs) != 2 {
		t.Fatalf("egress listener bound to %v, want its own socket and the egress port", egressAddrs)
	}
	egress, dbLocal := egressAddrs[0], egressAddrs[1]

	c := proxyClient(egress)
	eventually(t, 20*time.Second, "HTTP over mutual TLS", func() error {
		resp, err := c.Get("http://web.mtls.local:8080/hello")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "web GET /hello") {
			return fmt.Errorf("%s %q", resp.Status, b)
		}
		return nil
	})
	eventually(t, 20*time.Second, "TCP over mutual TLS", func() error {
		conn, err := net.Dial("tcp", dbLocal)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "ping")
		conn.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(conn)
		if string(b) != "pingbye" {
			return fmt.Errorf("echo %q", b)
		}
		return nil
	})

	// Without the mesh's client certificate, web's sidecar refuses.
	if resp, err := http.Get("http://" + webIn + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("plaintext to a STRICT listener answered %s", resp.Status)
	}
	stat := func(p *proxyProc, re string) bool {
		resp, err := http.Get("http://" + p.admin + "/stats?filter=ssl")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return regexp.MustCompile(re).Match(b)
	}
	if !stat(client, `(?m)^cluster\.[^ ]*web[^ ]*\.ssl\.handshake: [1-9]`) || !stat(client, `(?m)^cluster\.[^ ]*db[^ ]*\.ssl\.handshake: [1-9]`) {
		t.Error("the client sidecar's clusters count no TLS handshake")
	}
	if !stat(webProxy, `(?m)^listener\.[^ ]+\.ssl\.handshake: [1-9]`) || !stat(webProxy, `(?m)^listener\.[^ ]+\.ssl\.connection_error: [1-9]`) {
		t.Error("web's listener does not count the handshakes and the refused plaintext")
	}
}
