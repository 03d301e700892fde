package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/cluster/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	tlsinspectorv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// selfSigned writes a self-signed certificate for name (its own CA) and
// returns the cert and key paths.
func selfSigned(t *testing.T, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

// TestTLSListenerPermissive: one inbound port with a TLS chain and a
// plaintext chain told apart by the TLS inspector (App Mesh's PERMISSIVE
// mode); TLS clients get HTTP/2 or HTTP/1.1 by ALPN.
func TestTLSListenerPermissive(t *testing.T) {
	t.Parallel()
	app := startUpstream(t, "app", nil)
	certFile, keyFile, pool := selfSigned(t, "greeting.demo.local")
	tlsCtx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: fileSource(certFile), PrivateKey: fileSource(keyFile)}},
	}}
	secure := xChain("ingress_http_9443_tls", 9443, xHCM("ingress.http.9443", "rds_ingress_http_9443"))
	secure.FilterChainMatch.TransportProtocol = "tls"
	secure.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tlsCtx)}}
	plain := xChain("ingress_http_9443", 9443, xHCM("ingress.http.9443", "rds_ingress_http_9443"))
	l := xListener(ingressName, "0.0.0.0:15000", secure, plain)
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{
		Name: "envoy.filters.listener.tls_inspector", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	})
	p := startProxy(t, Config{Listen: map[uint32]string{9443: "127.0.0.1:0"}})
	mustApply(t, p, xds{
		listeners: []*listenerv3.Listener{l},
		routes:    []*routev3.RouteConfiguration{xRouteConfig("rds_ingress_http_9443", xVHost("in", []string{"*"}, xRoute("/", to("cds_app"))))},
		clusters:  []*clusterv3.Cluster{xCluster("cds_app", app.Addr())},
	}.snap(t))
	addr := addrOf(t, p, ingressName, 9443)

	for _, tc := range []struct {
		name  string
		alpn  []string
		major int
	}{{"h2", []string{"h2", "http/1.1"}, 2}, {"http/1.1", []string{"http/1.1"}, 1}} {
		tr := &http.Transport{Proxy: nil, ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "greeting.demo.local", NextProtos: tc.alpn}}
		if tc.major == 1 {
			tr.ForceAttemptHTTP2 = false
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, body := get(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://"+addr+"/x", "greeting.demo.local", nil)
		if resp.StatusCode != 200 || body != "app" || resp.ProtoMajor != tc.major {
			t.Errorf("%s over TLS: %s %d %q", tc.name, resp.Proto, resp.StatusCode, body)
		}
	}
	if resp, body := get(t, testClient(), "http://"+addr+"/x", "greeting.demo.local", nil); resp.StatusCode != 200 || body != "app" {
		t.Errorf("plaintext on the permissive port: %d %q", resp.StatusCode, body)
	}
	seen := app.Seen()
	if len(seen) != 3 || seen[0].Header.Get("X-Forwarded-Proto") != "https" || seen[2].Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("x-forwarded-proto: %+v", seen)
	}
	for name, want := range map[string]int64{
		"listener.0.0.0.0_15000.ssl.handshake":        2,
		"listener.0.0.0.0_15000.ssl.no_certificate":   2,
		"listener.0.0.0.0_15000.ssl.connection_error": 0,
	} {
		if got := statValue(t, p, name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// A listener that requires client certificates tells a missing one, an
// untrusted one and a good one apart in its ssl.* stats.
func TestTLSListenerClientCertificates(t *testing.T) {
	t.Parallel()
	app := startUpstream(t, "app", nil)
	certFile, keyFile, pool := selfSigned(t, "greeting.demo.local")
	clientCert, clientKey, _ := selfSigned(t, "client.mesh.local")
	strangerCert, strangerKey, _ := selfSigned(t, "stranger.mesh.local")
	tlsCtx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: fileSource(certFile), PrivateKey: fileSource(keyFile)}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: fileSource(clientCert),
			}},
		},
	}
	secure := xChain("ingress_http_9443_tls", 9443, xHCM("ingress.http.9443", "rds_ingress_http_9443"))
	secure.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tlsCtx)}}
	p := startProxy(t, Config{Listen: map[uint32]string{9443: "127.0.0.1:0"}})
	mustApply(t, p, xds{
		listeners: []*listenerv3.Listener{xListener(ingressName, "0.0.0.0:15000", secure)},
		routes:    []*routev3.RouteConfiguration{xRouteConfig("rds_ingress_http_9443", xVHost("in", []string{"*"}, xRoute("/", to("cds_app"))))},
		clusters:  []*clusterv3.Cluster{xCluster("cds_app", app.Addr())},
	}.snap(t))
	addr := addrOf(t, p, ingressName, 9443)
	try := func(cert, key string) error {
		cfg := &tls.Config{RootCAs: pool, ServerName: "greeting.demo.local"}
		if cert != "" {
			c, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			// Sent whatever CAs the server asks for (crypto/tls would
			// send none that the server's CA list does not name).
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
		}
		c := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		resp, err := c.Get("https://" + addr + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := try(clientCert, clientKey); err != nil {
		t.Fatalf("with the trusted client certificate: %v", err)
	}
	if err := try("", ""); err == nil {
		t.Error("accepted without a client certificate")
	}
	if err := try(strangerCert, strangerKey); err == nil {
		t.Error("accepted an untrusted client certificate")
	}
	waitFor(t, "the ssl stats", func() bool {
		return statValue(t, p, "listener.0.0.0.0_15000.ssl.handshake") == 1 &&
			statValue(t, p, "listener.0.0.0.0_15000.ssl.fail_verify_no_cert") == 1 &&
			statValue(t, p, "listener.0.0.0.0_15000.ssl.fail_verify_error") == 1
	})
}

// TestUpstreamTLS: a cluster with a TLS context verifies the upstream's
// chain against its CA and its SAN against the match list, not its
// hostname.
func TestUpstreamTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := selfSigned(t, "backend.mesh.local")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "secure "+r.Proto) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	withTLS := func(name, san string) *clusterv3.Cluster {
		c := xCluster(name, ln.Addr().String())
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: fileSource(certFile),
				MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: tlsv3.SubjectAltNameMatcher_DNS,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}},
				}},
			}}},
		})}}
		return c
	}
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{
		xVHost("good", []string{"good.local"}, xRoute("/", to("cds_good"))),
		xVHost("bad", []string{"bad.local"}, xRoute("/", to("cds_bad"))),
	}, withTLS("cds_good", "backend.mesh.local"), withTLS("cds_bad", "someone.else")).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)
	if resp, body := get(t, testClient(), base+"/", "good.local", nil); resp.StatusCode != 200 || body != "secure HTTP/1.1" {
		t.Errorf("TLS upstream: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, testClient(), base+"/", "bad.local", nil); resp.StatusCode != 503 {
		t.Errorf("TLS upstream with the wrong SAN: %d, want 503", resp.StatusCode)
	}
	if got := statValue(t, p, "cluster.cds_good.ssl.handshake"); got != 1 {
		t.Errorf("cluster.cds_good.ssl.handshake = %d, want 1", got)
	}
	if got := statValue(t, p, "cluster.cds_bad.ssl.fail_verify_san"); got < 1 {
		t.Errorf("cluster.cds_bad.ssl.fail_verify_san = %d, want at least 1", got)
	}
	if got := statValue(t, p, "cluster.cds_bad.ssl.handshake"); got != 0 {
		t.Errorf("cluster.cds_bad.ssl.handshake = %d, want 0", got)
	}
}

// A TCP chain with TLS terminates it: the application gets plaintext,
// and the listener counts the handshake.
func TestTLSTerminatedTCPChain(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t, "db.mesh.local")
	tlsCtx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: fileSource(certFile), PrivateKey: fileSource(keyFile)}},
	}}
	chain := xChain("ingress_tcp_5432", 5432, xTCP("ingress.tcp.5432", 0, to("cds_tcp")))
	chain.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tlsCtx)}}
	p := startProxy(t, Config{Listen: map[uint32]string{5432: "127.0.0.1:0"}})
	mustApply(t, p, xds{
		listeners: []*listenerv3.Listener{xListener(ingressName, "0.0.0.0:15000", chain)},
		clusters:  []*clusterv3.Cluster{xCluster("cds_tcp", startTCPUpstream(t))},
	}.snap(t))
	conn, err := tls.Dial("tcp", addrOf(t, p, ingressName, 5432), &tls.Config{RootCAs: pool, ServerName: "db.mesh.local"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "over tls"); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil || string(b) != "got 8" {
		t.Fatalf("through the TLS TCP chain: %q %v, want the upstream's plaintext count", b, err)
	}
	if got := statValue(t, p, "listener.0.0.0.0_15000.ssl.handshake"); got != 1 {
		t.Errorf("ssl.handshake %d, want 1", got)
	}
}

// An HTTP/2 cluster with TLS speaks h2, negotiated by ALPN, through the
// proxy's HTTP/2 codec, and its handshakes count in ssl.*; an upstream
// whose TLS does not choose h2 is a connect failure.
func TestUpstreamTLSHTTP2(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := selfSigned(t, "backend.mesh.local")
	serve := func(protos []string) string {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{
			Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "secure "+r.Proto) }),
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: protos},
		}
		if len(protos) == 1 {
			srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){} // no h2
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		t.Cleanup(func() { _ = srv.Close() })
		return ln.Addr().String()
	}
	h2Addr, h1Addr := serve([]string{"h2", "http/1.1"}), serve([]string{"http/1.1"})
	withTLS := func(name, addr string) *clusterv3.Cluster {
		c := withHTTP2(xCluster(name, addr))
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{
			Sni: "backend.mesh.local",
			CommonTlsContext: &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: fileSource(certFile),
			}}},
		})}}
		return c
	}
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{
		xVHost("h2", []string{"h2.local"}, xRoute("/", to("cds_h2"))),
		xVHost("h1", []string{"h1.local"}, xRoute("/", to("cds_h1"))),
	}, withTLS("cds_h2", h2Addr), withTLS("cds_h1", h1Addr)).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)
	for range 2 {
		if resp, body := get(t, testClient(), base+"/", "h2.local", nil); resp.StatusCode != 200 || body != "secure HTTP/2.0" {
			t.Fatalf("TLS HTTP/2 upstream: %d %q", resp.StatusCode, body)
		}
	}
	if got := statValue(t, p, "cluster.cds_h2.ssl.handshake"); got != 1 {
		t.Errorf("cluster.cds_h2.ssl.handshake = %d, want 1 (one connection, two streams)", got)
	}
	resp, body := get(t, testClient(), base+"/", "h1.local", nil)
	if resp.StatusCode != 503 || !strings.Contains(body, "connection failure") {
		t.Errorf("TLS upstream without h2: %d %q, want a 503 connect failure", resp.StatusCode, body)
	}
}
