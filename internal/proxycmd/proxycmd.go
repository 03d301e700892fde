// Package proxycmd is the `proxy` command: its flags, parsed into a
// sidecar.Config, and the call to sidecar.Run. Both binaries use it: the
// meshlens command line (internal/cli) as `meshlens proxy`, and the
// proxy-only build (cmd/meshlens-proxy), which links the data plane and
// nothing of the control plane, the store, the console or the resource
// commands, so that a sidecar maps fewer pages of code and data.
package proxycmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshlens/meshlens/internal/proxy"
	"github.com/meshlens/meshlens/internal/sidecar"
	"github.com/meshlens/meshlens/internal/sysmon"
)

// Env is what the command reads from the process.
type Env struct {
	Getenv         func(string) string
	Stdout, Stderr io.Writer
	// Version is reported by the admin endpoint's /server_info.
	Version string
	// Run runs the sidecar; nil is sidecar.Run.
	Run func(context.Context, sidecar.Config) error
	// Exec replaces the process (syscall.Exec), for --sysmon-awake; nil
	// (as in tests, which run the command inside the test binary) never
	// replaces it.
	Exec func(path string, argv, envv []string) error
}

// DefaultServer is the control plane's API URL when neither --server nor
// $MESHLENS_SERVER says.
const DefaultServer = "http://127.0.0.1:7070"

// AddGlobalFlags defines the flags the proxy command reads that the
// meshlens command line shares with its other commands: --server,
// --log-level, --token and --ca-file. meshlens defines them on its root;
// meshlens-proxy on its only command.
func AddGlobalFlags(fl *pflag.FlagSet) {
	fl.String("server", "", "control plane API URL (default $MESHLENS_SERVER or "+DefaultServer+")")
	fl.String("log-level", "info", "log level: debug, info, warn, error")
	fl.String("token", "", "bearer token for the control plane (default $MESHLENS_TOKEN; see docs/auth.md)")
	fl.String("ca-file", "", "PEM file of the certificate authority the control plane's TLS certificate is checked against (default $MESHLENS_CA_FILE, else the system's)")
}

// Command returns the proxy command named use. It reads the flags of
// AddGlobalFlags, which the caller defines on it or on a parent. Its
// RunE returns sidecar.Run's error as is: sidecar.IsConfigError tells a
// configuration the sidecar cannot use from a failure while it runs.
func Command(use string, e Env) *cobra.Command {
	var cfg sidecar.Config
	var sysmonAwake bool
	cmd := &cobra.Command{
		Use:   use,
		Short: "Run a sidecar or a virtual gateway, configured over xDS by the control plane",
		Long: use + " runs the data plane of one virtual node (a sidecar) or virtual gateway,\n" +
			"chosen by its identity: --node mesh/M/virtualNode/N, or App Mesh's environment\n" +
			"variables APPMESH_RESOURCE_ARN, APPMESH_RESOURCE_NAME, APPMESH_VIRTUAL_NODE_NAME.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keepSysmonAwake(e, sysmonAwake)
			run := e.Run
			if run == nil {
				run = sidecar.Run
			}
			return run(cmd.Context(), complete(cmd, e, cfg))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Node, "node", "", "identity: mesh/M/virtualNode/N, mesh/M/virtualGateway/N or an App Mesh ARN (default from APPMESH_RESOURCE_ARN)")
	fl.StringVar(&cfg.TokenFile, "token-file", "", "file holding this proxy's bootstrap token, sent on xDS and registration (default --token, then $MESHLENS_TOKEN; docs/auth.md)")
	fl.StringVar(&cfg.XDSAddr, "xds-addr", "", "control plane xDS address: host:port, the replicas' host:port comma-separated, or a name whose DNS answer lists the replicas; a broken stream reconnects to another (default $MESHLENS_XDS_ADDR, $APPMESH_XDS_ENDPOINT, then 127.0.0.1:15010)")
	fl.StringVar(&cfg.AdminAddr, "admin-addr", "", "admin endpoint (default 127.0.0.1:$ENVOY_ADMIN_ACCESS_PORT, then 127.0.0.1:9901)")
	fl.StringVar(&cfg.IngressAddr, "ingress-addr", "", "where the sidecar's inbound listener binds (default as xDS says, 0.0.0.0:15000; \"none\" for only --listen mappings)")
	fl.StringVar(&cfg.EgressAddr, "egress-addr", "", "where the sidecar's outbound listener binds: an HTTP proxy (HTTP_PROXY) and h2c/gRPC by :authority (default "+proxy.DefaultEgressAddr+"; with --capture 127.0.0.1:$APPMESH_ENVOY_EGRESS_PORT)")
	fl.StringArrayVar(&cfg.Listen, "listen", nil, "PORT=HOST:PORT: serve the listener of PORT at this address (repeatable)")
	fl.StringArrayVar(&cfg.EgressPorts, "egress-port", nil, "PORT=HOST:PORT: serve the outbound chain of destination PORT (a TCP backend) at this local address (repeatable)")
	fl.StringArrayVar(&cfg.App, "app", nil, "PORT=HOST:PORT: the local application of inbound listener PORT is here (default 127.0.0.1:PORT; repeatable)")
	fl.StringVar(&cfg.InstanceID, "instance-id", "", "id under which the sidecar registers its instance (default hostname-pid)")
	fl.StringVar(&cfg.Advertise, "advertise-addr", "", "address other proxies reach this instance at (default the inbound listener's host, or 127.0.0.1 when it binds all addresses)")
	fl.BoolVar(&cfg.MemoryTrim, "memory-trim", true, "give freed memory back to the system when the proxy goes quiet after a busy stretch (one garbage collection per burst)")
	fl.BoolVar(&cfg.Register, "register", true, "register this sidecar's instance with the control plane (--server) and deregister on shutdown")
	fl.DurationVar(&cfg.RegistrationTTL, "registration-ttl", 15*time.Second, "TTL of the instance registration; renewed at a third of it")
	fl.DurationVar(&cfg.DrainTimeout, "drain-timeout", proxy.DefaultDrainTimeout, "how long SIGTERM waits for in-flight requests")
	fl.BoolVar(&cfg.Stats, "stats", true, "keep the data path's stats and mesh metrics (false only to measure their cost; server.* stays)")
	fl.IntVar(&cfg.Concurrency, "concurrency", 0, "cores the proxy runs on, 0 to 1024 (Envoy's --concurrency; GOMAXPROCS); 0: every core, the CPU count or the container's CPU limit (default: $ENVOY_CONCURRENCY, else $GOMAXPROCS, else 1 for a sidecar and every core for a gateway)")
	fl.BoolVar(&sysmonAwake, "sysmon-awake", true, "keep the Go runtime's monitor thread awake between requests: the proxy starts again in place with GODEBUG="+sysmon.Setting+" (a fifth less CPU per request at 1000 rps; docs/proxy.md); GODEBUG=schedtrace=0 also turns it off")
	fl.BoolVar(&cfg.Pprof, "pprof", false, "serve Go's profiles under /debug/pprof/ on the admin port")
	fl.BoolVar(&cfg.StdlibHTTP1Client, "stdlib-http1-client", false, "send plaintext HTTP/1.1 upstream with net/http's Transport (for comparison benchmarks)")
	_ = fl.MarkHidden("stdlib-http1-client")
	fl.StringVar(&cfg.EMFPath, "emf-path", "", "write the stats as CloudWatch Embedded Metric Format lines to this file (\"-\" for stdout) every flush")
	fl.StringVar(&cfg.EMFNamespace, "emf-namespace", "meshlens", "CloudWatch namespace of the EMF lines")
	fl.StringVar(&cfg.MetricsServiceAddr, "metrics-service-addr", "", "stream the mesh metrics over Envoy's metrics service to this gRPC address (default: the xDS address, the control plane; \"none\" to turn off)")
	fl.DurationVar(&cfg.MetricsServiceInterval, "metrics-service-interval", 0, "time between two metrics service messages (default 10s)")
	fl.BoolVar(&cfg.MetricsServiceAllStats, "metrics-service-all-stats", false, "send every stat over the metrics service, not only the mesh metrics")
	fl.IntVar(&cfg.MeshMetricsMaxRoutes, "mesh-metrics-max-routes", 1000, "cap on the mesh metrics' outbound edges (service, node and route); beyond it they count under route=\"__overflow__\"")
	fl.DurationVar(&cfg.MeshMetricsIdleTimeout, "mesh-metrics-idle-timeout", 10*time.Minute, "evict mesh metric series whose request count has not changed for this long")
	fl.BoolVar(&cfg.Capture, "capture", false, "transparent capture (run as root): install iptables rules from App Mesh's variables (APPMESH_APP_PORTS, APPMESH_ENVOY_INGRESS_PORT, ...; see docs/capture.md), run the proxy as APPMESH_IGNORE_UID, serve DNS for mesh names, remove the rules on exit")
	fl.StringVar(&cfg.DNSAddr, "dns-addr", "", "answer DNS for the mesh's virtual service names here, forwarding other names (default: none; with --capture 127.0.0.1:$MESHLENS_DNS_PORT, 15053)")
	fl.StringVar(&cfg.DNSUpstream, "dns-upstream", "", "resolvers for names outside the mesh, IP[:PORT] comma-separated (default $MESHLENS_DNS_UPSTREAM, then /etc/resolv.conf's nameservers)")
	fl.StringVar(&cfg.EMFInclude, "emf-include", "", "regular expression: only stats whose full name matches go to EMF (CloudWatch bills per metric)")
	return cmd
}

// keepSysmonAwake replaces the process with itself started with
// sysmon.Setting in GODEBUG, unless this process is that one (then it
// takes the setting out of the environment again, so that what the proxy
// starts does not inherit it), or the command is told not to, or cannot.
func keepSysmonAwake(e Env, awake bool) {
	if e.Exec == nil {
		return
	}
	on, err := sysmon.Restore(os.Getenv, os.Setenv, os.Unsetenv)
	if err != nil {
		fmt.Fprintln(e.Stderr, "warning:", err)
	}
	if on || !awake {
		return
	}
	if err := sysmon.Reexec(sysmon.Process{GOOS: runtime.GOOS, Args: os.Args, Environ: os.Environ(), Exec: e.Exec}); err != nil {
		fmt.Fprintln(e.Stderr, "warning: the Go runtime's monitor sleeps between requests:", err)
	}
}

// complete completes cfg, parsed from the command's own flags, with the
// global flags and the process's environment and streams.
func complete(cmd *cobra.Command, e Env, cfg sidecar.Config) sidecar.Config {
	cfg.Server = ServerURL(cmd, e.Getenv)
	cfg.Token, _ = cmd.Flags().GetString("token")
	cfg.CAFile, _ = cmd.Flags().GetString("ca-file")
	if cfg.CAFile == "" {
		cfg.CAFile = e.Getenv("MESHLENS_CA_FILE")
	}
	cfg.LogLevel, _ = cmd.Flags().GetString("log-level")
	cfg.LogLevelSet = cmd.Flags().Changed("log-level")
	cfg.ConcurrencySet = cmd.Flags().Changed("concurrency")
	cfg.Version = e.Version
	cfg.Getenv, cfg.Stdout, cfg.Stderr = e.Getenv, e.Stdout, e.Stderr
	return cfg
}

// ServerURL is the control plane's API URL: --server, else
// $MESHLENS_SERVER, else DefaultServer.
func ServerURL(cmd *cobra.Command, getenv func(string) string) string {
	url, _ := cmd.Flags().GetString("server")
	if url == "" {
		url = getenv("MESHLENS_SERVER")
	}
	if url == "" {
		url = DefaultServer
	}
	return url
}
