// Package e2e runs meshlens as real processes on loopback and drives them
// the way a user does: the CLI, the REST API, and xDS clients.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the meshlens binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "meshlens-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "meshlens")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/meshlens/meshlens/cmd/meshlens")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build meshlens:", err)
		return 1
	}
	setupProxyless()
	return m.Run()
}

// unusedAddr returns a loopback address where nothing listens, for tests
// of what a client does when it cannot connect. A process cannot bind it
// either: a process under test binds 127.0.0.1:0 and reports its address.
func unusedAddr(t testing.TB) string {
	t.Helper()
	// Bound, never listening, held until the test ends: connections are
	// refused and no other test's listener can be given the port.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// toolAddr returns a loopback address whose port was free a moment ago,
// for third-party programs (prometheus, statsd_exporter) that cannot
// report a port they picked themselves. Another process may take the
// port before the tool binds it; meshlens processes never use this.
func toolAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// logAddr finds the address a process logged as key= on its line with
// msg, e.g. api= on msg="control plane serving".
func logAddr(logs, msg, key string) string {
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, key+"="); ok {
				return v
			}
		}
	}
	return ""
}

// syncBuffer is a bytes.Buffer safe for a process writer and a test reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is a running `meshlens server` process.
type server struct {
	t       testing.TB
	dataDir string
	api     string
	xds     string
	cmd     *exec.Cmd
	logs    *syncBuffer
	done    chan struct{}
	// args are extra server flags; scheme and client (nil: http and
	// http.DefaultClient) are how the API is reached.
	args   []string
	scheme string
	client *http.Client
}

// startServer starts a control plane on dataDir, its API and xDS on
// ports the kernel picks, and waits until its API answers.
func startServer(t testing.TB, dataDir string) *server {
	t.Helper()
	return startServerWith(t, &server{dataDir: dataDir})
}

// startServerArgs is startServer with extra server flags.
func startServerArgs(t testing.TB, dataDir string, args ...string) *server {
	t.Helper()
	return startServerWith(t, &server{dataDir: dataDir, args: args})
}

// startServerWith starts s, a server with its data dir and, optionally,
// extra flags and how its API is reached, as startServer does.
func startServerWith(t testing.TB, s *server) *server {
	t.Helper()
	s.t = t
	if err := s.start(); err != nil {
		t.Fatalf("start server: %v\n%s", err, s.logs.String())
	}
	t.Cleanup(s.stop)
	return s
}

// start runs the server: on fresh ports the first time (it binds port 0
// and logs where it listens), on the same ones after a restart.
func (s *server) start() error {
	s.logs = &syncBuffer{}
	api, xds := s.api, s.xds
	if api == "" {
		api, xds = "127.0.0.1:0", "127.0.0.1:0"
	}
	s.cmd = exec.Command(binary, append([]string{"server", "--data-dir", s.dataDir, "--api-addr", api, "--xds-addr", xds, "--dns-interval", "500ms"}, s.args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("server exited: %s", s.cmd.ProcessState)
		default:
		}
		if s.api == "" {
			logs := s.logs.String()
			s.api, s.xds = logAddr(logs, "control plane serving", "api"), logAddr(logs, "control plane serving", "xds")
			if s.api == "" || s.xds == "" {
				s.api, s.xds = "", ""
				time.Sleep(20 * time.Millisecond)
				continue
			}
		}
		hc := s.client
		if hc == nil {
			hc = http.DefaultClient
		}
		resp, err := hc.Get(s.URL() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd.Process.Kill()
	<-s.done
	return errors.New("server did not answer /healthz within 20s")
}

// URL is the API's base URL.
func (s *server) URL() string {
	if s.scheme != "" {
		return s.scheme + "://" + s.api
	}
	return "http://" + s.api
}

// kill sends SIGKILL and waits for the process to go.
func (s *server) kill() {
	if s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// restart starts the server again on the same data dir and ports.
func (s *server) restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("restart server: %v\n%s", err, s.logs.String())
	}
}

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("server did not stop within 15s of SIGTERM\n%s", s.logs.String())
	}
}

// cliResult is what a CLI run printed and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs the meshlens CLI against s with stdin.
func (s *server) cli(t testing.TB, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "MESHLENS_SERVER="+s.URL())
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

// mustCLI runs the CLI and fails the test unless it exits 0.
func (s *server) mustCLI(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := s.cli(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("meshlens %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
}
