package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/sysmon"
)

// The proxy-only binary links the data plane and nothing of the control
// plane, the store, the console, the resource commands or the demo, nor
// their libraries (etcd, bbolt, the Prometheus client), nor
// go-control-plane's generated xDS types: that is what makes its idle
// sidecar smaller than one of the full binary.
func TestLinksOnlyTheDataPlane(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	forbidden := []string{
		"github.com/meshlens/meshlens/internal/cli",
		"github.com/meshlens/meshlens/internal/controlplane",
		"github.com/meshlens/meshlens/internal/xds",
		"github.com/meshlens/meshlens/internal/store",
		"github.com/meshlens/meshlens/internal/registry",
		"github.com/meshlens/meshlens/internal/console",
		"github.com/meshlens/meshlens/internal/consoleui",
		"github.com/meshlens/meshlens/internal/demo",
		"github.com/meshlens/meshlens/internal/meshca",
		"github.com/meshlens/meshlens/internal/tracestore",
		"github.com/meshlens/meshlens/internal/metricshistory",
		"github.com/meshlens/meshlens/internal/auth",
		"go.etcd.io/",
		"github.com/prometheus/client_golang",
		// The proxy decodes xDS into internal/xdsproto's mirror types:
		// go-control-plane's generated packages, and the packages they
		// import, register their descriptors at start-up (about 7 MB of
		// an idle sidecar's RSS; docs/design.md).
		"github.com/envoyproxy/",
		"github.com/cncf/xds/",
		"cel.dev/expr",
		"google.golang.org/genproto/googleapis/api/expr/",
		// The generator and the test conversions link go-control-plane.
		"github.com/meshlens/meshlens/internal/xdsproto/gen",
		"github.com/meshlens/meshlens/internal/xdsproto/xdsprototest",
	}
	var sawSidecar bool
	for _, d := range deps {
		sawSidecar = sawSidecar || d == "github.com/meshlens/meshlens/internal/sidecar"
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, strings.TrimSuffix(f, "/")+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) {
				t.Errorf("meshlens-proxy links %s (forbidden: %s)", d, f)
			}
		}
	}
	if !sawSidecar {
		t.Errorf("meshlens-proxy does not link internal/sidecar; deps: %v", deps)
	}
}

// Built as the Makefile builds it (BUILDTAGS), the binary links neither
// gRPC's request tracing (golang.org/x/net/trace) nor html/template, which
// that brings; without the tags it would: the tags are what keeps them
// out (docs/design.md).
func TestBuildTagsLeaveOutRequestTracing(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var tags string
	for _, l := range strings.Split(string(mk), "\n") {
		if v, ok := strings.CutPrefix(l, "BUILDTAGS ?= "); ok {
			tags = strings.TrimSpace(v)
		}
	}
	if !strings.Contains(tags, "grpcnotrace") {
		t.Fatalf("Makefile's BUILDTAGS is %q, want grpcnotrace", tags)
	}
	if !strings.Contains(string(mk), "export GOFLAGS := $(strip $(GOFLAGS) -tags=$(BUILDTAGS))") {
		t.Error("Makefile does not export BUILDTAGS in GOFLAGS")
	}
	list := func(tags string) []string {
		cmd := exec.Command("go", "list", "-tags", tags, "-deps", ".")
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -tags %q -deps: %v", tags, err)
		}
		return strings.Fields(string(out))
	}
	if deps := list(tags); slices.Contains(deps, "golang.org/x/net/trace") || slices.Contains(deps, "html/template") {
		t.Errorf("built with -tags %s, meshlens-proxy links request tracing", tags)
	}
	if deps := list(""); !slices.Contains(deps, "golang.org/x/net/trace") {
		t.Error("without build tags meshlens-proxy does not link golang.org/x/net/trace: the tag no longer does anything")
	}
}

// The binary starts again in place with the runtime's monitor kept awake
// (internal/sysmon): same PID, GODEBUG extended in the environment it was
// started with, and the monitor thread waking every 10 ms instead of
// sleeping deeply; the proxy then serves as usual. --sysmon-awake=false
// keeps the process as it was started.
func TestStartsAgainWithTheMonitorAwake(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the restart is Linux only")
	}
	bin := proxyBinary(t)
	start := func(t *testing.T, extra ...string) (int, string) {
		t.Helper()
		cmd, _ := startProxy(t, bin, []string{"GODEBUG=gctrace=0"}, append([]string{"--node", "mesh/m/virtualNode/n"}, extra...)...)
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range strings.Split(string(environ), "\x00") {
			if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
				return cmd.Process.Pid, v
			}
		}
		return cmd.Process.Pid, ""
	}

	t.Run("awake", func(t *testing.T) {
		pid, godebug := start(t)
		if godebug != "gctrace=0,"+sysmon.Setting {
			t.Fatalf("GODEBUG of the running process %q, want gctrace=0,%s", godebug, sysmon.Setting)
		}
		// The monitor is the runtime's first thread after the main one.
		// Awake, it naps 10 ms at a time when the process is idle.
		wakes := monitorWakes(t, pid, time.Second)
		if wakes < 50 {
			t.Errorf("the monitor thread woke %d times in a second, want about 100", wakes)
		}
	})
	t.Run("--sysmon-awake=false", func(t *testing.T) {
		_, godebug := start(t, "--sysmon-awake=false")
		if godebug != "gctrace=0" {
			t.Errorf("GODEBUG of the running process %q, want gctrace=0 as started", godebug)
		}
	})
}

// monitorWakes counts the voluntary context switches of the process's
// second thread over d.
func monitorWakes(t *testing.T, pid int, d time.Duration) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n != pid {
			tids = append(tids, n)
		}
	}
	if len(tids) == 0 {
		t.Fatal("no thread besides the main one")
	}
	tid := slices.Min(tids)
	count := func() int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n
			}
		}
		t.Fatal("no voluntary_ctxt_switches")
		return 0
	}
	before := count()
	time.Sleep(d)
	return count() - before
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A sidecar runs on one core unless told otherwise (--concurrency, then
// ENVOY_CONCURRENCY, then GOMAXPROCS), a gateway on every core; the
// admin endpoint's server_info says which, as Envoy's does.
func TestCores(t *testing.T) {
	bin := proxyBinary(t)
	const sidecar, gateway = "mesh/m/virtualNode/n", "mesh/m/virtualGateway/g"
	every := func(t *testing.T) int {
		_, admin := startProxy(t, bin, nil, "--node", sidecar, "--concurrency", "0")
		return serverConcurrency(t, admin)
	}(t)
	if every < 1 {
		t.Fatalf("--concurrency 0 runs on %d cores", every)
	}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want int
	}{
		{"sidecar", nil, []string{"--node", sidecar}, 1},
		{"sidecar, ENVOY_CONCURRENCY", []string{"ENVOY_CONCURRENCY=3"}, []string{"--node", sidecar}, 3},
		{"sidecar, GOMAXPROCS", []string{"GOMAXPROCS=2"}, []string{"--node", sidecar}, 2},
		{"sidecar, the flag wins", []string{"ENVOY_CONCURRENCY=3", "GOMAXPROCS=4"}, []string{"--node", sidecar, "--concurrency", "2"}, 2},
		{"gateway", nil, []string{"--node", gateway}, every},
		{"sidecar, --concurrency 0 over GOMAXPROCS", []string{"GOMAXPROCS=1"}, []string{"--node", sidecar, "--concurrency", "0"}, every},
		{"sidecar, ENVOY_CONCURRENCY=0 over GOMAXPROCS", []string{"ENVOY_CONCURRENCY=0", "GOMAXPROCS=1"}, []string{"--node", sidecar}, every},
		{"gateway, ENVOY_CONCURRENCY", []string{"ENVOY_CONCURRENCY=1"}, []string{"--node", gateway}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, admin := startProxy(t, bin, tc.env, tc.args...)
			if got := serverConcurrency(t, admin); got != tc.want {
				t.Errorf("server_info concurrency %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("ENVOY_CONCURRENCY not a number", func(t *testing.T) {
		cmd := exec.Command(bin, "--node", sidecar, "--xds-addr", freeAddr(t), "--admin-addr", freeAddr(t), "--ingress-addr", "none", "--register=false", "--sysmon-awake=false")
		cmd.Env = append(proxyEnv(), "ENVOY_CONCURRENCY=many")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), `ENVOY_CONCURRENCY="many"`) {
			t.Errorf("started with ENVOY_CONCURRENCY=many: %v\n%s", err, out)
		}
	})
}

// serverConcurrency is command_line_options.concurrency of the proxy's
// server_info.
func serverConcurrency(t *testing.T, admin string) int {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/server_info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		Options struct {
			Concurrency int `json:"concurrency"`
		} `json:"command_line_options"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatalf("server_info: %v", err)
	}
	return info.Options.Concurrency
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// proxyBinary is the package built once for the tests that start it.
func proxyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "meshlens-proxy-test")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "meshlens-proxy")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proxyEnv is the test's environment without the variables that choose
// the proxy's cores.
func proxyEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "ENVOY_CONCURRENCY=") {
			env = append(env, kv)
		}
	}
	return env
}

// startProxy starts the binary with no control plane reachable, env
// added to proxyEnv and args after the common ones, and waits for its
// admin endpoint, whose address it returns with the command.
func startProxy(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	admin := freeAddr(t)
	cmd := exec.Command(bin, append([]string{"--xds-addr", freeAddr(t),
		"--admin-addr", admin, "--ingress-addr", "none", "--register=false"}, args...)...)
	cmd.Env = append(proxyEnv(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/server_info")
		if err == nil {
			resp.Body.Close()
			return cmd, admin
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin endpoint never answered: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
