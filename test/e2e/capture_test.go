package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The mesh of the capture test: an application "greeting" on 8080 behind
// the virtual service greeting.demo.local, and a client allowed to call
// it, with App Mesh's ACM TLS, which the mesh CA serves: the hop between
// the sidecars is mutual TLS with SPIFFE identities. Nothing about either
// is in a real DNS or in /etc/hosts.
const captureMesh = `
kind: Mesh
name: demo
---
kind: VirtualNode
mesh: demo
name: greeting
spec:
  listeners:
    - portMapping: {port: 8080, protocol: http}
      tls:
        mode: STRICT
        certificate:
          acm: {certificateArn: "arn:aws:acm:us-west-2:123456789012:certificate/66666666-7777-8888-9999-000000000000"}
  serviceDiscovery: {awsCloudMap: {namespaceName: demo.local, serviceName: greeting}}
  logging:
    accessLog:
      file:
        path: /dev/stdout
        format: {text: "mesh-access %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\n"}
---
kind: VirtualService
mesh: demo
name: greeting.demo.local
spec: {provider: {virtualNode: {virtualNodeName: greeting}}}
---
kind: VirtualNode
mesh: demo
name: client
spec:
  backends:
    - virtualService:
        virtualServiceName: greeting.demo.local
        clientPolicy:
          tls:
            enforce: true
            validation:
              trust:
                acm:
                  certificateAuthorityArns: ["arn:aws:acm-pca:us-west-2:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555"]
              subjectAlternativeNames: {match: {exact: ["spiffe://demo/virtualNode/greeting"]}}
`

// Addresses of the two tasks on their shared link.
const (
	clientIP = "10.77.0.1"
	serverIP = "10.77.0.2"
	// A third task, with no sidecar, on a link of its own to the server.
	outsiderIP      = "10.78.0.3"
	serverOutsideIP = "10.78.0.2"
	appUID          = 1000 // the applications' user: not the proxy's 1337
)

// capturedProxy is a `meshlens proxy` in a namespace: with --capture,
// started as root, it installs the rules and runs the proxy as UID 1337;
// without, it is started as UID 1337 itself behind an init container's
// rules.
type capturedProxy struct {
	ns   *netns
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	// waitErr is cmd.Wait's error, set before done closes.
	waitErr error
}

// proxyWaitDelay bounds how long cmd.Wait waits, after the supervisor
// exits, for the proxy it started (which shares its output) to exit
// too: a proxy that outlives it fails the test instead of hanging it.
const proxyWaitDelay = 25 * time.Second

// startCapturedProxy starts `meshlens proxy --capture` as root.
func startCapturedProxy(t *testing.T, ns *netns, node string, env []string, flags ...string) *capturedProxy {
	t.Helper()
	return startProxyInNetns(t, ns, node, -1, env, append([]string{"--capture"}, flags...)...)
}

// startProxyInNetns starts `meshlens proxy` in ns, as uid (root when
// negative), and waits until it is LIVE.
func startProxyInNetns(t *testing.T, ns *netns, node string, uid int, env []string, flags ...string) *capturedProxy {
	t.Helper()
	p := &capturedProxy{ns: ns, logs: &syncBuffer{}, done: make(chan struct{})}
	args := append([]string{"proxy", "--node", node,
		"--xds-addr", "127.0.0.1:15010", "--server", "http://127.0.0.1:7070",
		"--admin-addr", "127.0.0.1:9901", "--drain-timeout", "1s"}, flags...)
	p.cmd = exec.Command(binary, args...)
	// Nothing of the test's environment: no proxy settings reach anyone.
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "APPMESH_IGNORE_UID=1337"}, env...)
	if uid >= 0 {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.WaitDelay = proxyWaitDelay
	ns.start(t, p.cmd)
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t, syscall.SIGTERM) })
	eventually(t, 30*time.Second, node+" LIVE under capture", func() error {
		select {
		case <-p.done:
			t.Fatalf("%s exited: %s\n%s", node, p.cmd.ProcessState, p.logs.String())
		default:
		}
		resp, err := ns.httpClient().Get("http://127.0.0.1:9901/server_info")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), `"LIVE"`) {
			return fmt.Errorf("server_info: %s", b)
		}
		return nil
	})
	return p
}

// stop signals the supervisor and waits for it (and so for its proxy).
func (p *capturedProxy) stop(t *testing.T, sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		// The proxy the supervisor runs, if it is still there, prints
		// where it is stuck (the Go runtime's answer to SIGQUIT) into
		// the log before it is killed.
		child := p.childPID()
		if child > 0 {
			_ = syscall.Kill(child, syscall.SIGQUIT)
			time.Sleep(2 * time.Second)
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("captured proxy (supervisor %d, proxy %d) did not stop within 20s of %s\n%s", p.cmd.Process.Pid, child, sig, p.logs.String())
		return
	}
	if errors.Is(p.waitErr, exec.ErrWaitDelay) {
		t.Errorf("the proxy the supervisor started outlived it by %v after %s\n%s", proxyWaitDelay, sig, p.logs.String())
	}
}

// childPID is the pid of the proxy a --capture supervisor started, as
// the supervisor logged it; 0 if it did not.
func (p *capturedProxy) childPID() int {
	m := regexp.MustCompile(`msg="proxy started under capture" pid=(\d+)`).FindStringSubmatch(p.logs.String())
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// stats is the proxy's /stats.
func (p *capturedProxy) stats(t *testing.T) string {
	t.Helper()
	resp, err := p.ns.httpClient().Get("http://127.0.0.1:9901/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// captureStat is the value of the stat named exactly name in /stats text,
// -1 when absent.
func captureStat(stats, name string) int {
	for _, line := range strings.Split(stats, "\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	return -1
}

// asApp runs a program in ns as the application's user, with an
// environment that holds nothing but PATH.
func asApp(t *testing.T, ns *netns, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: appUID, Gid: appUID, Groups: []uint32{}}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	ns.start(t, cmd)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return out.String(), errors.New("timed out")
	}
}

// Two tasks, each an application and its sidecar under capture, as ECS
// ran them with proxyConfiguration: the client application, a real curl
// with no proxy settings and no hosts entry, resolves the virtual
// service's name and calls it over plain HTTP; the name resolves through
// the client sidecar's DNS, the connection is captured by its egress
// listener, crosses to the server task's application port, is captured
// there by the ingress listener and reaches the application. Names
// outside the mesh resolve through the host's resolver. The server task
// runs `meshlens proxy --capture`; the client task an init container's
// `meshlens capture` and an unprivileged sidecar. `capture --remove`, and
// a --capture sidecar stopping on SIGTERM, leave each namespace's rules as
// before; a --capture sidecar killed outright leaves its rules, which the
// next start replaces with the same ones.
func TestCaptureTwoTasksByVirtualServiceName(t *testing.T) {
	requireNetns(t)
	if hosts, _ := os.ReadFile("/etc/hosts"); bytes.Contains(hosts, []byte("demo.local")) {
		t.Fatal("/etc/hosts names demo.local: the test must resolve it through the mesh alone")
	}
	// Without root --capture cannot install rules, and says what to do.
	notRoot := exec.Command(binary, "proxy", "--capture", "--node", "mesh/demo/virtualNode/client")
	notRoot.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: appUID, Gid: appUID, Groups: []uint32{}}}
	msg, err := notRoot.CombinedOutput()
	if code := notRoot.ProcessState.ExitCode(); err == nil || code != 2 || !strings.Contains(string(msg), "meshlens capture") {
		t.Fatalf("--capture as uid %d: exit %d, %q; want 2 and the init container advice", appUID, code, msg)
	}

	s := startServerWith(t, &server{dataDir: t.TempDir(), args: []string{"--ca-generate-key"}})
	s.mustCLI(t, captureMesh, "apply", "-f", "-")

	client, server := newNetns(t, "mlcapc"), newNetns(t, "mlcaps")
	vethPair(t, client, server, clientIP, serverIP)
	for _, ns := range []*netns{client, server} {
		ns.forward(t, "127.0.0.1:15010", s.xds)
		ns.forward(t, "127.0.0.1:7070", s.api)
	}
	clientBefore, serverBefore := client.natRules(t), server.natRules(t)

	// The server task's application, on 8080 of every address.
	appLn := server.listen(t, "tcp", "0.0.0.0:8080")
	seen := make(chan *http.Request, 16)
	go http.Serve(appLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- r:
		default:
		}
		fmt.Fprintf(w, "hello from greeting, you asked %s for %s", r.Host, r.URL.Path)
	}))
	// The host's resolver, which knows only names outside the mesh.
	upstream := server.listenPacket(t, "udp", serverIP+":53")
	dnsSrv := &dns.Server{PacketConn: upstream, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
		r := new(dns.Msg).SetReply(m)
		if q := m.Question[0]; q.Name == "outside.example." && q.Qtype == dns.TypeA {
			r.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 7)}}
		} else {
			r.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(r)
	})}
	go dnsSrv.ActivateAndServe()
	t.Cleanup(func() { dnsSrv.Shutdown() })

	// The server task runs `meshlens proxy --capture`; the client task
	// has an init container run `meshlens capture` and its sidecar runs
	// as 1337 from the start, serving DNS.
	srvEnv := []string{"APPMESH_APP_PORTS=8080"}
	srvFlags := []string{"--advertise-addr", serverIP, "--instance-id", "greeting-1"}
	srvProxy := startCapturedProxy(t, server, "mesh/demo/virtualNode/greeting", srvEnv, srvFlags...)
	client.exec(t, binary, "capture")
	once := client.natRules(t)
	client.exec(t, binary, "capture")
	if again := client.natRules(t); again != once {
		t.Fatalf("a second init run left other rules:\n%s\nfirst:\n%s", again, once)
	}
	cliProxy := startProxyInNetns(t, client, "mesh/demo/virtualNode/client", 1337, nil,
		"--register=false", "--dns-addr", "127.0.0.1:15053", "--dns-upstream", serverIP)
	for _, r := range []struct {
		ns   *netns
		want string
	}{
		{server, "-A MESHLENS_INBOUND -p tcp -m multiport --dports 8080 -j REDIRECT --to-ports 15000"},
		{client, "-A MESHLENS_OUTBOUND -p tcp -j REDIRECT --to-ports 15001"},
		{client, "-A MESHLENS_OUTBOUND -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053"},
	} {
		if rules := r.ns.natRules(t); !strings.Contains(rules, r.want+"\n") {
			t.Fatalf("%s: rules lack %q:\n%s", r.ns.name, r.want, rules)
		}
	}
	// The proxy under --capture runs as 1337, not as root.
	if !strings.Contains(srvProxy.logs.String(), "uid=1337") {
		t.Fatalf("server proxy not started as uid 1337:\n%s", srvProxy.logs.String())
	}
	if strings.Count(once, "-A OUTPUT -j MESHLENS_OUTBOUND") != 1 {
		t.Fatalf("client: the jump is not there once:\n%s", once)
	}

	// The client's sidecar learns the server's instance (registered at
	// its application port), then the application calls by name.
	var out string
	eventually(t, 30*time.Second, "curl http://greeting.demo.local:8080/hello through both sidecars", func() error {
		var err error
		out, err = asApp(t, client, "curl", "-sS", "--max-time", "5", "http://greeting.demo.local:8080/hello")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, "hello from greeting") {
			return fmt.Errorf("answer %q", out)
		}
		return nil
	})
	if want := "hello from greeting, you asked greeting.demo.local:8080 for /hello"; out != want {
		t.Fatalf("curl: %q, want %q", out, want)
	}
	r := <-seen
	// The application was called by its own sidecar, on loopback, which
	// verified the client sidecar's identity.
	if host, _, _ := net.SplitHostPort(r.RemoteAddr); host != "127.0.0.1" {
		t.Errorf("the application was called from %s, want its sidecar on 127.0.0.1", r.RemoteAddr)
	}
	xfcc := regexp.MustCompile(`^By=spiffe://demo/virtualNode/greeting;Hash=[0-9a-f]{64};URI=spiffe://demo/virtualNode/client$`)
	if got := r.Header.Get("X-Forwarded-Client-Cert"); !xfcc.MatchString(got) {
		t.Errorf("x-forwarded-client-cert %q, want the client's identity verified by greeting's sidecar", got)
	}
	// On the wire, the server task's port speaks only TLS, with
	// greeting's identity, and refuses plaintext.
	tlsConf := &tls.Config{InsecureSkipVerify: true}
	var peer *x509.Certificate
	if err := server.do(func() error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", serverIP+":15000", tlsConf)
		if err != nil {
			return err
		}
		defer c.Close()
		peer = c.ConnectionState().PeerCertificates[0]
		return nil
	}); err != nil {
		t.Fatalf("TLS to greeting's ingress: %v", err)
	}
	if len(peer.URIs) != 1 || peer.URIs[0].String() != "spiffe://demo/virtualNode/greeting" {
		t.Errorf("greeting's sidecar presents %v, want spiffe://demo/virtualNode/greeting", peer.URIs)
	}
	if resp, err := server.httpClient().Get("http://" + serverIP + ":15000/hello"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Errorf("plaintext to greeting's STRICT ingress answered %s %q", resp.Status, b)
	}

	// The name resolved to a mesh address through the sidecar's DNS.
	addrs, err := asApp(t, client, "getent", "ahostsv4", "greeting.demo.local")
	if err != nil || !strings.HasPrefix(addrs, "240.240.") {
		t.Fatalf("getent greeting.demo.local: %v %q, want a 240.240.0.0/16 address", err, addrs)
	}
	// A name outside the mesh is the host resolver's answer.
	if out, err := asApp(t, client, "getent", "ahostsv4", "outside.example"); err != nil || !strings.HasPrefix(out, "192.0.2.7 ") {
		t.Fatalf("getent outside.example: %v %q, want the upstream's 192.0.2.7", err, out)
	}
	cst := cliProxy.stats(t)
	if captureStat(cst, "dns.local_answers") < 1 || captureStat(cst, "dns.forwarded") < 1 {
		t.Errorf("client sidecar DNS stats: local_answers %d forwarded %d",
			captureStat(cst, "dns.local_answers"), captureStat(cst, "dns.forwarded"))
	}

	// The server's sidecar took the request on its ingress listener from
	// the client task's address, and logged it.
	sst := srvProxy.stats(t)
	if n := captureStat(sst, "http.ingress.http.8080.downstream_rq_2xx"); n < 1 {
		t.Errorf("server sidecar ingress 2xx = %d\n%s", n, grepLines(sst, "ingress"))
	}
	eventually(t, 10*time.Second, "server sidecar access log line", func() error {
		if !strings.Contains(srvProxy.logs.String(), "mesh-access GET /hello 200 "+clientIP) {
			return fmt.Errorf("no line yet:\n%s", srvProxy.logs.String())
		}
		return nil
	})

	// A third task with no sidecar, and so no identity, calls the server
	// task's address and application port, which the server's capture
	// takes to its ingress: STRICT refuses it and counts the failed
	// handshake; PERMISSIVE serves it, labelled as no mTLS in the mesh
	// metrics, while the client's sidecar keeps calling with mutual TLS.
	outsider := newNetns(t, "mlcapo")
	vethLink(t, outsider, server, outsiderIP, serverOutsideIP)
	const ingressSSL = "listener.0.0.0.0_15000.ssl."
	direct := "http://" + serverIP + ":8080/direct"
	failedBefore := captureStat(srvProxy.stats(t), ingressSSL+"connection_error")
	if out, err := asApp(t, outsider, "curl", "-sS", "--max-time", "5", direct); err == nil {
		t.Fatalf("STRICT: a caller without an identity was answered %q", out)
	}
	eventually(t, 10*time.Second, "the refused handshake counted", func() error {
		if n := captureStat(srvProxy.stats(t), ingressSSL+"connection_error"); n <= failedBefore {
			return fmt.Errorf("%sconnection_error %d, was %d", ingressSSL, n, failedBefore)
		}
		return nil
	})
	nextSeen := func(path string) *http.Request {
		t.Helper()
		for {
			select {
			case r := <-seen:
				if r.URL.Path == path {
					return r
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the application saw no request for %s", path)
			}
		}
	}
	s.mustCLI(t, strings.Replace(captureMesh, "mode: STRICT", "mode: PERMISSIVE", 1), "apply", "-f", "-")
	eventually(t, 30*time.Second, "PERMISSIVE serves a caller without an identity", func() error {
		out, err := asApp(t, outsider, "curl", "-sS", "--max-time", "5", direct)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, "hello from greeting") {
			return fmt.Errorf("answer %q", out)
		}
		return nil
	})
	if got := nextSeen("/direct").Header.Get("X-Forwarded-Client-Cert"); got != "" {
		t.Errorf("a plaintext caller reached the application with x-forwarded-client-cert %q", got)
	}
	handshakes := captureStat(srvProxy.stats(t), ingressSSL+"handshake")
	if out, err := asApp(t, client, "curl", "-sS", "--max-time", "5", "http://greeting.demo.local:8080/mesh"); err != nil || !strings.Contains(out, "hello from greeting") {
		t.Fatalf("PERMISSIVE: the mesh client's call: %v %q", err, out)
	}
	if got := nextSeen("/mesh").Header.Get("X-Forwarded-Client-Cert"); !xfcc.MatchString(got) {
		t.Errorf("PERMISSIVE: the mesh client's x-forwarded-client-cert %q, want its verified identity", got)
	}
	if n := captureStat(srvProxy.stats(t), ingressSSL+"handshake"); n <= handshakes {
		t.Errorf("PERMISSIVE: %shandshake %d, was %d: the mesh client did not use TLS", ingressSSL, n, handshakes)
	}
	resp, err := server.httpClient().Get("http://127.0.0.1:9901/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	prom, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`meshlens_requests_total\{reporter="destination",[^}]*source_workload="client"[^}]*connection_security_policy="mutual_tls"[^}]*\} [1-9]`,
		`meshlens_requests_total\{reporter="destination",[^}]*source_workload="unknown"[^}]*connection_security_policy="none"[^}]*\} [1-9]`,
	} {
		if !regexp.MustCompile(want).Match(prom) {
			t.Errorf("server sidecar's mesh metrics lack %s:\n%s", want, grepLines(string(prom), "meshlens_requests_total"))
		}
	}
	eventually(t, 10*time.Second, "server sidecar access log line of the outsider", func() error {
		if !strings.Contains(srvProxy.logs.String(), "mesh-access GET /direct 200 "+outsiderIP) {
			return fmt.Errorf("no line yet:\n%s", srvProxy.logs.String())
		}
		return nil
	})

	// The init container's rules go with `meshlens capture --remove`.
	cliProxy.stop(t, syscall.SIGTERM)
	client.exec(t, binary, "capture", "--remove")
	if after := client.natRules(t); after != clientBefore {
		t.Errorf("client rules after capture --remove:\n%s\nbefore:\n%s", after, clientBefore)
	}

	// A --capture sidecar killed outright leaves its rules, and its
	// proxy, the child it ran as 1337, is told to stop.
	installed := server.natRules(t)
	srvProxy.stop(t, syscall.SIGKILL)
	if rules := server.natRules(t); rules != installed {
		t.Fatalf("rules changed after SIGKILL:\n%s\nwere:\n%s", rules, installed)
	}
	eventually(t, 20*time.Second, "server proxy gone with its supervisor", func() error {
		resp, err := server.httpClient().Get("http://127.0.0.1:9901/server_info")
		if err != nil {
			return nil
		}
		resp.Body.Close()
		return errors.New("admin endpoint still answers")
	})
	// The next start replaces the leftovers with the same rules, once;
	// stopped with SIGTERM it removes them.
	srvProxy = startCapturedProxy(t, server, "mesh/demo/virtualNode/greeting", srvEnv, srvFlags...)
	if rules := server.natRules(t); rules != installed {
		t.Errorf("rules after a restart over leftovers:\n%s\nfirst install:\n%s", rules, installed)
	}
	srvProxy.stop(t, syscall.SIGTERM)
	if after := server.natRules(t); after != serverBefore {
		t.Errorf("server rules after SIGTERM:\n%s\nbefore:\n%s\nlog:\n%s", after, serverBefore, srvProxy.logs.String())
	}
	if !strings.Contains(srvProxy.logs.String(), "capture rules removed") {
		t.Errorf("server supervisor did not log the removal:\n%s", srvProxy.logs.String())
	}
}
