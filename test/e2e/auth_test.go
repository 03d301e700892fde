package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const authMesh = `
kind: Mesh
name: au
---
kind: VirtualNode
mesh: au
name: greeter
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: au.local, serviceName: greeter}}
---
kind: VirtualNode
mesh: au
name: other
spec:
  listeners: [{portMapping: {port: 9081, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: au.local, serviceName: other}}
`

// runCLI runs the meshlens binary with env (NAME=value, on top of the
// test's) and returns what it printed and its exit code.
func runCLI(t testing.TB, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run meshlens %v: %v", args, err)
	}
	return cliResult{stdout: out.String(), stderr: errb.String(), code: code}
}

// tokenRe is the form of a meshlens token.
var tokenRe = regexp.MustCompile(`^mlt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$`)

// newToken creates a token with `meshlens token create` (args say what
// it allows) and returns it.
func newToken(t testing.TB, env []string, args ...string) string {
	t.Helper()
	r := runCLI(t, env, "", append([]string{"token", "create"}, args...)...)
	tok := strings.TrimSpace(r.stdout)
	if r.code != 0 || !tokenRe.MatchString(tok) {
		t.Fatalf("token create %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return tok
}

// startAuthServer starts a control plane whose token file holds an admin
// token, made offline with --auth-tokens as an operator does first, and
// returns the server and that token.
func startAuthServer(t testing.TB, extra ...string) (*server, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens.json")
	admin := newToken(t, nil, "--auth-tokens", file, "--role", "admin", "--description", "e2e")
	s := startServerWith(t, &server{dataDir: filepath.Join(dir, "store"), args: append([]string{"--auth-tokens", file}, extra...)})
	return s, admin
}

// apiCall sends one request to s's API with token (none when empty).
func apiCall(t testing.TB, s *server, method, path, token, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/yaml")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

// metricValue reads one sample of the control plane's /metrics.
func metricValue(t testing.TB, s *server, token, series string) float64 {
	t.Helper()
	code, _, body := apiCall(t, s, http.MethodGet, "/metrics", token, "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// TestAuthAPIRoles: with a token file, an API request without a token is
// refused with 401 and a JSON error saying how to authenticate, a read
// token reads but its writes get 403, a write token writes, only an admin
// manages tokens, and a revoked token stops working; /healthz stays open.
func TestAuthAPIRoles(t *testing.T) {
	t.Parallel()
	s, admin := startAuthServer(t)
	adminEnv := []string{"MESHLENS_SERVER=" + s.URL(), "MESHLENS_TOKEN=" + admin}

	code, hdr, body := apiCall(t, s, http.MethodPost, "/v1/apply", "", authMesh)
	var apiErr struct{ Code, Message string }
	if err := json.Unmarshal([]byte(body), &apiErr); err != nil || code != http.StatusUnauthorized ||
		apiErr.Code != "UnauthorizedException" || !strings.Contains(apiErr.Message, "Authorization: Bearer <token>") ||
		hdr.Get("WWW-Authenticate") != `Bearer realm="meshlens"` {
		t.Fatalf("unauthenticated apply: %d %v %s", code, hdr, body)
	}
	if code, _, body := apiCall(t, s, http.MethodGet, "/v1/meshes", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated GET: %d %s", code, body)
	}
	if code, _, _ := apiCall(t, s, http.MethodGet, "/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("/healthz without a token: %d", code)
	}
	// The CLI without a token says why it failed.
	if r := s.cli(t, authMesh, "apply", "-f", "-"); r.code != 7 || !strings.Contains(r.stderr, "authentication required") {
		t.Fatalf("CLI apply without a token: exit %d\n%s", r.code, r.stderr)
	}
	// A malformed token is refused as such.
	if code, _, body := apiCall(t, s, http.MethodGet, "/v1/meshes", "not-a-token", ""); code != http.StatusUnauthorized || !strings.Contains(body, "malformed") {
		t.Fatalf("malformed token: %d %s", code, body)
	}

	read := newToken(t, adminEnv, "--role", "read")
	write := newToken(t, adminEnv, "--role", "write")

	code, _, body = apiCall(t, s, http.MethodPost, "/v1/apply", read, authMesh)
	if err := json.Unmarshal([]byte(body), &apiErr); err != nil || code != http.StatusForbidden || apiErr.Code != "ForbiddenException" ||
		!strings.Contains(apiErr.Message, "needs role write") {
		t.Fatalf("apply with a read token: %d %s", code, body)
	}
	readEnv := []string{"MESHLENS_SERVER=" + s.URL(), "MESHLENS_TOKEN=" + read}
	if r := runCLI(t, readEnv, authMesh, "apply", "-f", "-"); r.code != 7 || !strings.Contains(r.stderr, "needs role write") {
		t.Fatalf("CLI apply with a read token: exit %d\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, nil, authMesh, "--server", s.URL(), "--token", write, "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("CLI apply with a write token (--token): exit %d\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, readEnv, "", "get", "virtualnodes", "--mesh", "au"); r.code != 0 || !strings.Contains(r.stdout, "greeter") {
		t.Fatalf("CLI get with a read token: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if code, _, body := apiCall(t, s, http.MethodDelete, "/v1/meshes/au/virtualNodes/other", read, ""); code != http.StatusForbidden {
		t.Fatalf("delete with a read token: %d %s", code, body)
	}
	// Tokens are the admin's.
	if code, _, body := apiCall(t, s, http.MethodGet, "/v1/tokens", write, ""); code != http.StatusForbidden {
		t.Fatalf("GET /v1/tokens with a write token: %d %s", code, body)
	}
	list := runCLI(t, adminEnv, "", "token", "list")
	if list.code != 0 || strings.Count(list.stdout, "role=") != 3 || strings.Contains(list.stdout, read) {
		t.Fatalf("token list: exit %d\n%s%s", list.code, list.stdout, list.stderr)
	}
	readID := read[4:16]
	if r := runCLI(t, adminEnv, "", "token", "revoke", readID); r.code != 0 {
		t.Fatalf("token revoke: exit %d\n%s", r.code, r.stderr)
	}
	if code, _, body := apiCall(t, s, http.MethodGet, "/v1/meshes", read, ""); code != http.StatusUnauthorized || !strings.Contains(body, "unknown or revoked") {
		t.Fatalf("GET with a revoked token: %d %s", code, body)
	}
	if v := metricValue(t, s, admin, `meshlens_api_auth_failures_total{reason="missing"}`); v < 3 {
		t.Errorf(`meshlens_api_auth_failures_total{reason="missing"} = %v, want at least 3`, v)
	}
	if v := metricValue(t, s, admin, `meshlens_api_auth_failures_total{reason="insufficient_role"}`); v < 3 {
		t.Errorf(`meshlens_api_auth_failures_total{reason="insufficient_role"} = %v, want at least 3`, v)
	}
}

// adsWithToken opens an ADS stream as nodeID presenting token, asks for
// clusters and listeners, and returns the stream.
func adsWithToken(t testing.TB, addr, nodeID, token string) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: nodeID, Cluster: "e2e", UserAgentName: "envoy"}
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typ}); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	return stream
}

// refused reads the stream until it ends, failing if it carried any
// configuration, and returns how it ended.
func refused(t testing.TB, stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) error {
	t.Helper()
	for {
		r, err := stream.Recv()
		if err != nil {
			return err
		}
		t.Fatalf("a refused stream received %s version %s", r.TypeUrl, r.VersionInfo)
	}
}

// TestAuthXDS: a proxy with a wrong token gets no configuration and logs
// why; a stream with one node's bootstrap token asking for another node
// is refused; the node's own token configures its proxy and registers its
// instance, and cannot register another node's; refusals are counted.
func TestAuthXDS(t *testing.T) {
	t.Parallel()
	s, admin := startAuthServer(t)
	adminEnv := []string{"MESHLENS_SERVER=" + s.URL(), "MESHLENS_TOKEN=" + admin}
	if r := runCLI(t, adminEnv, authMesh, "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	greeterTok := newToken(t, adminEnv, "--node", "au/greeter")
	meshTok := newToken(t, adminEnv, "--mesh", "au")

	// A well-formed token that was never issued.
	wrong := "mlt_000000000000_" + strings.Repeat("A", 43)
	bad := startProxy(t, s, "mesh/au/virtualNode/greeter", false, "--token", wrong, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--register=false")
	eventually(t, 20*time.Second, "the proxy with a wrong token logs why it is refused", func() error {
		if logs := bad.logs.String(); !strings.Contains(logs, "Unauthenticated") || !strings.Contains(logs, "token unknown or revoked") {
			return errors.New("not yet")
		}
		return nil
	})
	if info, err := bad.serverInfo(); err != nil || info.State == "LIVE" {
		t.Fatalf("the proxy with a wrong token: state %+v, %v", info, err)
	}
	if strings.Contains(bad.logs.String(), "ACK") {
		t.Fatalf("the proxy with a wrong token applied configuration:\n%s", bad.logs.String())
	}
	waitLog(t, s, "xds: refused a call without a valid token")

	// No token at all, and the greeter's token asking for the other node.
	if err := refused(t, adsWithToken(t, s.xds, "mesh/au/virtualNode/greeter", "")); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("stream without a token: %v, want Unauthenticated", err)
	}
	err := refused(t, adsWithToken(t, s.xds, "mesh/au/virtualNode/other", greeterTok))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not bound to node mesh/au/virtualNode/other") {
		t.Fatalf("greeter's token asking for other: %v, want PermissionDenied", err)
	}
	if err := refused(t, adsWithToken(t, s.xds, "mesh/elsewhere/virtualNode/greeter", meshTok)); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a mesh token asking for another mesh: %v, want PermissionDenied", err)
	}

	// The right token (from a file) configures the proxy, which registers.
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(greeterTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startProxy(t, s, "mesh/au/virtualNode/greeter", true, "--token-file", tokFile, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--instance-id", "g-1")
	eventually(t, 10*time.Second, "the greeter's instance registered with its token", func() error {
		code, _, body := apiCall(t, s, http.MethodGet, "/v1/meshes/au/virtualNodes/greeter/instances", admin, "")
		if code != http.StatusOK || !strings.Contains(body, `"g-1"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	// A mesh token configures any node of its mesh (MESHLENS_TOKEN).
	startProxyEnv(t, s, "mesh/au/virtualNode/other", []string{"MESHLENS_TOKEN=" + meshTok}, true, "--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--register=false")

	// The greeter's token registers the greeter only.
	inst := `{"address":"127.0.0.1","port":1}`
	if code, _, body := apiCall(t, s, http.MethodPut, "/v1/meshes/au/virtualNodes/other/instances/x", greeterTok, inst); code != http.StatusForbidden {
		t.Fatalf("greeter's token registering other: %d %s", code, body)
	}
	if code, _, body := apiCall(t, s, http.MethodPost, "/v1/apply", greeterTok, authMesh); code != http.StatusForbidden {
		t.Fatalf("a bootstrap token applying resources: %d %s", code, body)
	}
	for reason, want := range map[string]float64{"invalid": 1, "missing": 1, "wrong_node": 2} {
		series := `meshlens_xds_auth_failures_total{reason="` + reason + `"}`
		if v := metricValue(t, s, admin, series); v < want {
			t.Errorf("%s = %v, want at least %v", series, v, want)
		}
	}
}

// TestAuthRefusesOpenBinds: without a token file the server refuses API
// and xDS addresses other hosts can reach, naming the flag and what to
// do; --insecure-allow-unauthenticated or --auth-tokens lets it start.
func TestAuthRefusesOpenBinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ flag, addr string }{{"--api-addr", "0.0.0.0:0"}, {"--xds-addr", "[::]:0"}} {
		args := []string{"server", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", tc.flag, tc.addr}
		r := runCLI(t, nil, "", args...)
		want := tc.flag + " " + tc.addr + ": not a loopback address, and no authentication is configured"
		if r.code == 0 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "--auth-tokens FILE") ||
			!strings.Contains(r.stderr, "--insecure-allow-unauthenticated") {
			t.Fatalf("%s %s without auth: exit %d\n%s", tc.flag, tc.addr, r.code, r.stderr)
		}
	}
	// Allowed: the lab override, and a token file.
	s := startServerWith(t, &server{dataDir: t.TempDir(), args: []string{"--api-addr", "0.0.0.0:0", "--insecure-allow-unauthenticated"}})
	waitLog(t, s, "serving without authentication on an address other hosts can reach")
	// A token file that does not exist yet turns authentication on, and
	// the server warns that nobody can get in.
	file := filepath.Join(t.TempDir(), "tokens.json")
	s = startServerWith(t, &server{dataDir: t.TempDir(), args: []string{"--xds-addr", "0.0.0.0:0", "--auth-tokens", file}})
	waitLog(t, s, "authentication is on but the token file has no token")
	// A token file that does not parse stops the server at start.
	if err := os.WriteFile(file, []byte(`{"version":1,"tokens":[{"id":"x"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, "", "server", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--auth-tokens", file)
	if r.code == 0 || !strings.Contains(r.stderr, "--auth-tokens: token file") || !strings.Contains(r.stderr, "tokens[0].id") {
		t.Fatalf("server with a bad token file: exit %d\n%s", r.code, r.stderr)
	}
}

// waitLog waits for s to log a line containing msg.
func waitLog(t testing.TB, s *server, msg string) {
	t.Helper()
	eventually(t, 10*time.Second, "server logs "+msg, func() error {
		if !strings.Contains(s.logs.String(), msg) {
			return errors.New(s.logs.String())
		}
		return nil
	})
}

// writeTestCA writes a CA and a server certificate for 127.0.0.1 it
// signed, as PEM files in dir, and returns their paths.
func writeTestCA(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshlens e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "meshlens control plane"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER)
}

// TestAuthTLS: the API and xDS served with TLS from certificate files;
// the CLI with --ca-file talks to the API over https and fails without
// it; a proxy with --ca-file and its token is configured over TLS xDS and
// registers over https, and its spans reach the builtin trace store over
// the xDS address's TLS.
func TestAuthTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestCA(t, dir)
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	tokens := filepath.Join(dir, "tokens.json")
	admin := newToken(t, nil, "--auth-tokens", tokens, "--role", "admin")
	s := startServerWith(t, &server{dataDir: filepath.Join(dir, "store"), scheme: "https", client: hc,
		args: []string{"--auth-tokens", tokens, "--api-tls-cert", certFile, "--api-tls-key", keyFile, "--xds-tls-cert", certFile, "--xds-tls-key", keyFile}})

	env := []string{"MESHLENS_SERVER=" + s.URL(), "MESHLENS_TOKEN=" + admin}
	if r := runCLI(t, env, authMesh, "--ca-file", caFile, "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("CLI apply over TLS: exit %d\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, append(env, "MESHLENS_CA_FILE="+caFile), "", "get", "virtualnodes", "--mesh", "au"); r.code != 0 || !strings.Contains(r.stdout, "greeter") {
		t.Fatalf("CLI get over TLS (MESHLENS_CA_FILE): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, env, "", "get", "meshes"); r.code == 0 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("CLI without --ca-file: exit %d\n%s", r.code, r.stderr)
	}
	node := newToken(t, append(env, "MESHLENS_CA_FILE="+caFile), "--node", "au/greeter")
	startProxy(t, s, "mesh/au/virtualNode/greeter", true, "--token", node, "--ca-file", caFile,
		"--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--instance-id", "tls-1")
	eventually(t, 10*time.Second, "the greeter registered over https", func() error {
		resp, err := hc.Do(func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, s.URL()+"/v1/meshes/au/virtualNodes/greeter/instances", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			return req
		}())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(data), `"tls-1"`) {
			return fmt.Errorf("%s", data)
		}
		return nil
	})

	if r := runCLI(t, env, authTracingMesh, "--ca-file", caFile, "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("CLI apply over TLS: exit %d\n%s", r.code, r.stderr)
	}
	webTok := newToken(t, append(env, "MESHLENS_CA_FILE="+caFile), "--node", "at/web")
	app := startEchoApp(t, "web")
	web := startProxy(t, s, "mesh/at/virtualNode/web", true, "--token", webTok, "--ca-file", caFile,
		"--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+app.addr, "--register=false")
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	sendTraced(t, web.listenerAddr(t, "lds_ingress_*"), traceID)
	eventually(t, 30*time.Second, "the sidecar's span in the trace store, sent over TLS", func() error {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/api/traces/"+traceID, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"at/web"`) {
			return fmt.Errorf("%d %s", resp.StatusCode, data)
		}
		return nil
	})
}

// TestAuthSDS: with the mesh CA on, a secret stream needs a token bound
// to the node it names: one node's token asking for another node's
// identity is refused before any secret is sent, and so is no token.
func TestAuthSDS(t *testing.T) {
	t.Parallel()
	s, admin := startAuthServer(t, "--ca-generate-key")
	adminEnv := []string{"MESHLENS_SERVER=" + s.URL(), "MESHLENS_TOKEN=" + admin}
	if r := runCLI(t, adminEnv, authMesh, "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	greeterTok := newToken(t, adminEnv, "--node", "au/greeter")
	conn, err := grpc.NewClient(s.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		name, token string
		want        codes.Code
	}{
		{"another node's token", greeterTok, codes.PermissionDenied},
		{"no token", "", codes.Unauthenticated},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if tc.token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.token)
		}
		stream, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		err = stream.Send(&discoveryv3.DiscoveryRequest{
			Node: &corev3.Node{Id: "mesh/au/virtualNode/other", UserAgentName: "envoy"}, TypeUrl: resourcev3.SecretType,
			ResourceNames: []string{"meshlens/mesh-ca/identity"},
		})
		if err != nil && err != io.EOF {
			cancel()
			t.Fatal(err)
		}
		r, err := stream.Recv()
		cancel()
		if r != nil || status.Code(err) != tc.want {
			t.Fatalf("%s: SDS for another node: %v, %v; want %v and no secret", tc.name, r, err, tc.want)
		}
		if tc.token != "" && !strings.Contains(err.Error(), "not bound to node mesh/au/virtualNode/other") {
			t.Fatalf("%s: %v does not say which node", tc.name, err)
		}
	}
}
