package harness

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// env is every process of the data-plane benchmarks, started once.
type env struct {
	dir      string // scratch: logs, data dir, configs
	meshlens string // the built binary
	// proxyBin and proxyArgs start a sidecar: the proxy-only build with
	// no arguments, or meshlens with "proxy" in a repository without it.
	proxyBin  string
	proxyArgs []string
	self      string // this program, re-executed as the upstream app
	apiURL    string
	xdsAddr   string
	server    *proc
	app       *proc
	appAddrs  [3]string // http, grpc, tcp
	sidecars  map[string]*sidecar
	haInner   *proc
	haOuter   *proc
	// relay is the Go floor of an HTTP/1.1 hop (bench/gorelay), at
	// relayAddr, to the application's HTTP/1.1 address.
	relay     *proc
	relayAddr string
	haIn      haFrontends
	haOut     haFrontends
	egress    string
	egressTCP string
	// proxyFlags are the flags the proxy offers that the harness may use.
	hasStatsFlag, hasPprofFlag bool
	extraFlags                 []string
	extraEnv                   []string
}

// sidecar is one running meshlens proxy.
type sidecar struct {
	node    string
	admin   string
	ingress string // "" for the client
	p       *proc
}

// buildTags are the build tags of the Makefile's BUILDTAGS, which `make
// build` builds the binaries with: the benchmark measures what is
// shipped, whoever runs it.
const buildTags = "grpcnotrace"

// buildMeshlens builds the binary without the race detector.
func buildMeshlens(ctx context.Context, repo, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", buildTags, "-o", out, "./cmd/meshlens")
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build meshlens: %w\n%s", err, b)
	}
	return nil
}

// proxyOnlyMain is the package of the proxy-only build, the binary a
// sidecar is deployed with.
const proxyOnlyMain = "cmd/meshlens-proxy"

// buildProxy builds the proxy-only binary as the Makefile does (static:
// CGO_ENABLED=0) when the repository has it, and reports whether it does.
func buildProxy(ctx context.Context, repo, out string) (bool, error) {
	if _, err := os.Stat(filepath.Join(repo, proxyOnlyMain, "main.go")); err != nil {
		return false, nil
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", buildTags, "-o", out, "./"+proxyOnlyMain)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return false, fmt.Errorf("go build meshlens-proxy: %w\n%s", err, b)
	}
	return true, nil
}

// sidecarBinary says, for the report, what the sidecars run.
func (e *env) sidecarBinary() string {
	if len(e.proxyArgs) == 0 {
		return "meshlens-proxy (" + proxyOnlyMain + ", CGO_ENABLED=0, -tags " + buildTags + ", as `make build` builds it)"
	}
	return "meshlens proxy (the full binary: this repository has no " + proxyOnlyMain + ")"
}

// proxyHelp reports which optional flags the sidecar's command has.
func (e *env) proxyHelp() (string, error) {
	b, err := exec.Command(e.proxyBin, append(slices.Clone(e.proxyArgs), "--help")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --help: %w", e.proxyBin, err)
	}
	return string(b), nil
}

func startEnv(ctx context.Context, repo, dir string) (*env, error) {
	e := &env{dir: dir, sidecars: map[string]*sidecar{}}
	e.meshlens = filepath.Join(dir, "meshlens")
	slog.Info("building meshlens", "out", e.meshlens)
	if err := buildMeshlens(ctx, repo, e.meshlens); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	e.self = self
	e.proxyBin, e.proxyArgs = filepath.Join(dir, "meshlens-proxy"), nil
	if ok, err := buildProxy(ctx, repo, e.proxyBin); err != nil {
		return nil, err
	} else if !ok {
		e.proxyBin, e.proxyArgs = e.meshlens, []string{"proxy"}
	}
	slog.Info("sidecars", "run", e.sidecarBinary())
	help, err := e.proxyHelp()
	if err != nil {
		return nil, err
	}
	e.hasStatsFlag = strings.Contains(help, "--stats")
	e.hasPprofFlag = strings.Contains(help, "--pprof")
	if err := e.startServer(ctx); err != nil {
		e.close()
		return nil, err
	}
	if err := e.applyMesh(ctx, ""); err != nil {
		e.close()
		return nil, err
	}
	if err := e.startApp(ctx); err != nil {
		e.close()
		return nil, err
	}
	if err := e.startSidecars(ctx); err != nil {
		e.close()
		return nil, err
	}
	if err := e.startHAProxies(ctx); err != nil {
		e.close()
		return nil, err
	}
	if err := e.startRelay(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) startServer(ctx context.Context) error {
	api, err := freePort()
	if err != nil {
		return err
	}
	xds, err := freePort()
	if err != nil {
		return err
	}
	e.apiURL, e.xdsAddr = "http://"+api, xds
	e.server, err = startProc(e.dir, "server", e.meshlens, "server", "--data-dir", filepath.Join(e.dir, "data"),
		"--api-addr", api, "--xds-addr", xds, "--log-level", "warn")
	if err != nil {
		return err
	}
	return waitFor(ctx, 20*time.Second, "control plane", func() error {
		if e.server.exited() {
			return fmt.Errorf("server exited: %s", e.server.tail())
		}
		resp, err := plainHTTP.Get(e.apiURL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
}

// applyMesh applies the benchmark mesh with `meshlens apply -f`.
func (e *env) applyMesh(ctx context.Context, accessLogDir string) error {
	return e.applyMeshTracing(ctx, accessLogDir, nil)
}

// applyMeshTracing applies the benchmark mesh with a tracing setting
// (nil: the mesh's default).
func (e *env) applyMeshTracing(ctx context.Context, accessLogDir string, tracing *tracingSetting) error {
	f := filepath.Join(e.dir, "mesh.yaml")
	if err := os.WriteFile(f, []byte(meshYAML(accessLogDir, tracing)), 0o644); err != nil {
		return fmt.Errorf("write mesh: %w", err)
	}
	cmd := exec.CommandContext(ctx, e.meshlens, "apply", "-f", f, "--server", e.apiURL)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("meshlens apply: %w\n%s", err, b)
	}
	return nil
}

func (e *env) startApp(ctx context.Context) error {
	for i := range e.appAddrs {
		a, err := freePort()
		if err != nil {
			return err
		}
		e.appAddrs[i] = a
	}
	var err error
	e.app, err = startProc(e.dir, "upstream", e.self, "upstream", "-http", e.appAddrs[0], "-grpc", e.appAddrs[1], "-tcp", e.appAddrs[2])
	if err != nil {
		return err
	}
	for _, a := range e.appAddrs {
		if err := waitTCP(ctx, a); err != nil {
			return fmt.Errorf("upstream app: %w: %s", err, e.app.tail())
		}
	}
	return nil
}

// startRelay starts the Go floor relay (meshbench relay, on one core as
// the sidecars run) in front of the application's HTTP/1.1 address.
func (e *env) startRelay(ctx context.Context) error {
	a, err := freePort()
	if err != nil {
		return err
	}
	e.relayAddr = a
	e.relay, err = startProcEnv(e.dir, "gorelay", []string{"GOMAXPROCS=1"}, e.self, "relay", "-listen", a, "-to", e.appAddrs[0])
	if err != nil {
		return err
	}
	if err := waitTCP(ctx, a); err != nil {
		return fmt.Errorf("go relay: %w: %s", err, e.relay.tail())
	}
	return nil
}

// appFor is the upstream address that serves a server node's listener.
func (e *env) appFor(n serverNode) string {
	switch n.protocol {
	case "grpc":
		return e.appAddrs[1]
	case "tcp":
		return e.appAddrs[2]
	}
	return e.appAddrs[0]
}

func (e *env) startSidecars(ctx context.Context) error {
	var err error
	if e.egress == "" {
		if e.egress, err = freePort(); err != nil {
			return err
		}
		if e.egressTCP, err = freePort(); err != nil {
			return err
		}
	}
	for _, n := range serverNodes {
		sc := e.sidecars[n.name]
		if sc == nil {
			sc = &sidecar{node: n.name}
			if sc.admin, err = freePort(); err != nil {
				return err
			}
			if sc.ingress, err = freePort(); err != nil {
				return err
			}
			e.sidecars[n.name] = sc
		}
		if err := e.startSidecar(sc, "--ingress-addr", sc.ingress, "--egress-addr", "none",
			"--app", fmt.Sprintf("%d=%s", n.port, e.appFor(n))); err != nil {
			return err
		}
	}
	c := e.sidecars[clientNode]
	if c == nil {
		c = &sidecar{node: clientNode}
		if c.admin, err = freePort(); err != nil {
			return err
		}
		e.sidecars[clientNode] = c
	}
	if err := e.startSidecar(c, "--ingress-addr", "none", "--egress-addr", e.egress,
		"--egress-port", fmt.Sprintf("%d=%s", portTCP, e.egressTCP), "--register=false"); err != nil {
		return err
	}
	for _, sc := range e.sidecars {
		if err := waitLive(ctx, sc); err != nil {
			return err
		}
	}
	// Endpoints reach the client sidecar by EDS after the sidecars
	// register: wait until every path routes.
	return e.waitRoutes(ctx)
}

func (e *env) startSidecar(sc *sidecar, flags ...string) error {
	args := append(slices.Clone(e.proxyArgs), "--node", nodeID(sc.node), "--xds-addr", e.xdsAddr, "--server", e.apiURL,
		"--admin-addr", sc.admin, "--drain-timeout", "1s", "--log-level", "warn")
	args = append(args, flags...)
	args = append(args, e.extraFlags...)
	p, err := startProcEnv(e.dir, "sidecar-"+sc.node, e.extraEnv, e.proxyBin, args...)
	if err != nil {
		return err
	}
	sc.p = p
	return nil
}

func waitLive(ctx context.Context, sc *sidecar) error {
	return waitFor(ctx, 30*time.Second, "sidecar "+sc.node+" LIVE", func() error {
		if sc.p.exited() {
			return fmt.Errorf("sidecar exited: %s", sc.p.tail())
		}
		resp, err := plainHTTP.Get("http://" + sc.admin + "/server_info")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"LIVE"`) {
			// The state and the sidecar's last log lines, so that a
			// sidecar that never goes live says why.
			state := "no state"
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, `"state"`) {
					state = strings.TrimSpace(l)
				}
			}
			return fmt.Errorf("not LIVE yet (%s); sidecar log: %s", state, sc.p.tail())
		}
		return nil
	})
}

// waitRoutes sends one request of every protocol over every meshlens path
// until all succeed.
func (e *env) waitRoutes(ctx context.Context) error {
	for _, p := range []string{pathML1, pathML2} {
		for _, s := range probeScenarios {
			d, err := e.dialer(p, s)
			if err != nil {
				return err
			}
			err = waitFor(ctx, 30*time.Second, fmt.Sprintf("%s over %s", s.Proto, p), func() error {
				c, err := d(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				return c.Do(rctx)
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *env) startHAProxies(ctx context.Context) error {
	addrs := make([]string, 8)
	for i := range addrs {
		a, err := freePort()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	e.haIn = haFrontends{HTTP: addrs[0], H2C: addrs[1], GRPC: addrs[2], TCP: addrs[3]}
	e.haOut = haFrontends{HTTP: addrs[4], H2C: addrs[5], GRPC: addrs[6], TCP: addrs[7]}
	app := haTargets{HTTP: e.appAddrs[0], H2C: e.appAddrs[0], GRPC: e.appAddrs[1], TCP: e.appAddrs[2]}
	var err error
	if e.haInner, err = startHAProxy(e.dir, "haproxy-inner", e.haIn, app); err != nil {
		return err
	}
	if e.haOuter, err = startHAProxy(e.dir, "haproxy-outer", e.haOut, e.haIn); err != nil {
		return err
	}
	for _, a := range addrs {
		if err := waitTCP(ctx, a); err != nil {
			return fmt.Errorf("haproxy: %w: %s %s", err, e.haInner.tail(), e.haOuter.tail())
		}
	}
	return nil
}

// restartSidecars stops every sidecar and starts them again with extra
// flags (stats off, pprof) and environment, then waits until every path
// routes.
func (e *env) restartSidecars(ctx context.Context, extra, env []string) error {
	for _, sc := range e.sidecars {
		sc.p.stop()
	}
	e.extraFlags, e.extraEnv = extra, env
	return e.startSidecars(ctx)
}

func (e *env) close() {
	for _, sc := range e.sidecars {
		if sc.p != nil {
			sc.p.stop()
		}
	}
	for _, p := range []*proc{e.relay, e.haOuter, e.haInner, e.app, e.server} {
		p.stop()
	}
}
