// Package etcdtest starts real etcd clusters on loopback for tests: the
// store's contract tests and the end-to-end high-availability test run
// against the etcd server Debian ships (etcd-server), as processes of
// their own that a test can kill with SIGKILL and start again.
//
// It is a test helper shared by two packages (internal/store and
// test/e2e), so it lives in a package named for what it does.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// RequireEnv, when set (make test and CI set it), turns a missing etcd
// binary into a failure instead of a skip, as for the trace collectors.
const RequireEnv = "MESHLENS_REQUIRE_COLLECTORS"

// BinaryEnv overrides the etcd binary's path.
const BinaryEnv = "MESHLENS_ETCD"

// Binary returns the etcd server binary: $MESHLENS_ETCD, or etcd on PATH
// (Debian's etcd-server, installed by scripts/install-test-deps.sh). It
// skips the test when there is none, or fails it when RequireEnv is set.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinaryEnv); p != "" {
		return p
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		msg := fmt.Sprintf("no etcd server binary (apt-get install etcd-server, or set %s): %v", BinaryEnv, err)
		if os.Getenv(RequireEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// Etcdctl returns the etcdctl binary (Debian's etcd-client), skipping or
// failing the test as Binary does when there is none.
func Etcdctl(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("etcdctl")
	if err != nil {
		msg := fmt.Sprintf("no etcdctl (apt-get install etcd-client): %v", err)
		if os.Getenv(RequireEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// SaveSnapshot runs etcdctl snapshot save against the member into path.
func (m *Member) SaveSnapshot(t testing.TB, path string) {
	t.Helper()
	cmd := exec.Command(Etcdctl(t), "--endpoints", m.ClientURL, "snapshot", "save", path)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("etcdctl snapshot save: %v: %s", err, out)
	}
}

// Member is one etcd server process of a Cluster.
type Member struct {
	Name      string
	ClientURL string // http://127.0.0.1:PORT
	PeerURL   string
	dataDir   string
	logPath   string

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{}
}

// Cluster is a running etcd cluster of real processes.
type Cluster struct {
	Members []*Member
	bin     string
	initial string // --initial-cluster
	token   string
}

// Start starts an n-member cluster, each member on its own loopback
// ports and data dir under t.TempDir(), and waits until every member
// reports itself healthy. The processes are killed at cleanup.
//
// Ports are found by listening on 127.0.0.1:0 and closing the listener
// (etcd cannot be handed a listener); a member that still loses its port
// to another process makes the whole start be tried again with new ones.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return startFrom(t, n, "")
}

// StartRestored starts a one-member cluster whose data dir etcdctl
// snapshot restore made from snapshot, as an operator restores a backup.
func StartRestored(t testing.TB, snapshot string) *Cluster {
	t.Helper()
	return startFrom(t, 1, snapshot)
}

func startFrom(t testing.TB, n int, snapshot string) *Cluster {
	t.Helper()
	bin := Binary(t)
	var lastErr error
	for attempt := range 3 {
		c, err := start(t, bin, n, attempt, snapshot)
		if err == nil {
			return c
		}
		lastErr = err
	}
	t.Fatalf("etcd cluster of %d: %v", n, lastErr)
	return nil
}

func start(t testing.TB, bin string, n, attempt int, snapshot string) (*Cluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	c := &Cluster{bin: bin, token: fmt.Sprintf("meshlens-test-%d-%d", os.Getpid(), attempt)}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: "http://127.0.0.1:" + strconv.Itoa(ports[2*i]),
			PeerURL:   "http://127.0.0.1:" + strconv.Itoa(ports[2*i+1]),
			dataDir:   filepath.Join(dir, fmt.Sprintf("m%d", i)),
			logPath:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	c.initial = strings.Join(initial, ",")
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
		}
	})
	for _, m := range c.Members {
		if snapshot != "" {
			out, err := exec.Command(Etcdctl(t), "snapshot", "restore", snapshot,
				"--name", m.Name, "--initial-cluster", c.initial, "--initial-cluster-token", c.token,
				"--initial-advertise-peer-urls", m.PeerURL, "--data-dir", m.dataDir).CombinedOutput()
			if err != nil {
				return nil, fmt.Errorf("etcdctl snapshot restore: %v: %s", err, out)
			}
		}
		if err := c.launch(m, "new"); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, m := range c.Members {
		if err := m.waitHealthy(deadline); err != nil {
			for _, m := range c.Members {
				m.Kill()
			}
			return nil, err
		}
	}
	return c, nil
}

// freePorts returns n distinct loopback ports that were free a moment
// ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) launch(m *Member, state string) error {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("etcd %s: log: %w", m.Name, err)
	}
	cmd := exec.Command(c.bin,
		"--name", m.Name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", c.initial,
		"--initial-cluster-state", state,
		"--initial-cluster-token", c.token,
		// Short elections: a killed member's leadership moves in
		// about a second, as the tests need.
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--logger", "zap",
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("etcd %s: start: %w", m.Name, err)
	}
	exit := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(exit)
	}()
	m.mu.Lock()
	m.cmd, m.exit = cmd, exit
	m.mu.Unlock()
	return nil
}

// waitHealthy polls the member's /health until it answers healthy (it
// has a leader and serves reads) or deadline passes.
func (m *Member) waitHealthy(deadline time.Time) error {
	client := &http.Client{Timeout: time.Second}
	for {
		m.mu.Lock()
		exit := m.exit
		m.mu.Unlock()
		select {
		case <-exit:
			log, _ := os.ReadFile(m.logPath)
			return fmt.Errorf("etcd %s exited: %s", m.Name, tail(log, 2000))
		default:
		}
		resp, err := client.Get(m.ClientURL + "/health")
		if err == nil {
			var b [256]byte
			k, _ := resp.Body.Read(b[:])
			_ = resp.Body.Close()
			if strings.Contains(string(b[:k]), `"health":"true"`) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(m.logPath)
			return fmt.Errorf("etcd %s not healthy in time (%v): %s", m.Name, err, tail(log, 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientURL
	}
	return out
}

// Kill sends SIGKILL to the member and waits for it to exit; killing a
// stopped member does nothing.
func (m *Member) Kill() {
	m.mu.Lock()
	cmd, exit := m.cmd, m.exit
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exit
}

// Restart starts a killed member again on its data dir and ports and
// waits until it is healthy.
func (c *Cluster) Restart(m *Member) error {
	m.Kill()
	if err := c.launch(m, "existing"); err != nil {
		return err
	}
	return m.waitHealthy(time.Now().Add(20 * time.Second))
}

// Client returns a client of the whole cluster, closed at cleanup.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cl, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// Compact compacts the cluster's history up to its current revision, as
// an operator's etcdctl compact or etcd's auto-compaction does.
func Compact(ctx context.Context, cl *clientv3.Client) (int64, error) {
	resp, err := cl.Get(ctx, "\x00")
	if err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	rev := resp.Header.Revision
	if _, err := cl.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return 0, fmt.Errorf("compact at %d: %w", rev, err)
	}
	return rev, nil
}
