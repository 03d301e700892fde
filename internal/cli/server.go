package cli

import (
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/internal/controlplane"
	"github.com/meshlens/meshlens/internal/metricshistory"
	"github.com/meshlens/meshlens/internal/tracestore"
)

func newServerCmd(e *env) *cobra.Command {
	var cfg controlplane.Config
	otlp := true
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
			cfg.DisableOTLP = !otlp
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
	f.IntVar(&cfg.TraceStore.MaxSpans, "trace-store-spans", tracestore.DefaultMaxSpans, "most spans the built-in trace store keeps (oldest evicted first)")
	f.Int64Var(&cfg.TraceStore.MaxBytes, "trace-store-bytes", tracestore.DefaultMaxBytes, "most bytes of spans the built-in trace store keeps (oldest evicted first)")
	f.Int64Var(&cfg.TraceStore.MaxDiskBytes, "trace-store-disk-bytes", 0, "also keep spans on disk under the data dir, in at most this many bytes, and reload them at start (0: memory only)")
	f.BoolVar(&otlp, "otlp", true, "receive spans over OTLP (gRPC on the xDS address, HTTP POST /v1/traces on the API address) into the built-in trace store")
	f.StringVar(&cfg.OTLPAdvertiseAddr, "otlp-advertise-addr", "", "host:port proxies send spans to for the builtin tracing provider (default: the xDS address)")
	f.StringVar(&pprofAddr, "pprof-addr", "", "loopback address to serve Go's profiles on, under /debug/pprof/ (default: none)")
	f.StringVar(&cfg.PrometheusURL, "prometheus-url", "", "read the console's traffic from this Prometheus server (http://host:9090), which scrapes the proxies, instead of the built-in history")
	f.DurationVar(&cfg.MetricsHistory.Retention, "metrics-history-retention", metricshistory.DefaultRetention, "how far back the built-in history of the proxies' mesh metrics goes")
	f.DurationVar(&cfg.MetricsHistory.Resolution, "metrics-history-resolution", metricshistory.DefaultResolution, "the built-in history's time resolution")
	f.IntVar(&cfg.MetricsHistory.MaxSeries, "metrics-history-series", metricshistory.DefaultMaxSeries, "most series the built-in history keeps (the least recently active go first)")
	f.Int64Var(&cfg.MetricsHistory.MaxBytes, "metrics-history-bytes", metricshistory.DefaultMaxBytes, "most bytes the built-in history keeps (the least recently active series go first)")
	f.BoolVar(&cfg.CA.Enabled, "mesh-ca", false, "run the mesh certificate authority: SPIFFE identities for every virtual node and gateway over SDS, and ACM certificates and trust mapped to it (see docs/security.md)")
	f.StringVar(&cfg.CA.KeyFile, "ca-key-file", "", "file with the key (32 bytes, base64 or hex, mode 0600) that encrypts the mesh CA's private keys in the store (default: $MESHLENS_CA_KEY); implies --mesh-ca")
	f.BoolVar(&cfg.CA.GenerateKey, "ca-generate-key", false, "without --ca-key-file or $MESHLENS_CA_KEY, create the key in <data-dir>/ca.key (0600) and use it; implies --mesh-ca")
	f.DurationVar(&cfg.CA.Validity, "ca-validity", 24*time.Hour, "validity of the identities the mesh CA issues; they are renewed at half of it")
	f.StringArrayVar(&cfg.CA.Roots, "ca-root", nil, "use your own root for a mesh instead of a generated one: <mesh>=<certificate PEM file>,<private key PEM file> (repeatable); implies --mesh-ca")
	f.DurationVar(&cfg.DNSInterval, "dns-interval", controlplane.DefaultDNSInterval, "how often dns service discovery re-resolves hostnames")
	return cmd
}
