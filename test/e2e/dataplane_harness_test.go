package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proxyProc is a running `meshlens proxy`.
type proxyProc struct {
	t     testing.TB
	admin string
	cmd   *exec.Cmd
	logs  *syncBuffer
	done  chan struct{}
}

// startProxy starts a proxy for node against s with extra flags and, if
// waitLive, waits until its admin endpoint reports LIVE.
func startProxy(t testing.TB, s *server, node string, waitLive bool, flags ...string) *proxyProc {
	t.Helper()
	return startProxyEnv(t, s, node, nil, waitLive, flags...)
}

// startProxyEnv is startProxy with extra environment variables (NAME=value)
// on top of the test's. The admin endpoint binds a port the kernel picks;
// startProxyEnv returns once the proxy has logged it.
func startProxyEnv(t testing.TB, s *server, node string, env []string, waitLive bool, flags ...string) *proxyProc {
	t.Helper()
	return startProxyCmd(t, []string{binary, "proxy"}, s, node, env, waitLive, flags...)
}

// startProxyCmd is startProxyEnv with the command that runs the proxy:
// the meshlens binary and "proxy", or the proxy-only binary alone.
func startProxyCmd(t testing.TB, command []string, s *server, node string, env []string, waitLive bool, flags ...string) *proxyProc {
	t.Helper()
	p := &proxyProc{t: t, logs: &syncBuffer{}}
	args := append(append(command[1:len(command):len(command)], "--node", node, "--xds-addr", s.xds, "--server", s.URL(), "--admin-addr", "127.0.0.1:0", "--drain-timeout", "2s"), flags...)
	p.cmd = exec.Command(command[0], args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	eventually(t, 20*time.Second, "proxy admin address in its log", func() error {
		select {
		case <-p.done:
			t.Fatalf("proxy exited: %s\n%s", p.cmd.ProcessState, p.logs.String())
		default:
		}
		if p.admin = logAddr(p.logs.String(), "proxy starting", "admin"); p.admin == "" {
			return errors.New("no \"proxy starting\" line yet")
		}
		return nil
	})
	if waitLive {
		p.waitLive(t)
	}
	return p
}

// listenerAddrs returns the addresses the proxy's listener named name
// (or, with a trailing "*", every listener with that prefix) is bound to,
// as /listeners prints them: the listener's own socket first, then its
// --listen or --egress-port sockets by port.
func (p *proxyProc) listenerAddrs(t testing.TB, name string) []string {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/listeners")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		ln, addrs, ok := strings.Cut(line, "::")
		if !ok {
			continue
		}
		if ln == name || (strings.HasSuffix(name, "*") && strings.HasPrefix(ln, strings.TrimSuffix(name, "*"))) {
			out = append(out, strings.Split(addrs, ",")...)
		}
	}
	return out
}

// listenerAddr is the one address of listener name (see listenerAddrs);
// the test fails unless there is exactly one.
func (p *proxyProc) listenerAddr(t testing.TB, name string) string {
	t.Helper()
	addrs := p.listenerAddrs(t, name)
	if len(addrs) != 1 {
		t.Fatalf("listener %s bound to %v, want one address", name, addrs)
	}
	return addrs[0]
}

// waitEndpoint waits until the proxy has endpoint addr, healthy, in one
// of its clusters (as /clusters shows it): a proxy is live with its
// first configuration, and an instance registered before it started may
// still reach it by a later EDS update.
func (p *proxyProc) waitEndpoint(t testing.TB, addr string) {
	t.Helper()
	eventually(t, 20*time.Second, "endpoint "+addr+" in the proxy's clusters", func() error {
		resp, err := http.Get("http://" + p.admin + "/clusters")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "::"+addr+"::health_flags::healthy\n") {
			return fmt.Errorf("not in /clusters:\n%s", b)
		}
		return nil
	})
}

func (p *proxyProc) waitLive(t testing.TB) {
	t.Helper()
	eventually(t, 20*time.Second, "proxy LIVE", func() error {
		select {
		case <-p.done:
			t.Fatalf("proxy exited: %s\n%s", p.cmd.ProcessState, p.logs.String())
		default:
		}
		info, err := p.serverInfo()
		if err != nil {
			return err
		}
		if info.State != "LIVE" {
			return fmt.Errorf("state %s; log:\n%s", info.State, p.logs.String())
		}
		return nil
	})
}

type serverInfo struct {
	State string `json:"state"`
}

func (p *proxyProc) serverInfo() (serverInfo, error) {
	var info serverInfo
	resp, err := http.Get("http://" + p.admin + "/server_info")
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&info)
	return info, err
}

func (p *proxyProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("proxy did not stop within 15s of SIGTERM\n%s", p.logs.String())
	}
}

// echoApp is an upstream HTTP application (HTTP/1.1 and h2c) that answers
// with its name, the method, path and protocol it saw, and counts requests.
type echoApp struct {
	name  string
	addr  string
	count chan struct{}
}

func startEchoApp(t testing.TB, name string) *echoApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &echoApp{name: name, addr: ln.Addr().String(), count: make(chan struct{}, 1<<16)}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case a.count <- struct{}{}:
			default:
			}
			io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%s %s %s %s", a.name, r.Method, r.URL.RequestURI(), r.Proto)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

func (a *echoApp) addrPort() int {
	_, p, _ := net.SplitHostPort(a.addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

// seen reports how many requests the app has received (and resets).
func (a *echoApp) seen() int {
	n := 0
	for {
		select {
		case <-a.count:
			n++
		default:
			return n
		}
	}
}

// proxyClient sends requests through a sidecar's egress as an HTTP proxy.
func proxyClient(egress string) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyURL(&url.URL{Scheme: "http", Host: egress}),
			MaxIdleConnsPerHost: 4,
		},
		Timeout: 10 * time.Second,
	}
}

// h2cClient speaks HTTP/2 with prior knowledge to addr, whatever the URL.
func h2cClient(addr string) *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func body(t testing.TB, resp *http.Response, err error) (int, string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}
