package harness

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/meshlens/meshlens/bench/xdssim"
)

// runXDS runs the control-plane simulator once per N, each time against a
// fresh control plane loaded with the same mesh.
func runXDS(ctx context.Context, o Options, work string, res *Results, save func()) error {
	bin := filepath.Join(work, "meshlens")
	if err := buildMeshlens(ctx, o.Repo, bin); err != nil {
		return err
	}
	var failed int
	replicas := o.XDSReplicas
	if len(replicas) == 0 {
		replicas = []int{1}
	}
	for _, reps := range replicas {
		for _, n := range o.XDSStreams {
			r, err := runXDSOnce(ctx, o, work, bin, n, reps)
			run := XDSRun{Result: r}
			if err != nil {
				run.Error = err.Error()
				failed++
				res.Failures = append(res.Failures, fmt.Sprintf("xds N=%d replicas=%d: %v", n, reps, err))
			}
			res.XDS = append(res.XDS, run)
			save()
			slog.Info("xds simulation", "streams", n, "replicas", reps, "route_p99_ms", r.Route.P99, "endpoint_p99_ms", r.Endpoint.P99, "rss_mb", r.RSSPeakMB, "err", err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d simulations failed", failed, len(o.XDSStreams)*len(replicas))
	}
	return nil
}

func runXDSOnce(ctx context.Context, o Options, work, bin string, n, replicas int) (*xdssim.Result, error) {
	if replicas > 1 {
		return runXDSReplicas(ctx, o, work, bin, n, replicas)
	}
	res := &xdssim.Result{Streams: n}
	dir := filepath.Join(work, fmt.Sprintf("xds-%d", n))
	api, err := freePort()
	if err != nil {
		return res, err
	}
	xds, err := freePort()
	if err != nil {
		return res, err
	}
	if err := mkdir(dir); err != nil {
		return res, err
	}
	args := []string{"server", "--data-dir", filepath.Join(dir, "data"),
		"--api-addr", api, "--xds-addr", xds, "--log-level", "warn", "--max-body-bytes", "67108864"}
	var pprofAddr string
	if o.XDSProfile != "" {
		if pprofAddr, err = freePort(); err != nil {
			return res, err
		}
		args = append(args, "--pprof-addr", pprofAddr)
	}
	srv, err := startProc(dir, "server", bin, args...)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	if err := waitTCP(ctx, api); err != nil {
		return res, fmt.Errorf("control plane: %w: %s", err, srv.tail())
	}
	cfg := xdssim.Config{
		APIURL: "http://" + api, XDSAddr: xds,
		Usage: func() (time.Duration, int64, error) {
			u, err := readUsage(srv.pid())
			return u.CPU, u.RSS, err
		},
		Services: o.XDSServices, EndpointsPerNode: o.XDSEndpointsPerNode, Backends: 5,
		Streams: n, Timeout: o.XDSTimeout,
	}
	if o.XDSProfile != "" {
		cfg.AroundChange = profileChange(o, pprofAddr, n)
	}
	if err := xdssim.Load(ctx, cfg, res); err != nil {
		return res, fmt.Errorf("load mesh: %w (%s)", err, srv.tail())
	}
	if err := xdssim.Run(ctx, cfg, res); err != nil {
		return res, fmt.Errorf("simulate: %w (%s)", err, srv.tail())
	}
	return res, nil
}

// profileChange returns a hook that profiles the control plane (through
// its --pprof-addr, for o.XDSProfileSeconds) and the simulator itself
// (until every stream converged) during each change, writing
// xds-<N>-<change>-{server,sim}.pprof into o.XDSProfile.
func profileChange(o Options, pprofAddr string, n int) func(string) func() {
	secs := o.XDSProfileSeconds
	if secs <= 0 {
		secs = 5
	}
	return func(name string) func() {
		base := filepath.Join(o.XDSProfile, fmt.Sprintf("xds-%d-%s", n, name))
		if err := os.MkdirAll(o.XDSProfile, 0o755); err != nil {
			slog.Warn("profile", "error", err)
			return func() {}
		}
		// Heap profiles after a forced collection, before and after the
		// change: `go tool pprof -sample_index=alloc_space -base
		// ...-server-heap-before.pprof ...-server-heap.pprof` shows what
		// the change allocated.
		fetchProfile(fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", pprofAddr), base+"-server-heap-before.pprof")
		srvDone := make(chan struct{})
		go func() {
			defer close(srvDone)
			fetchProfile(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, secs), base+"-server.pprof")
		}()
		// Let the server's profile start before the change is made.
		time.Sleep(100 * time.Millisecond)
		f, err := os.Create(base + "-sim.pprof")
		if err == nil {
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				f = nil
				slog.Warn("simulator profile", "error", err)
			}
		}
		return func() {
			if f != nil {
				pprof.StopCPUProfile()
				f.Close()
			}
			<-srvDone
			fetchProfile(fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", pprofAddr), base+"-server-heap.pprof")
		}
	}
}

// fetchProfile saves the profile served at url into path.
func fetchProfile(url, path string) {
	c := &http.Client{Timeout: 5 * time.Minute}
	resp, err := c.Get(url)
	if err != nil {
		slog.Warn("server profile", "error", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		slog.Warn("server profile", "error", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		slog.Warn("server profile", "error", err)
	}
}
