// Command meshbench runs the meshlens benchmark suite (see BENCHMARKS.md):
//
//	meshbench [-smoke] [-out DIR] [-markdown FILE] [-reps N] [-duration D] ...
//
// and, as children of itself, the upstream application the benchmarks end
// at and the Go floor relay of an HTTP/1.1 hop (bench/gorelay):
//
//	meshbench upstream -http ADDR -grpc ADDR -tcp ADDR
//	meshbench relay -listen ADDR -to ADDR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshlens/meshlens/bench/gorelay"
	"github.com/meshlens/meshlens/bench/harness"
	"github.com/meshlens/meshlens/bench/upstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "upstream" {
		err = runUpstream(ctx, os.Args[2:])
	} else if len(os.Args) > 1 && os.Args[1] == "relay" {
		err = runRelay(ctx, os.Args[2:])
	} else {
		err = run(ctx, os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshbench:", err)
		os.Exit(1)
	}
}

func runUpstream(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	var a upstream.Addrs
	fs.StringVar(&a.HTTP, "http", "127.0.0.1:18080", "HTTP/1.1 and h2c address")
	fs.StringVar(&a.GRPC, "grpc", "127.0.0.1:18082", "gRPC address")
	fs.StringVar(&a.TCP, "tcp", "127.0.0.1:18083", "TCP echo address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return upstream.Serve(ctx, a)
}

func runRelay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:18090", "address to accept HTTP/1.1 connections on")
	to := fs.String("to", "127.0.0.1:18080", "HTTP/1.1 address to relay to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return gorelay.Serve(ctx, *listen, *to)
}

// defaultProfileRate is the load of the sidecars' CPU profiles.
const defaultProfileRate = 1000

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("meshbench", flag.ContinueOnError)
	var o harness.Options
	smoke := fs.Bool("smoke", false, "run every scenario briefly once, with a small control-plane simulation; fail on any error")
	fs.StringVar(&o.Repo, "repo", "", "meshlens repository root (default: found from the working directory)")
	fs.StringVar(&o.Out, "out", "", "results directory (default bench/results, or bench/results-smoke with -smoke)")
	fs.StringVar(&o.Markdown, "markdown", "", "BENCHMARKS.md to regenerate (default: the repository's, unless -smoke or -out)")
	fs.IntVar(&o.Reps, "reps", 3, "repetitions of every run, paths interleaved")
	fs.DurationVar(&o.Duration, "duration", 4*time.Second, "measured time of each run")
	fs.IntVar(&o.Conns, "conns", 16, "connections of the load generator")
	xdsN := fs.String("xds-streams", "100,1000,5000", "comma-separated numbers of simulated sidecars")
	fs.IntVar(&o.XDSServices, "xds-services", 1000, "virtual services of the simulated mesh")
	fs.IntVar(&o.XDSEndpointsPerNode, "xds-endpoints", 10, "registered endpoints per virtual node of the simulated mesh")
	xdsReplicas := fs.String("xds-replicas", "1,3", "comma-separated control-plane setups of the simulation: 1 is one server with its bbolt file, R > 1 is R replicas sharing a three-member etcd cluster (etcd-server on PATH) with the sidecars spread over them")
	fs.DurationVar(&o.XDSTimeout, "xds-timeout", 5*time.Minute, "how long the simulator waits for streams to converge")
	fs.StringVar(&o.XDSProfile, "xds-profile", "", "directory for CPU profiles of the control plane and the simulator during each change (default: none)")
	fs.IntVar(&o.XDSProfileSeconds, "xds-profile-seconds", 5, "length of the control plane's CPU profile of each change")
	fs.Float64Var(&o.ProfileRate, "profile-rate", defaultProfileRate, "requests per second the sidecars' CPU profiles are taken under (0: as fast as the load generator goes)")
	fs.BoolVar(&o.SkipData, "skip-data", false, "skip the data-plane scenarios")
	fs.BoolVar(&o.SkipXDS, "skip-xds", false, "skip the control-plane simulation")
	fs.BoolVar(&o.SkipGoBench, "skip-gobench", false, "skip the Go microbenchmarks")
	fs.IntVar(&o.IdleConns, "idle-conns", 3000, "idle keep-alive connections the memory per connection of a sidecar and of HAProxy is measured with (0: skip; HAProxy's maxconn is 4000)")
	fs.DurationVar(&o.IdleConnSettle, "idle-conn-settle", 2*time.Second, "how long the idle connections stay open before the RSS is read")
	fs.StringVar(&o.Only, "only", "", "run only the scenarios whose id contains this")
	fs.Float64Var(&o.MaxForeignCPU, "max-foreign-cpu", 0.25, "redo a run during which other processes used more than this many cores")
	fs.IntVar(&o.Retries, "retries", 1, "how many times a disturbed run is redone")
	fs.DurationVar(&o.RetryPause, "retry-pause", 3*time.Second, "pause before redoing a disturbed run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Smoke = *smoke
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.Smoke {
		if !set["reps"] {
			o.Reps = 1
		}
		if !set["duration"] {
			o.Duration = time.Second
		}
		if !set["xds-streams"] {
			*xdsN = "20"
		}
		if !set["xds-services"] {
			o.XDSServices = 50
		}
		if !set["xds-endpoints"] {
			o.XDSEndpointsPerNode = 4
		}
		if !set["retries"] {
			o.Retries = 0 // the smoke checks that scenarios work, not figures
		}
		if !set["idle-conns"] {
			o.IdleConns = 20
		}
		if !set["idle-conn-settle"] {
			o.IdleConnSettle = 200 * time.Millisecond
		}
		if !set["xds-timeout"] {
			o.XDSTimeout = time.Minute
		}
	}
	for _, s := range strings.Split(*xdsN, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("-xds-streams: %w", err)
		}
		o.XDSStreams = append(o.XDSStreams, n)
	}
	for _, s := range strings.Split(*xdsReplicas, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("-xds-replicas %q: want positive numbers", *xdsReplicas)
		}
		o.XDSReplicas = append(o.XDSReplicas, n)
	}
	if o.Repo == "" {
		r, err := findRepo()
		if err != nil {
			return err
		}
		o.Repo = r
	}
	if o.Out == "" {
		o.Out = filepath.Join(o.Repo, "bench", "results")
		if o.Smoke {
			o.Out = filepath.Join(o.Repo, "bench", "results-smoke")
		}
	}
	// A run into another directory is an experiment: it leaves
	// BENCHMARKS.md alone unless told otherwise.
	if o.Markdown == "" && !o.Smoke && !set["out"] {
		o.Markdown = filepath.Join(o.Repo, "BENCHMARKS.md")
	}
	var err error
	if o.Out, err = filepath.Abs(o.Out); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	slog.Info("meshbench", "smoke", o.Smoke, "reps", o.Reps, "duration", o.Duration, "out", o.Out)
	return harness.Main(ctx, o)
}

// findRepo walks up from the working directory to the meshlens module.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/meshlens/meshlens\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the meshlens repository: pass -repo")
		}
		dir = parent
	}
}
