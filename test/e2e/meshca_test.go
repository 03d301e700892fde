package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// xfccApp is an application that answers with its name and the
// x-forwarded-client-cert header its sidecar handed it.
type xfccApp struct {
	addr string
	mu   sync.Mutex
	last string
}

func startXFCCApp(t *testing.T, name string) *xfccApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &xfccApp{addr: ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := r.Header.Get("X-Forwarded-Client-Cert")
		a.mu.Lock()
		a.last = x
		a.mu.Unlock()
		fmt.Fprintf(w, "%s xfcc=%s", name, x)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// peerURI dials addr with TLS (presenting cert when given) and returns
// the URI SAN and serial of the certificate the server presented.
func peerURI(addr string, cert *tls.Certificate) (uri, serial string, err error) {
	conf := &tls.Config{InsecureSkipVerify: true}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	// TLS 1.3 reports a refused client certificate on the first read.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		return "", "", err
	}
	pc := c.ConnectionState().PeerCertificates[0]
	if len(pc.URIs) == 0 {
		return "", "", fmt.Errorf("server certificate has no URI SAN")
	}
	return pc.URIs[0].String(), pc.SerialNumber.String(), nil
}

func sslStat(t *testing.T, p *proxyProc, re string) bool {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/stats?filter=ssl")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return regexp.MustCompile(re).Match(b)
}

// TestMeshCAACMExportIsMutualTLS: the App Mesh export with ACM TLS from
// examples/ applies unchanged to a control plane running the mesh CA, and
// the hop between the two sidecars is mutual TLS with the identities the
// CA issued: the server's certificate read on the wire is
// spiffe://shop/virtualNode/checkout, and the application behind it is
// told the caller's (x-forwarded-client-cert URI=spiffe://shop/virtualNode/frontend).
func TestMeshCAACMExportIsMutualTLS(t *testing.T) {
	t.Parallel()
	mesh, err := os.ReadFile("../../examples/appmesh-acm-tls.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := startServerArgs(t, t.TempDir(), "--ca-generate-key")
	r := s.cli(t, string(mesh), "apply", "-f", "-")
	if r.code != 0 || strings.Contains(r.stderr, "ACM") {
		t.Fatalf("apply: exit %d, warnings:\n%s", r.code, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(s.dataDir, "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated ca.key: %v (mode %v), want mode 0600", err, fi.Mode().Perm())
	}
	app := startXFCCApp(t, "checkout")
	checkout := startProxy(t, s, "mesh/shop/virtualNode/checkout", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+app.addr, "--register=false")
	in := checkout.listenerAddr(t, "lds_ingress_*")
	register(t, s, "shop", "checkout", "checkout-1", "127.0.0.1", portOf(in))
	frontend := startProxy(t, s, "mesh/shop/virtualNode/frontend", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	c := proxyClient(frontend.listenerAddr(t, "lds_egress_*"))

	var got string
	eventually(t, 20*time.Second, "frontend calls checkout over mutual TLS", func() error {
		resp, err := c.Get("http://checkout.shop.local:8080/pay")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s %q", resp.Status, b)
		}
		got = string(b)
		return nil
	})
	want := regexp.MustCompile(`^checkout xfcc=By=spiffe://shop/virtualNode/checkout;Hash=[0-9a-f]{64};URI=spiffe://shop/virtualNode/frontend$`)
	if !want.MatchString(got) {
		t.Errorf("the application got %q, want x-forwarded-client-cert with both identities", got)
	}
	uri, _, err := peerURI(in, nil)
	if err != nil || uri != "spiffe://shop/virtualNode/checkout" {
		t.Errorf("certificate on the wire: %q, %v; want spiffe://shop/virtualNode/checkout", uri, err)
	}
	// A client cannot make up the header: the sidecar replaces it.
	req, _ := http.NewRequest("GET", "http://checkout.shop.local:8080/", nil)
	req.Header.Set("X-Forwarded-Client-Cert", "URI=spiffe://shop/virtualNode/admin")
	resp, err := c.Do(req)
	if _, b := body(t, resp, err); strings.Contains(b, "admin") {
		t.Errorf("a forged x-forwarded-client-cert reached the application: %q", b)
	}
	if !sslStat(t, frontend, `(?m)^cluster\.[^ ]*checkout[^ ]*\.ssl\.handshake: [1-9]`) {
		t.Error("frontend's cluster counts no TLS handshake")
	}
	// The mesh metrics name the caller from its certificate.
	resp, err = http.Get("http://" + checkout.admin + "/stats/prometheus")
	if _, b := body(t, resp, err); !regexp.MustCompile(`meshlens_requests_total\{[^}]*source_workload="frontend"[^}]*connection_security_policy="mutual_tls"`).MatchString(b) {
		t.Errorf("checkout's mesh metrics do not name frontend as a mutual TLS caller:\n%s", b)
	}
	// The console's graph marks the hop mTLS from what checkout's sidecar
	// saw on its connections (a verified client certificate), under load.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if resp, err := c.Get("http://checkout.shop.local:8080/load"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	eventually(t, 30*time.Second, "the console graph's frontend -> checkout edge marked mTLS", func() error {
		resp, err := http.Get("http://" + s.api + "/v1/console/graph?window=1m")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var g consoleGraph
		if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
			return err
		}
		for _, e := range g.Edges {
			if e.Source == "shop/virtualNode/frontend" && e.Target == "shop/virtualService/checkout.shop.local" && e.RPS != nil && *e.RPS > 0 {
				if e.MTLS == nil || !*e.MTLS {
					return fmt.Errorf("edge %s mtls %v", e.ID, e.MTLS)
				}
				return nil
			}
		}
		return fmt.Errorf("no busy frontend -> checkout edge: %+v", g.Edges)
	})
	// Identities valid 24 h: under a day left, in whole days.
	resp, err = http.Get("http://" + checkout.admin + "/stats?filter=days_until")
	if _, b := body(t, resp, err); !regexp.MustCompile(`(?m)^server\.days_until_first_cert_expiring: 0$`).MatchString(b) {
		t.Errorf("stats lack server.days_until_first_cert_expiring: 0:\n%s", b)
	}
	// Each listener and cluster shows when each SDS certificate it uses
	// expires, as Envoy's ssl.certificate.<name>.expiration_unix_time_seconds:
	// the identity in about 24 h, the mesh root later.
	certExpiry := regexp.MustCompile(`(?m)^(listener|cluster)\.[^ ]*\.ssl\.certificate\.(\S+)\.expiration_unix_time_seconds: (\d+)$`)
	for _, c := range []struct {
		name  string
		p     *proxyProc
		scope string
	}{{"checkout", checkout, "listener"}, {"frontend", frontend, "cluster"}} {
		resp, err = http.Get("http://" + c.p.admin + "/stats?filter=expiration_unix_time_seconds")
		_, b := body(t, resp, err)
		var leaf, ca bool
		for _, m := range certExpiry.FindAllStringSubmatch(b, -1) {
			exp, _ := strconv.ParseInt(m[3], 10, 64)
			left := time.Until(time.Unix(exp, 0))
			switch {
			case m[1] != c.scope:
			case left > 23*time.Hour && left <= 24*time.Hour:
				leaf = true
			case left > 24*time.Hour:
				ca = true
			}
		}
		if !leaf || !ca {
			t.Errorf("%s stats: %s ssl.certificate expiry of the identity %v, of the root %v:\n%s", c.name, c.scope, leaf, ca, b)
		}
	}
}

// strictMesh: api requires a client certificate from the mesh CA with
// client's identity (its SDS trust resolves to the mesh root); client
// trusts the mesh CA for api.
func strictMesh(mode string) string {
	return fmt.Sprintf(`
kind: Mesh
name: strict
---
kind: VirtualNode
mesh: strict
name: client
spec:
  backends:
    - virtualService:
        virtualServiceName: api.strict.local
        clientPolicy:
          tls:
            validation:
              trust: {acm: {certificateAuthorityArns: ["arn:aws:acm-pca:us-west-2:123456789012:certificate-authority/ca"]}}
---
kind: VirtualNode
mesh: strict
name: api
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      tls:
        mode: %s
        certificate: {sds: {secretName: "spiffe://strict/virtualNode/api"}}
        validation:
          trust: {sds: {secretName: "spiffe://strict"}}
          subjectAlternativeNames: {match: {exact: ["spiffe://strict/virtualNode/client"]}}
  serviceDiscovery: {awsCloudMap: {namespaceName: strict.local, serviceName: api}}
---
kind: VirtualService
mesh: strict
name: api.strict.local
spec: {provider: {virtualNode: {virtualNodeName: api}}}
`, mode)
}

// ownRoot writes a CA certificate and key and returns the files, the
// certificate and the key.
func ownRoot(t *testing.T, dir string) (string, string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "own root"},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	cf, kf := filepath.Join(dir, "root.pem"), filepath.Join(dir, "root-key.pem")
	os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return cf, kf, cert, key
}

// leafCert issues a client certificate for uri from parent, valid from
// notBefore to notAfter.
func leafCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, uri string, notBefore, notAfter time.Time) *tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(uri)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), URIs: []*url.URL{u},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestMeshCAStrictRefusesWithoutIdentity: with the mesh CA on the user's
// own root (--ca-root), a STRICT listener serves the caller with the
// issued identity and refuses, counts and logs clients with no
// certificate, an expired one, one from another CA and one with another
// identity; once PERMISSIVE, it serves a client without TLS too.
func TestMeshCAStrictRefusesWithoutIdentity(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cf, kf, root, rootKey := ownRoot(t, dir)
	keyFile := filepath.Join(dir, "kek")
	os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)), 0o600)
	s := startServerArgs(t, t.TempDir(), "--ca-key-file", keyFile, "--ca-root", "strict="+cf+","+kf)
	s.mustCLI(t, strictMesh("STRICT"), "apply", "-f", "-")
	app := startXFCCApp(t, "api")
	// The listener of port 8080 is also bound on its own socket, as
	// captured traffic would reach it (the ingress socket's connections
	// have no original destination port to pick a chain by).
	api := startProxy(t, s, "mesh/strict/virtualNode/api", true, "--ingress-addr", "127.0.0.1:0", "--listen", "8080=127.0.0.1:0",
		"--egress-addr", "none", "--app", "8080="+app.addr, "--register=false")
	addrs := api.listenerAddrs(t, "lds_ingress_*")
	if len(addrs) != 2 {
		t.Fatalf("ingress bound to %v, want the ingress socket and port 8080's", addrs)
	}
	port8080 := addrs[1]
	register(t, s, "strict", "api", "api-1", "127.0.0.1", portOf(port8080))
	client := startProxy(t, s, "mesh/strict/virtualNode/client", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	c := proxyClient(client.listenerAddr(t, "lds_egress_*"))
	eventually(t, 20*time.Second, "client calls api over mutual TLS", func() error {
		resp, err := c.Get("http://api.strict.local:8080/")
		code, b := body(t, resp, err)
		if code != 200 || !strings.Contains(b, "URI=spiffe://strict/virtualNode/client") {
			return fmt.Errorf("%d %q", code, b)
		}
		return nil
	})

	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		stat string
	}{
		{"no certificate", nil, "fail_verify_no_cert"},
		{"expired", leafCert(t, root, rootKey, "spiffe://strict/virtualNode/client", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)), "fail_verify_error"},
		{"another CA", func() *tls.Certificate {
			_, _, other, otherKey := ownRoot(t, t.TempDir())
			return leafCert(t, other, otherKey, "spiffe://strict/virtualNode/client", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		}(), "fail_verify_error"},
		{"wrong identity", leafCert(t, root, rootKey, "spiffe://strict/virtualNode/intruder", time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), "fail_verify_san"},
	} {
		if _, _, err := peerURI(port8080, tc.cert); err == nil {
			t.Errorf("%s: the STRICT listener served the client", tc.name)
		}
		// The server counts once it has checked the client's certificate,
		// which with TLS 1.3 can be after the client has seen its
		// handshake end: wait for the count.
		eventually(t, 10*time.Second, tc.name+": listener ssl."+tc.stat+" counted", func() error {
			if !sslStat(t, api, `(?m)^listener\.[^ ]+\.ssl\.`+tc.stat+`: [1-9]`) {
				return fmt.Errorf("not counted")
			}
			return nil
		})
	}
	if !strings.Contains(api.logs.String(), "TLS handshake refused") {
		t.Error("no log line says a handshake was refused")
	}
	if resp, err := http.Get("http://" + port8080 + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("plaintext to the STRICT listener answered %s", resp.Status)
	}

	// PERMISSIVE: plaintext is served beside TLS.
	s.mustCLI(t, strictMesh("PERMISSIVE"), "apply", "-f", "-")
	eventually(t, 20*time.Second, "PERMISSIVE serves plaintext", func() error {
		resp, err := http.Get("http://" + port8080 + "/")
		code, b := body(t, resp, err)
		if code != 200 || b != "api xfcc=" {
			return fmt.Errorf("%d %q", code, b)
		}
		return nil
	})
	eventually(t, 20*time.Second, "PERMISSIVE still serves mutual TLS", func() error {
		resp, err := c.Get("http://api.strict.local:8080/")
		code, b := body(t, resp, err)
		if code != 200 || !strings.Contains(b, "URI=spiffe://strict/virtualNode/client") {
			return fmt.Errorf("%d %q", code, b)
		}
		return nil
	})
}

// TestMeshCARotationUnderLoad: identities valid 10 s are renewed every
// 5 s while a client sends requests without pause: new handshakes get
// new certificates and no request fails.
func TestMeshCARotationUnderLoad(t *testing.T) {
	t.Parallel()
	s := startServerArgs(t, t.TempDir(), "--ca-generate-key", "--ca-validity", "10s")
	mesh, err := os.ReadFile("../../examples/appmesh-acm-tls.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.mustCLI(t, string(mesh), "apply", "-f", "-")
	app := startXFCCApp(t, "checkout")
	checkout := startProxy(t, s, "mesh/shop/virtualNode/checkout", true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+app.addr, "--register=false")
	in := checkout.listenerAddr(t, "lds_ingress_*")
	register(t, s, "shop", "checkout", "checkout-1", "127.0.0.1", portOf(in))
	frontend := startProxy(t, s, "mesh/shop/virtualNode/frontend", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	egress := frontend.listenerAddr(t, "lds_egress_*")
	eventually(t, 20*time.Second, "first request", func() error {
		resp, err := proxyClient(egress).Get("http://checkout.shop.local:8080/")
		if code, b := body(t, resp, err); code != 200 {
			return fmt.Errorf("%d %q", code, b)
		}
		return nil
	})

	var ok, failed atomic.Int64
	var firstFail atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every other worker opens a connection per request, so that
			// the sidecars keep handshaking with the current identities.
			tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: egress}), DisableKeepAlives: w%2 == 0}
			cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := cl.Get("http://checkout.shop.local:8080/")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					firstFail.CompareAndSwap(nil, fmt.Sprint(err, resp))
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	serials := map[string]bool{}
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		if uri, serial, err := peerURI(in, nil); err == nil && uri == "spiffe://shop/virtualNode/checkout" {
			serials[serial] = true
		}
		time.Sleep(250 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests, %d failed, %d server certificates seen", ok.Load(), failed.Load(), len(serials))
	if failed.Load() != 0 {
		t.Errorf("%d requests failed during rotation; first: %v", failed.Load(), firstFail.Load())
	}
	if len(serials) < 2 {
		t.Errorf("checkout presented %d certificate(s) over 12 s with 10 s validity; want renewals", len(serials))
	}
	if ok.Load() == 0 {
		t.Error("no request succeeded")
	}
}

// TestMeshCAXDSClientCertReplacesToken: with --xds-client-certs, a proxy
// bootstraps over TLS xDS with its token, receives its identity from the
// mesh CA, and after its token is revoked and the control plane restarts
// it is configured again on the strength of that identity alone; a proxy
// with the revoked token and no identity is refused.
func TestMeshCAXDSClientCertReplacesToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestCA(t, dir)
	tokens := filepath.Join(dir, "tokens.json")
	admin := newToken(t, nil, "--auth-tokens", tokens, "--role", "admin")
	s := startServerWith(t, &server{dataDir: filepath.Join(dir, "store"), args: []string{"--auth-tokens", tokens,
		"--xds-tls-cert", certFile, "--xds-tls-key", keyFile, "--ca-generate-key", "--xds-client-certs"}})
	env := []string{"MESHLENS_SERVER=" + s.URL(), "MESHLENS_TOKEN=" + admin}
	mesh, err := os.ReadFile("../../examples/appmesh-acm-tls.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, env, string(mesh), "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	node := newToken(t, env, "--node", "shop/checkout")
	app := startXFCCApp(t, "checkout")
	checkout := startProxy(t, s, "mesh/shop/virtualNode/checkout", true, "--token", node, "--ca-file", caFile,
		"--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+app.addr, "--register=false")
	in := checkout.listenerAddr(t, "lds_ingress_*")
	eventually(t, 20*time.Second, "checkout has its identity", func() error {
		uri, _, err := peerURI(in, nil)
		if err != nil || uri != "spiffe://shop/virtualNode/checkout" {
			return fmt.Errorf("%q %v", uri, err)
		}
		return nil
	})

	if r := runCLI(t, env, "", "token", "revoke", strings.Split(node, "_")[1]); r.code != 0 {
		t.Fatalf("token revoke: exit %d\n%s", r.code, r.stderr)
	}
	s.kill()
	s.restart()
	eventually(t, 30*time.Second, "checkout reconnected with its certificate", func() error {
		if !strings.Contains(s.logs.String(), `msg="xds: data plane connected" node=mesh/shop/virtualNode/checkout`) {
			return fmt.Errorf("not connected:\n%s", s.logs.String())
		}
		return nil
	})
	// The revoked token alone gets nothing.
	stranger := startProxy(t, s, "mesh/shop/virtualNode/checkout", false, "--token", node, "--ca-file", caFile,
		"--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--register=false")
	eventually(t, 20*time.Second, "the revoked token refused", func() error {
		if !strings.Contains(stranger.logs.String(), "Unauthenticated") {
			return fmt.Errorf("proxy log:\n%s", stranger.logs.String())
		}
		return nil
	})
	if info, err := stranger.serverInfo(); err == nil && info.State == "LIVE" {
		t.Error("a proxy with a revoked token and no identity was configured")
	}
}

func mustPKCS8(t *testing.T, c *tls.Certificate) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustLeaf(t *testing.T, c *tls.Certificate) *x509.Certificate {
	t.Helper()
	l, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return l
}
