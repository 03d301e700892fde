package cli

import (
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/internal/controlplane"
)

func newServerCmd(e *env) *cobra.Command {
	var cfg controlplane.Config
	var pprofAddr string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: store, REST API and xDS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(cmd, e.stderr)
			if err != nil {
				return err
			}
			cfg.Logger = log
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if pprofAddr != "" {
				ln, err := listenPprof(pprofAddr)
				if err != nil {
					return err
				}
				go servePprof(ctx, ln, log)
			}
			s, err := controlplane.New(ctx, cfg)
			if err != nil {
				return runError{err}
			}
			if err := s.Run(ctx); err != nil {
				return runError{err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "meshlens-data", "directory of the durable store (created if missing)")
	f.StringVar(&cfg.APIAddr, "api-addr", controlplane.DefaultAPIAddr, "address of the REST API")
	f.StringVar(&cfg.XDSAddr, "xds-addr", controlplane.DefaultXDSAddr, "address of the xDS (ADS) gRPC server")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", controlplane.DefaultMaxBodyBytes, "largest API request body")
	f.StringVar(&pprofAddr, "pprof-addr", "", "loopback address to serve Go's profiles on, under /debug/pprof/ (default: none)")
	f.DurationVar(&cfg.DNSInterval, "dns-interval", controlplane.DefaultDNSInterval, "how often dns service discovery re-resolves hostnames")
	return cmd
}
