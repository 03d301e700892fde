package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/internal/controlplane"
	"github.com/meshlens/meshlens/internal/metricshistory"
	"github.com/meshlens/meshlens/internal/store"
	"github.com/meshlens/meshlens/internal/tracestore"
)

func newServerCmd(e *env) *cobra.Command {
	var cfg controlplane.Config
	otlp := true
	var pprofAddr string
	var storeURL, etcdCA, etcdCert, etcdKey, etcdUser string
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
			if cfg.Etcd, err = etcdOptions(storeURL, etcdCA, etcdCert, etcdKey, etcdUser); err != nil {
				return err
			}
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
	f.StringVar(&storeURL, "store", "bolt", "where resources are kept: bolt (a file in the data dir) or etcd://[user[:password]@]host:port[,host:port...][/prefix] (etcds:// for TLS), shared by every replica on that cluster and prefix")
	f.StringVar(&etcdCA, "etcd-cacert", "", "CA bundle that verifies the etcd members' certificates (implies TLS)")
	f.StringVar(&etcdCert, "etcd-cert", "", "client certificate for an etcd cluster that checks clients (with --etcd-key; implies TLS)")
	f.StringVar(&etcdKey, "etcd-key", "", "key of --etcd-cert")
	f.StringVar(&etcdUser, "etcd-user", "", "etcd user as user:password (overrides the URL's user; the password may also come from MESHLENS_ETCD_PASSWORD)")
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
	f.DurationVar(&cfg.DNSInterval, "dns-interval", controlplane.DefaultDNSInterval, "how often dns service discovery re-resolves hostnames")
	return cmd
}

// etcdOptions turns the --store and --etcd-* flags into the etcd store's
// options, or nil for the embedded store.
func etcdOptions(storeURL, ca, cert, key, user string) (*store.EtcdOptions, error) {
	if storeURL == "" || storeURL == "bolt" {
		if ca != "" || cert != "" || key != "" || user != "" {
			return nil, errors.New("--etcd-* flags need --store etcd://...")
		}
		return nil, nil
	}
	opts, err := store.ParseEtcdURL(storeURL)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	if ca != "" || cert != "" || key != "" {
		if opts.TLS, err = store.EtcdTLS(ca, cert, key); err != nil {
			return nil, fmt.Errorf("--%w", err)
		}
		for i, e := range opts.Endpoints {
			opts.Endpoints[i] = "https://" + strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://")
		}
	}
	if user != "" {
		name, pass, _ := strings.Cut(user, ":")
		if name == "" {
			return nil, errors.New("--etcd-user: user is empty (want user:password)")
		}
		opts.Username, opts.Password = name, pass
	}
	if p := os.Getenv("MESHLENS_ETCD_PASSWORD"); p != "" && opts.Password == "" {
		opts.Password = p
	}
	return &opts, nil
}
