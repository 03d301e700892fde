package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Network namespaces for the capture tests: real iptables rules need a
// network of their own, which only root can make. The test process
// itself enters a namespace on a locked thread to start a process there
// or to open a socket there (a socket stays in the namespace it was
// created in); that thread is never returned to the Go runtime.

// requireNetns skips the test unless it runs as root with ip and
// iptables; with MESHLENS_REQUIRE_COLLECTORS set it fails instead, so
// that CI never passes by skipping.
func requireNetns(t *testing.T) {
	t.Helper()
	fail := func(msg string) {
		if os.Getenv(requireCollectorsEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		fail("capture tests need root: they create network namespaces and install iptables rules")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-save", "iptables-restore", "curl", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			fail(tool + " is not installed (scripts/install-test-deps.sh installs it)")
		}
	}
	// The proxy is started again as another user: it must be able to
	// run the binary in its temporary directory.
	if err := os.Chmod(filepath.Dir(binary), 0o755); err != nil {
		t.Fatal(err)
	}
}

// netns is a network namespace the test created.
type netns struct {
	name string
}

// newNetns creates a namespace with its loopback up, deleted when the
// test ends (which kills nothing: the test stops its processes first).
func newNetns(t *testing.T, name string) *netns {
	t.Helper()
	ns := &netns{name: fmt.Sprintf("%s-%d", name, os.Getpid())}
	mustRun(t, "ip", "netns", "add", ns.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns.name).Run() })
	ns.ip(t, "link", "set", "lo", "up")
	return ns
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ip runs `ip -n <ns> args`.
func (ns *netns) ip(t *testing.T, args ...string) {
	t.Helper()
	mustRun(t, "ip", append([]string{"-n", ns.name}, args...)...)
}

// exec runs a program in the namespace as root and returns its output.
func (ns *netns) exec(t *testing.T, name string, args ...string) string {
	t.Helper()
	return mustRun(t, "ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
}

// natRules is the namespace's nat table as `iptables -S` prints it.
func (ns *netns) natRules(t *testing.T) string {
	t.Helper()
	return ns.exec(t, "iptables", "-w", "5", "-t", "nat", "-S")
}

// do runs fn on a thread that has entered the namespace. The thread is
// discarded afterwards, so no other goroutine ever runs in the
// namespace by accident.
func (ns *netns) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with the goroutine.
		f, err := os.Open(filepath.Join("/var/run/netns", ns.name))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// start starts cmd in the namespace.
func (ns *netns) start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := ns.do(cmd.Start); err != nil {
		t.Fatalf("start %s in %s: %v", cmd.Path, ns.name, err)
	}
}

// listen opens a listener in the namespace.
func (ns *netns) listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := ns.do(func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// listenPacket opens a packet socket in the namespace.
func (ns *netns) listenPacket(t *testing.T, network, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := ns.do(func() (err error) { pc, err = net.ListenPacket(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// dial connects from inside the namespace (addr must be an IP:port).
func (ns *netns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// httpClient sends requests from inside the namespace.
func (ns *netns) httpClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: ns.dial, DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
}

// forward makes addr (in the host's namespace) reachable at local (in
// this namespace): the test's stand-in for a network route from a task
// to its control plane, which keeps binding loopback.
func (ns *netns) forward(t *testing.T, local, addr string) {
	t.Helper()
	ln := ns.listen(t, "tcp", local)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
				io.Copy(c, up)
				<-done
			}()
		}
	}()
}

// vethPair links two namespaces: a gets addrA, b gets addrB (both in
// one /24), and each routes by default through the other, as a task's
// network routes through its gateway.
func vethPair(t *testing.T, a, b *netns, addrA, addrB string) {
	t.Helper()
	vethLink(t, a, b, addrA, addrB)
	b.ip(t, "route", "add", "default", "via", addrA)
}

// vethLinks numbers the links so that each has names of its own.
var vethLinks atomic.Int32

// vethLink links two namespaces: a gets addrA, b gets addrB (both in one
// /24), and a routes by default through b.
func vethLink(t *testing.T, a, b *netns, addrA, addrB string) {
	t.Helper()
	n := vethLinks.Add(1)
	va, vb := fmt.Sprintf("vma%d-%d", n, os.Getpid()%100000), fmt.Sprintf("vmb%d-%d", n, os.Getpid()%100000)
	mustRun(t, "ip", "link", "add", va, "netns", a.name, "type", "veth", "peer", "name", vb, "netns", b.name)
	a.ip(t, "addr", "add", addrA+"/24", "dev", va)
	b.ip(t, "addr", "add", addrB+"/24", "dev", vb)
	a.ip(t, "link", "set", va, "up")
	b.ip(t, "link", "set", vb, "up")
	a.ip(t, "route", "add", "default", "via", addrB)
}
