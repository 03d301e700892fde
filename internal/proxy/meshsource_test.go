package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	tlsinspectorv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
)

// forged is an x-meshlens-source naming a workload that does not exist.
const forged = "demo/virtualNode/ghost/server.demo.local"

// testCA issues client certificates with the given SANs.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mesh CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// issue returns a client certificate with a DNS SAN and URI SANs.
func (ca *testCA) issue(t *testing.T, dns string, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if dns != "" {
		tmpl.DNSNames = []string{dns}
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// meshEdgeCount is meshlens_requests_total on the called side from the
// caller with the given label fragments.
func meshEdgeCount(t *testing.T, p *Proxy, labels ...string) float64 {
	t.Helper()
	_, text := adminGet(t, p, "/stats/prometheus")
	v, _ := promValue(text, "meshlens_requests_total", append([]string{`reporter="destination"`}, labels...)...)
	return v
}

// On an inbound listener that terminates TLS (PERMISSIVE here: a TLS
// chain and a plaintext one), x-meshlens-source names no one: a client
// with a verified certificate is the certificate's identity, any other
// is unknown. The application never sees the header.
func TestMeshSourceFromPeerCertificate(t *testing.T) {
	t.Parallel()
	app := startUpstream(t, "app", func(w http.ResponseWriter, r *http.Request) {
		if _, seen := r.Header[meshmetrics.SourceHeader]; seen {
			w.WriteHeader(http.StatusTeapot) // must never happen
		}
	})
	ca := newTestCA(t)
	certFile, keyFile, serverPool := selfSigned(t, "server.demo.local")
	tlsCtx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: fileSource(certFile), PrivateKey: fileSource(keyFile)}},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: fileSource(ca.file),
		}},
	}}
	secure := xChain("ingress_http_9443_tls", 9443, xHCM("ingress.http.9443", "rds_ingress_http_9443"))
	secure.FilterChainMatch.TransportProtocol = "tls"
	secure.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tlsCtx)}}
	plain := xChain("ingress_http_9443", 9443, xHCM("ingress.http.9443", "rds_ingress_http_9443"))
	l := xListener(ingressName, "0.0.0.0:15000", secure, plain)
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{
		Name: "envoy.filters.listener.tls_inspector", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	})
	p := startProxy(t, Config{NodeID: "mesh/demo/virtualNode/server", Listen: map[uint32]string{9443: "127.0.0.1:0"}})
	mustApply(t, p, xds{
		listeners: []*listenerv3.Listener{l},
		routes:    []*routev3.RouteConfiguration{xRouteConfig("rds_ingress_http_9443", xVHost("in", []string{"*"}, xRoute("/", to("cds_app"))))},
		clusters:  []*clusterv3.Cluster{xCluster("cds_app", app.Addr())},
	}.snap(t))
	addr := addrOf(t, p, ingressName, 9443)

	send := func(scheme string, cert *tls.Certificate) {
		t.Helper()
		cfg := &tls.Config{RootCAs: serverPool, ServerName: "server.demo.local"}
		if cert != nil {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		c := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		resp, body := get(t, c, scheme+"://"+addr+"/", "server.demo.local", map[string]string{meshmetrics.SourceHeader: forged})
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %q", scheme, resp.StatusCode, body)
		}
	}
	real := ca.issue(t, "real.demo.local", "spiffe://demo.mesh/mesh/demo/virtualNode/real")
	dnsOnly := ca.issue(t, "client.demo.local")
	send("https", &real)
	send("https", &real)
	send("https", &dnsOnly)
	send("https", nil) // TLS without a client certificate
	send("http", nil)  // plaintext on the permissive port

	if n := meshEdgeCount(t, p, `source_workload="ghost"`); n != 0 {
		t.Errorf("%v requests counted from the forged caller", n)
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{`source_mesh="demo"`, `source_workload="real"`, `source_kind="virtualNode"`, `destination_service="server.demo.local"`, `destination_workload="server"`, `connection_security_policy="mutual_tls"`}, 2},
		{[]string{`source_mesh="unknown"`, `source_workload="client.demo.local"`, `source_kind="unknown"`, `destination_service="server.demo.local"`}, 1},
		{[]string{`source_mesh="unknown"`, `source_workload="unknown"`, `source_kind="unknown"`, `connection_security_policy="none"`}, 2},
	} {
		if got := meshEdgeCount(t, p, c.labels...); got != c.want {
			t.Errorf("meshlens_requests_total %v = %v, want %v", c.labels, got, c.want)
		}
	}
}

// A gateway's clients are outside the mesh: their x-meshlens-source is
// dropped, and what goes upstream is the gateway's own.
func TestMeshSourceDroppedAtGateway(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "backend", nil)
	svc := xRoute("/svc/", to("cds_backend"))
	raw := xRoute("/raw/", to("cds_backend"))
	vh := xVHost("gw", []string{"*"}, svc, raw)
	svc.Metadata = meta("virtualService", "backend.demo.local")
	cl := xCluster("cds_backend", up.Addr())
	cl.Metadata = meta("mesh", "demo", "virtualNode", "backend")
	gwName := "lds_ingress_0.0.0.0_8080"
	p := startProxy(t, Config{NodeID: "mesh/demo/virtualGateway/gw", Gateway: true, Listen: map[uint32]string{8080: "127.0.0.1:0"}})
	mustApply(t, p, xds{
		gateway:   true,
		listeners: []*listenerv3.Listener{xListener(gwName, "0.0.0.0:8080", xChain("ingress_http_8080", 0, xHCM("ingress.http.8080", "rds_ingress_http_8080")))},
		routes:    []*routev3.RouteConfiguration{xRouteConfig("rds_ingress_http_8080", vh)},
		clusters:  []*clusterv3.Cluster{cl},
	}.snap(t))
	for _, path := range []string{"/svc/x", "/raw/x"} {
		if resp, body := get(t, testClient(), "http://"+addrOf(t, p, gwName, 0)+path, "gw.example.com", map[string]string{meshmetrics.SourceHeader: forged}); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	seen := up.Seen()
	if len(seen) != 2 {
		t.Fatalf("%d requests upstream", len(seen))
	}
	// The route (here the test's route names, "r/<prefix>") is the fifth
	// field.
	for i, want := range []string{"demo/virtualGateway/gw/backend.demo.local/r/svc/", "demo/virtualGateway/gw/unknown/r/raw/"} {
		if got := seen[i].Header.Values(meshmetrics.SourceHeader); len(got) != 1 || got[0] != want {
			t.Errorf("upstream saw x-meshlens-source %q, want the gateway's own %q", got, want)
		}
	}
	_, text := adminGet(t, p, "/stats/prometheus")
	if strings.Contains(text, "ghost") {
		t.Errorf("the forged caller reached the gateway's metrics:\n%s", text)
	}
}
