package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/apiclient"
	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/proxy"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/xdsclient"
	"github.com/meshlens/meshlens/internal/stats"
	"github.com/meshlens/meshlens/internal/stats/emf"
	"github.com/meshlens/meshlens/internal/stats/statsd"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// proxyFlags are the command line of `meshlens proxy`.
type proxyFlags struct {
	node, xdsAddr, adminAddr, ingressAddr, egressAddr string
	listen, app, egressPorts                          []string
	instanceID, advertise                             string
	register                                          bool
	registrationTTL, drainTimeout                     time.Duration
	stats, pprof, stdlibH1                            bool
	emfPath, emfNamespace, emfInclude                 string
	concurrency                                       int
}

func newProxyCmd(e *env) *cobra.Command {
	var f proxyFlags
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run a sidecar or a virtual gateway, configured over xDS by the control plane",
		Long: "proxy runs the data plane of one virtual node (a sidecar) or virtual gateway,\n" +
			"chosen by its identity: --node mesh/M/virtualNode/N, or App Mesh's environment\n" +
			"variables APPMESH_RESOURCE_ARN, APPMESH_RESOURCE_NAME, APPMESH_VIRTUAL_NODE_NAME.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProxy(cmd, e, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.node, "node", "", "identity: mesh/M/virtualNode/N, mesh/M/virtualGateway/N or an App Mesh ARN (default from APPMESH_RESOURCE_ARN)")
	fl.StringVar(&f.xdsAddr, "xds-addr", "", "control plane xDS address (default $MESHLENS_XDS_ADDR, $APPMESH_XDS_ENDPOINT, then 127.0.0.1:15010)")
	fl.StringVar(&f.adminAddr, "admin-addr", "", "admin endpoint (default 127.0.0.1:$ENVOY_ADMIN_ACCESS_PORT, then 127.0.0.1:9901)")
	fl.StringVar(&f.ingressAddr, "ingress-addr", "", "where the sidecar's inbound listener binds (default as xDS says, 0.0.0.0:15000; \"none\" for only --listen mappings)")
	fl.StringVar(&f.egressAddr, "egress-addr", proxy.DefaultEgressAddr, "where the sidecar's outbound listener binds: an HTTP proxy (HTTP_PROXY) and h2c/gRPC by :authority")
	fl.StringArrayVar(&f.listen, "listen", nil, "PORT=HOST:PORT: serve the listener of PORT at this address (repeatable)")
	fl.StringArrayVar(&f.egressPorts, "egress-port", nil, "PORT=HOST:PORT: serve the outbound chain of destination PORT (a TCP backend) at this local address (repeatable)")
	fl.StringArrayVar(&f.app, "app", nil, "PORT=HOST:PORT: the local application of inbound listener PORT is here (default 127.0.0.1:PORT; repeatable)")
	fl.StringVar(&f.instanceID, "instance-id", "", "id under which the sidecar registers its instance (default hostname-pid)")
	fl.StringVar(&f.advertise, "advertise-addr", "", "address other proxies reach this instance at (default the inbound listener's host, or 127.0.0.1 when it binds all addresses)")
	fl.BoolVar(&f.register, "register", true, "register this sidecar's instance with the control plane (--server) and deregister on shutdown")
	fl.DurationVar(&f.registrationTTL, "registration-ttl", 15*time.Second, "TTL of the instance registration; renewed at a third of it")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", proxy.DefaultDrainTimeout, "how long SIGTERM waits for in-flight requests")
	fl.BoolVar(&f.stats, "stats", true, "keep the data path's stats and mesh metrics (false only to measure their cost; server.* stays)")
	fl.IntVar(&f.concurrency, "concurrency", 0, "cores the proxy runs on (Envoy's --concurrency; GOMAXPROCS); 0: Go's default, the CPU count or the container's CPU limit")
	fl.BoolVar(&f.pprof, "pprof", false, "serve Go's profiles under /debug/pprof/ on the admin port")
	fl.BoolVar(&f.stdlibH1, "stdlib-http1-client", false, "send plaintext HTTP/1.1 upstream with net/http's Transport (for comparison benchmarks)")
	_ = fl.MarkHidden("stdlib-http1-client")
	fl.StringVar(&f.emfPath, "emf-path", "", "write the stats as CloudWatch Embedded Metric Format lines to this file (\"-\" for stdout) every flush")
	fl.StringVar(&f.emfNamespace, "emf-namespace", "meshlens", "CloudWatch namespace of the EMF lines")
	fl.StringVar(&f.emfInclude, "emf-include", "", "regular expression: only stats whose full name matches go to EMF (CloudWatch bills per metric)")
	return cmd
}

// portMap parses repeated PORT=HOST:PORT flags.
func portMap(flag string, values []string) (map[uint32]string, error) {
	out := map[uint32]string{}
	for _, v := range values {
		port, addr, ok := strings.Cut(v, "=")
		p, err := strconv.ParseUint(port, 10, 16)
		if !ok || err != nil || p == 0 {
			return nil, usagef("--%s %q: want PORT=HOST:PORT", flag, v)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, usagef("--%s %q: %v", flag, v, err)
		}
		out[uint32(p)] = addr
	}
	return out, nil
}

func runProxy(cmd *cobra.Command, e *env, f proxyFlags) error {
	log, err := proxyLogger(cmd, e.stderr, e.getenv)
	if err != nil {
		return err
	}
	warnIgnoredEnv(log, e.getenv)
	var id nodeid.ID
	if f.node != "" {
		id, err = nodeid.Parse(f.node)
	} else {
		id, err = nodeid.FromEnv(e.getenv)
	}
	if err != nil {
		return usageError{fmt.Errorf("node identity: %w", err)}
	}
	listen, err := portMap("listen", f.listen)
	if err != nil {
		return err
	}
	app, err := portMap("app", f.app)
	if err != nil {
		return err
	}
	egressPorts, err := portMap("egress-port", f.egressPorts)
	if err != nil {
		return err
	}
	xdsAddr := firstNonEmpty(f.xdsAddr, e.getenv("MESHLENS_XDS_ADDR"), e.getenv("APPMESH_XDS_ENDPOINT"), "127.0.0.1:15010")
	adminAddr := f.adminAddr
	if adminAddr == "" {
		if port := e.getenv("ENVOY_ADMIN_ACCESS_PORT"); port != "" {
			adminAddr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	gateway := id.Kind == nodeid.VirtualGateway
	cluster := firstNonEmpty(e.getenv("APPMESH_RESOURCE_CLUSTER"), id.Mesh+"/"+id.Name)

	switch {
	case f.concurrency < 0:
		return usagef("--concurrency %d: must be 0 or more", f.concurrency)
	case f.concurrency > 0:
		runtime.GOMAXPROCS(f.concurrency)
	}
	st, err := newProxyStats(e, f, id)
	if err != nil {
		return err
	}
	defer st.close()
	// Access logs may go to /dev/stdout: a reader that went away must
	// count as dropped lines, not kill the process (as Envoy does).
	signal.Ignore(syscall.SIGPIPE)
	reopen := make(chan os.Signal, 1)
	signal.Notify(reopen, syscall.SIGUSR1)
	defer signal.Stop(reopen)
	go func() {
		for range reopen {
			accesslog.ReopenAll() // log rotation, as Envoy reopens on SIGUSR1
		}
	}()

	p, err := proxy.New(proxy.Config{
		NodeID: id.String(), Cluster: cluster, Version: "meshlens/" + Version, Gateway: gateway,
		AdminAddr: adminAddr, IngressAddr: f.ingressAddr, EgressAddr: f.egressAddr, EgressPorts: egressPorts,
		Listen: listen, App: app, Log: log, DrainTimeout: f.drainTimeout,
		Stats: st.store, StatsSinks: st.sinks, StatsFlushInterval: st.interval, DisableStats: !f.stats, Pprof: f.pprof,
		StdlibHTTP1Client: f.stdlibH1,
	})
	if err != nil {
		return runError{err}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := p.Run(runCtx); err != nil {
			errc <- err
		}
	}()
	warming := time.Duration(0)
	if v := e.getenv("ENVOY_INITIAL_FETCH_TIMEOUT"); v != "" {
		if warming, err = parseSecondsOrDuration(v); err != nil {
			return usagef("ENVOY_INITIAL_FETCH_TIMEOUT: %v", err)
		}
	}
	xc, err := xdsclient.New(xdsclient.Config{
		Server:         xdsAddr,
		Node:           xdsclient.NewNode(id.String(), cluster, Version),
		Log:            log,
		CompileOptions: table.CompileOptions{Gateway: gateway},
		WarmingTimeout: warming,
		// The admin endpoint and stats report whether the control plane
		// is reachable.
		OnConnectionChange: p.SetControlPlaneConnected,
	}, p.Apply)
	if err != nil {
		return runError{err}
	}
	go func() {
		defer wg.Done()
		if err := xc.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("xds client: %w", err)
		}
	}()
	log.Info("proxy starting", "node", id.String(), "xds", xdsAddr, "admin", p.AdminAddr().String())

	var reg *registration
	if !gateway && f.register {
		reg, err = newRegistration(cmd, e, id, f, p)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); reg.run(runCtx) }()
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining")
	case runErr = <-errc:
	}
	// Leave the mesh first, so that peers stop sending new requests, then
	// drain what is in flight.
	if reg != nil {
		reg.deregister()
	}
	shutCtx, shutCancel := context.WithTimeout(context.Background(), f.drainTimeout+5*time.Second)
	defer shutCancel()
	if err := p.Shutdown(shutCtx); err != nil && runErr == nil {
		runErr = err
	}
	cancel()
	wg.Wait()
	if runErr != nil {
		return runError{runErr}
	}
	return nil
}

// proxyStats is the stats setup of `meshlens proxy`, from App Mesh's
// environment variables and the flags.
type proxyStats struct {
	store    *stats.Store
	sinks    []stats.Sink
	interval time.Duration
	closers  []func() error
}

func newProxyStats(e *env, f proxyFlags, id nodeid.ID) (*proxyStats, error) {
	fixed, err := stats.FixedTagsFromEnv(e.getenv, id.Mesh, id.Name, id.Kind == nodeid.VirtualGateway)
	if err != nil {
		return nil, usagef("%v", err)
	}
	ps := &proxyStats{}
	if ps.store, err = stats.NewStore(stats.Options{FixedTags: fixed}); err != nil {
		return nil, runError{err}
	}
	if v := e.getenv("ENVOY_STATS_FLUSH_INTERVAL"); v != "" {
		d, err := parseSecondsOrDuration(v)
		if err != nil || d <= 0 {
			return nil, usagef("ENVOY_STATS_FLUSH_INTERVAL %q: want a positive duration such as 10s", v)
		}
		ps.interval = d
	}
	cfg, on, err := statsd.ConfigFromEnv(e.getenv)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if on {
		sink, err := statsd.New(cfg)
		if err != nil {
			return nil, runError{err}
		}
		ps.sinks = append(ps.sinks, sink)
		ps.closers = append(ps.closers, sink.Close)
	}
	if f.emfPath != "" {
		opts := emf.Options{Namespace: f.emfNamespace}
		if f.emfInclude != "" {
			if opts.Include, err = regexp.Compile(f.emfInclude); err != nil {
				return nil, usagef("--emf-include: %v", err)
			}
		}
		out := io.Writer(e.stdout)
		if f.emfPath != "-" {
			file, err := os.OpenFile(f.emfPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return nil, runError{fmt.Errorf("--emf-path: %w", err)}
			}
			out = file
			ps.closers = append(ps.closers, file.Close)
		}
		ps.sinks = append(ps.sinks, emf.New(out, opts))
	}
	return ps, nil
}

// close releases the sinks, after the proxy's last flush.
func (ps *proxyStats) close() {
	for _, c := range ps.closers {
		_ = c()
	}
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// registration keeps this sidecar's instance registered with the control
// plane, renewing it before its TTL passes.
type registration struct {
	client   *apiclient.Client
	id       nodeid.ID
	instance string
	body     restv1.Instance
	ttl      time.Duration
	proxy    *proxy.Proxy
	log      func(msg string, args ...any)
}

func newRegistration(cmd *cobra.Command, e *env, id nodeid.ID, f proxyFlags, p *proxy.Proxy) (*registration, error) {
	c, err := client(cmd, e)
	if err != nil {
		return nil, err
	}
	// The instance is reachable where the inbound listener binds: the
	// --ingress-addr, else the first --listen mapping, else App Mesh's
	// 15000.
	bound := net.JoinHostPort("0.0.0.0", strconv.Itoa(xdsmeta.InboundPort))
	if f.ingressAddr != "" && f.ingressAddr != proxy.Disabled {
		bound = f.ingressAddr
	} else if len(f.listen) > 0 {
		_, bound, _ = strings.Cut(f.listen[0], "=")
	}
	host, portStr, err := net.SplitHostPort(bound)
	if err != nil {
		return nil, usagef("inbound address %q: %v", bound, err)
	}
	port, _ := strconv.Atoi(portStr)
	addr := f.advertise
	if addr == "" {
		addr = host
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			addr = "127.0.0.1"
		}
	}
	inst := f.instanceID
	if inst == "" {
		hn, _ := os.Hostname()
		inst = fmt.Sprintf("%s-%d", hn, os.Getpid())
	}
	ttl := f.registrationTTL
	if ttl < 3*time.Second {
		ttl = 3 * time.Second
	}
	return &registration{
		client: c, id: id, instance: inst, ttl: ttl, proxy: p,
		body: restv1.Instance{Address: addr, Port: port, HealthStatus: "HEALTHY", TTLSeconds: int(ttl / time.Second)},
		log:  func(msg string, args ...any) { fmt.Fprintln(e.stderr, append([]any{msg}, args...)...) },
	}, nil
}

// run registers once the proxy has bound its inbound listener (it is
// configured and can take traffic), then renews until ctx ends.
func (r *registration) run(ctx context.Context) {
	for {
		bound := r.inboundBound()
		if bound != nil {
			if r.body.Port == 0 {
				// Bound to port 0: register the port the kernel picked.
				if ta, ok := bound.(*net.TCPAddr); ok {
					r.body.Port = ta.Port
				}
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := r.client.Register(rctx, r.id.Mesh, r.id.Name, r.instance, r.body)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.log("instance registration failed; retrying:", err)
			wait = time.Second
			continue
		}
		wait = r.ttl / 3
	}
}

func (r *registration) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = r.client.Deregister(ctx, r.id.Mesh, r.id.Name, r.instance)
}

// inboundBound is the address of the inbound listener's first socket,
// nil until it is bound.
func (r *registration) inboundBound() net.Addr {
	for _, l := range r.proxy.Listeners() {
		if xdsmeta.IsInboundListener(l.Listener) {
			return l.Addr
		}
	}
	return nil
}

// maxSeconds bounds a timeout given in seconds (100 years).
const maxSeconds = 100 * 365 * 24 * 3600.0

// parseSecondsOrDuration reads "15s" or a plain number of seconds, as App
// Mesh's Envoy image read its timeouts.
func parseSecondsOrDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		// Whole seconds up to a century; beyond, or negative, NaN or
		// infinite, it is not a timeout.
		if !(n >= 0 && n <= maxSeconds) {
			return 0, fmt.Errorf("%q: want seconds between 0 and %d, or a duration such as 15s", v, int(maxSeconds))
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want seconds or a duration such as 15s", v)
	}
	return d, nil
}
