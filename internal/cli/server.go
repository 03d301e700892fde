package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/internal/auth"
	"github.com/meshlens/meshlens/internal/certfile"
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
	var tokensFile, apiCert, apiKey, apiCA, xdsCert, xdsKey string
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
			if tokensFile != "" {
				if cfg.Auth, err = auth.Open(tokensFile); err != nil {
					return usagef("--auth-tokens: %v", err)
				}
			}
			if cfg.APITLS, err = serverTLS("--api-tls-cert", apiCert, "--api-tls-key", apiKey, log); err != nil {
				return err
			}
			if cfg.PeerTLS, err = peerTLS(apiCA); err != nil {
				return err
			}
			if cfg.XDSTLS, err = serverTLS("--xds-tls-cert", xdsCert, "--xds-tls-key", xdsKey, log); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			ctx, err = watchLifeline(ctx, e, log)
			if err != nil {
				return err
			}
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
	f.StringVar(&cfg.ReplicaID, "replica-id", "", "this replica's name among those sharing an etcd store (default: hostname:api-port)")
	f.StringVar(&cfg.AdvertiseAPIAddr, "advertise-api-addr", "", "host:port the other replicas reach this one's API at (default: --api-addr, with the hostname for a wildcard host)")
	f.DurationVar(&cfg.ReplicaTTL, "replica-ttl", controlplane.DefaultReplicaTTL, "how long after its last keep-alive a replica that died leaves the peer list and the leadership (whole seconds)")
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
	f.BoolVar(&cfg.CA.XDSClientCerts, "xds-client-certs", false, "on the TLS xDS address, accept a client certificate issued by the mesh CA in place of a token: proxies bootstrap with their token and reconnect with their identity (needs --xds-tls-cert and the mesh CA)")
	f.StringArrayVar(&cfg.CA.Roots, "ca-root", nil, "use your own root for a mesh instead of a generated one: <mesh>=<certificate PEM file>,<private key PEM file> (repeatable); implies --mesh-ca")
	f.DurationVar(&cfg.DNSInterval, "dns-interval", controlplane.DefaultDNSInterval, "how often dns service discovery re-resolves hostnames")
	f.StringVar(&tokensFile, "auth-tokens", "", "token file (created if missing; see meshlens token): every API request and xDS stream must then present a token (docs/auth.md)")
	f.BoolVar(&cfg.InsecureAllowUnauthenticated, "insecure-allow-unauthenticated", false, "let --api-addr and --xds-addr bind addresses other than loopback without --auth-tokens (lab use only: anyone who reaches them can read and change the mesh)")
	f.StringVar(&apiCert, "api-tls-cert", "", "PEM certificate (chain) the REST API serves TLS with (with --api-tls-key)")
	f.StringVar(&apiKey, "api-tls-key", "", "PEM private key of --api-tls-cert")
	f.StringVar(&apiCA, "api-tls-ca", "", "PEM CA bundle a replica verifies the other replicas' API certificates with (default: the system's roots)")
	f.StringVar(&xdsCert, "xds-tls-cert", "", "PEM certificate (chain) the xDS gRPC server serves TLS with (with --xds-tls-key)")
	f.StringVar(&xdsKey, "xds-tls-key", "", "PEM private key of --xds-tls-cert")
	return cmd
}

// etcdOptions turns the --store and --etcd-* flags into the etcd store's
// options, or nil for the embedded store.
func etcdOptions(storeURL, ca, cert, key, user string) (*store.EtcdOptions, error) {
	if storeURL == "" || storeURL == "bolt" {
		if ca != "" || cert != "" || key != "" || user != "" {
			return nil, errors.New("--etcd-* flags need --store etcd://host:port")
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

// serverTLS loads a server certificate and key into a TLS 1.2+
// configuration; neither file given is no TLS.
// peerTLS is how a replica verifies the other replicas' API
// certificates: with the CA bundle in file, or the system's roots.
func peerTLS(file string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if file == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("--api-tls-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, usagef("--api-tls-ca %s: no PEM certificate in it", file)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

func serverTLS(certFlag, cert, keyFlag, key string, log *slog.Logger) (*tls.Config, error) {
	switch {
	case cert == "" && key == "":
		return nil, nil
	case cert == "":
		return nil, usagef("%s: given without %s", keyFlag, certFlag)
	case key == "":
		return nil, usagef("%s: given without %s", certFlag, keyFlag)
	}
	// The files are read again when they change (certfile), so that a
	// rotated certificate is served without a restart.
	r, err := certfile.Load(cert, key, log)
	if err != nil {
		return nil, usagef("%s %s, %s %s: %v", certFlag, cert, keyFlag, key, err)
	}
	return r.Config(), nil
}
