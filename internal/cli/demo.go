package cli

import (
	"context"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/internal/demo"
	"github.com/meshlens/meshlens/internal/demo/apps"
	"github.com/meshlens/meshlens/internal/lifeline"
)

func newDemoCmd(e *env) *cobra.Command {
	var opts demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole mesh on this machine: control plane, greeter apps, sidecars, gateway and load",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(cmd, e.stderr)
			if err != nil {
				return err
			}
			opts.Log, opts.Out = log, e.stdout
			if opts.RPS == 0 {
				opts.RPS = -1 // --rps 0: no load
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := demo.Run(ctx, opts); err != nil {
				return runError{err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", "", "keep the demo's store and logs here (default: a temporary directory, removed at exit)")
	f.IntVar(&opts.APIPort, "api-port", 7070, "control plane API port")
	f.IntVar(&opts.XDSPort, "xds-port", 15010, "control plane xDS port")
	f.IntVar(&opts.GatewayPort, "gateway-port", 8080, "ingress gateway port")
	f.IntVar(&opts.PortBase, "port-base", 20000, "first of the ~25 consecutive ports used by apps, sidecars and admin endpoints")
	f.StringVar(&opts.PrometheusURL, "prometheus-url", "", "the control plane reads the console's traffic from this Prometheus (which scrapes the proxies' /stats/prometheus) instead of its built-in history")
	f.Float64Var(&opts.RPS, "rps", 5, "steady load through the gateway, requests per second (0: none)")
	return cmd
}

// newDemoAppCmd runs one of the demo's applications; the demo starts it
// as a child process, and tests use it as a real upstream.
func newDemoAppCmd(e *env) *cobra.Command {
	var cfg apps.Config
	var listen string
	cmd := &cobra.Command{
		Use:    "demo-app",
		Short:  "Run one demo application (greeter, greeting or name)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			ctx, err := watchLifeline(ctx, e, nil)
			if err != nil {
				return err
			}
			if err := apps.Serve(ctx, listen, cfg); err != nil {
				return runError{err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Role, "role", "", "greeter, greeting or name")
	f.StringVar(&cfg.Instance, "instance", "", "instance id shown in answers")
	f.StringArrayVar(&cfg.Words, "word", nil, "a word the greeting or name service answers with (repeatable)")
	f.StringVar(&cfg.Proxy, "proxy", "", "greeter: HTTP proxy (the sidecar's egress) to reach backends through")
	f.StringVar(&cfg.GreetingURL, "greeting-url", "", "greeter: greeting service URL")
	f.StringVar(&cfg.NameURL, "name-url", "", "greeter: name service URL")
	f.StringVar(&listen, "listen", "127.0.0.1:9080", "address to serve on")
	return cmd
}

// watchLifeline returns ctx, ended also when the process that started
// this one with a lifeline (internal/lifeline: `meshlens demo`) is gone,
// as SIGTERM ends it. log may be nil.
func watchLifeline(ctx context.Context, e *env, log *slog.Logger) (context.Context, error) {
	ctx, cancel := context.WithCancel(ctx)
	err := lifeline.Watch(e.getenv, func() {
		if log != nil {
			log.Warn("the process that started this one is gone: stopping as on SIGTERM")
		}
		cancel()
	})
	if err != nil {
		cancel()
		return ctx, usageError{err}
	}
	return ctx, nil
}
