package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const acmMesh = `
kind: Mesh
name: acm
---
kind: VirtualNode
mesh: acm
name: client
spec:
  backends:
    - virtualService:
        virtualServiceName: secure.acm.local
        clientPolicy:
          tls:
            validation:
              trust: {acm: {certificateAuthorityArns: ["arn:aws:acm-pca:us-west-2:123456789012:certificate-authority/ca"]}}
    - virtualService: {virtualServiceName: plain.acm.local}
---
kind: VirtualNode
mesh: acm
name: secure
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      tls:
        mode: STRICT
        certificate: {acm: {certificateArn: "arn:aws:acm:us-west-2:123456789012:certificate/abc"}}
  serviceDiscovery: {awsCloudMap: {namespaceName: acm.local, serviceName: secure}}
---
kind: VirtualService
mesh: acm
name: secure.acm.local
spec: {provider: {virtualNode: {virtualNodeName: secure}}}
---
kind: VirtualNode
mesh: acm
name: plain
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: acm.local, serviceName: plain}}
---
kind: VirtualService
mesh: acm
name: plain.acm.local
spec: {provider: {virtualNode: {virtualNodeName: plain}}}
`

const (
	acmTrustWarning = "Warning: VirtualNode acm/client: spec.backends[0].virtualService.clientPolicy.tls.validation.trust.acm: ACM Private CA is not available in meshlens; traffic to secure.acm.local is refused rather than sent in plaintext"
	acmCertWarning  = "Warning: VirtualNode acm/secure: spec.listeners[0].tls.certificate.acm: ACM certificates are not available without the mesh CA (meshlens server --ca-key-file); the listener on port 8080 is not served rather than served without TLS"
)

// TestACMWarningsInCLI: what the control plane keeps but cannot enforce is
// printed as "Warning:" lines on stderr by apply, its dry run and get, and
// in describe's output, while get's stdout stays a document that applies
// again.
func TestACMWarningsInCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	hasWarnings := func(what, stderr string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(stderr, w+"\n") {
				t.Errorf("%s: stderr lacks %q:\n%s", what, w, stderr)
			}
		}
	}
	r := s.cli(t, acmMesh, "apply", "--dry-run", "-f", "-")
	if r.code != 0 {
		t.Fatalf("apply --dry-run: exit %d: %s", r.code, r.stderr)
	}
	hasWarnings("apply --dry-run", r.stderr, acmTrustWarning, acmCertWarning)
	r = s.cli(t, acmMesh, "apply", "-f", "-")
	if r.code != 0 {
		t.Fatalf("apply: exit %d: %s", r.code, r.stderr)
	}
	hasWarnings("apply", r.stderr, acmTrustWarning, acmCertWarning)
	if strings.Contains(r.stdout, "Warning") {
		t.Errorf("apply printed warnings on stdout:\n%s", r.stdout)
	}

	r = s.cli(t, "", "get", "vn", "client", "--mesh", "acm", "-o", "yaml")
	hasWarnings("get", r.stderr, acmTrustWarning)
	if strings.Contains(r.stderr, acmCertWarning) {
		t.Errorf("get vn client printed the warning of another node:\n%s", r.stderr)
	}
	if again := s.cli(t, r.stdout, "apply", "-f", "-"); again.code != 0 || !strings.Contains(again.stdout, "unchanged") {
		t.Errorf("get's output does not apply again unchanged: exit %d\n%s%s", again.code, again.stdout, again.stderr)
	}
	r = s.cli(t, "", "get", "vn", "--mesh", "acm")
	hasWarnings("get (list)", r.stderr, acmTrustWarning, acmCertWarning)

	out := s.mustCLI(t, "", "describe", "vn", "client", "--mesh", "acm")
	if !strings.Contains(out, "Warnings:\n  spec.backends[0].virtualService.clientPolicy.tls.validation.trust.acm: ACM Private CA is not available in meshlens") {
		t.Errorf("describe lacks the warning:\n%s", out)
	}
}

// TestACMTrustSendsNoPlaintext: a backend whose client policy trusts ACM
// Private CA is refused, never called in plaintext: the sidecar answers
// 503 and the backend's application sees no request, while a backend
// without a policy is reached.
func TestACMTrustSendsNoPlaintext(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.mustCLI(t, acmMesh, "apply", "-f", "-")
	secure, plain := startEchoApp(t, "secure"), startEchoApp(t, "plain")
	register(t, s, "acm", "secure", "secure-1", "127.0.0.1", secure.addrPort())
	register(t, s, "acm", "plain", "plain-1", "127.0.0.1", plain.addrPort())

	client := startProxy(t, s, "mesh/acm/virtualNode/client", true, "--egress-addr", "127.0.0.1:0", "--ingress-addr", "none", "--register=false")
	egress := client.listenerAddr(t, "lds_egress_*")
	c := proxyClient(egress)
	// The plain backend's endpoints arrive with the secure one's (or its
	// lack of them): once it answers, the sidecar has both.
	eventually(t, 10*time.Second, "plain backend reachable", func() error {
		resp, err := c.Get("http://plain.acm.local:8080/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "plain ") {
			return fmt.Errorf("%s %q", resp.Status, b)
		}
		return nil
	})
	for i := range 5 {
		resp, err := c.Get(fmt.Sprintf("http://secure.acm.local:8080/%d", i))
		code, got := body(t, resp, err)
		if code != http.StatusServiceUnavailable || !strings.Contains(got, "trusts ACM Private CA, which is not available in meshlens; the request is refused rather than sent in plaintext") {
			t.Errorf("request %d to the ACM-trusting backend: %d %q, want 503 saying why", i, code, got)
		}
	}
	if n := secure.seen(); n != 0 {
		t.Fatalf("the application behind the ACM-trusting backend received %d plaintext requests", n)
	}
}
