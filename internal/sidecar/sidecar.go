package sidecar

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/capture"
	"github.com/meshlens/meshlens/internal/lifeline"
	"github.com/meshlens/meshlens/internal/memtrim"
	"github.com/meshlens/meshlens/internal/meshdns"
	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/proxy"
	"github.com/meshlens/meshlens/internal/proxy/sdsclient"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/xdsclient"
	"github.com/meshlens/meshlens/internal/xdsmeta"
	"google.golang.org/grpc"
)

// Run runs the proxy cfg describes until ctx ends or SIGINT or SIGTERM
// arrives, then leaves the mesh (deregisters) and drains. An error about
// the configuration or the environment is a *ConfigError.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	log, err := Logger(cfg)
	if err != nil {
		return err
	}
	WarnIgnoredEnv(log, cfg.Getenv)
	// Started with a lifeline (by `meshlens demo`, or by a --capture
	// supervisor): stop as on SIGTERM when the process that started this
	// one is gone, however it ended.
	ctx, stopLine := context.WithCancel(ctx)
	defer stopLine()
	if err := lifeline.Watch(cfg.Getenv, func() {
		log.Warn("the process that started this one is gone: stopping as on SIGTERM")
		stopLine()
	}); err != nil {
		return &ConfigError{err}
	}
	if cfg.captureSupervisor() {
		return supervise(ctx, cfg, log)
	}
	if cfg.Capture {
		cc, err := capture.FromEnv(cfg.Getenv)
		if err != nil {
			return &ConfigError{fmt.Errorf("--capture: %w", err)}
		}
		if err := captureListeners(&cfg, cc); err != nil {
			return err
		}
	}
	dnsCfg, err := dnsConfig(cfg)
	if err != nil {
		return err
	}
	var id nodeid.ID
	if cfg.Node != "" {
		id, err = nodeid.Parse(cfg.Node)
	} else {
		id, err = nodeid.FromEnv(cfg.Getenv)
	}
	if err != nil {
		return &ConfigError{fmt.Errorf("node identity: %w", err)}
	}
	cpAuth, err := authFromConfig(cfg)
	if err != nil {
		return err
	}
	listen, err := portMap("listen", cfg.Listen)
	if err != nil {
		return err
	}
	app, err := portMap("app", cfg.App)
	if err != nil {
		return err
	}
	egressPorts, err := portMap("egress-port", cfg.EgressPorts)
	if err != nil {
		return err
	}
	xdsAddr := firstNonEmpty(cfg.XDSAddr, cfg.Getenv("MESHLENS_XDS_ADDR"), cfg.Getenv("APPMESH_XDS_ENDPOINT"), "127.0.0.1:15010")
	adminAddr := cfg.AdminAddr
	if adminAddr == "" {
		if port := cfg.Getenv("ENVOY_ADMIN_ACCESS_PORT"); port != "" {
			adminAddr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	gateway := id.Kind == nodeid.VirtualGateway
	cluster := firstNonEmpty(cfg.Getenv("APPMESH_RESOURCE_CLUSTER"), id.Mesh+"/"+id.Name)

	procs, procsFrom, err := concurrency(cfg, gateway)
	if err != nil {
		return err
	}
	switch {
	case procs > 0:
		runtime.GOMAXPROCS(procs)
	case procsFrom == concurrencyFlag || procsFrom == concurrencyEnvoy:
		// 0 asked for: every core, even with GOMAXPROCS set.
		runtime.SetDefaultGOMAXPROCS()
	}
	log.Info("cores", "gomaxprocs", runtime.GOMAXPROCS(0), "from", procsFrom)
	tracing, err := tracingFromEnv(cfg.Getenv, id)
	if err != nil {
		return err
	}
	if tracing != nil {
		log.Info("tracing from the environment replaces the mesh's provider", "provider", tracing.Provider.String(), "endpoint", tracing.Endpoint)
	}
	st, err := newProxyStats(cfg, id)
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

	// The DNS server binds before the proxy, so that a taken port fails
	// the start before anything else is bound.
	var dns *meshdns.Server
	if dnsCfg.Addr != "" {
		dnsCfg.Stats, dnsCfg.Log = st.store.Scope("dns."), log
		if dns, err = meshdns.Listen(dnsCfg); err != nil {
			return err
		}
		log.Info("dns serving mesh names", "addr", dns.Addr(), "upstreams", strings.Join(dns.Upstreams(), ","))
	}
	p, err := proxy.New(proxy.Config{
		NodeID: id.String(), Cluster: cluster, Version: "meshlens/" + cfg.Version, Gateway: gateway,
		AdminAddr: adminAddr, IngressAddr: cfg.IngressAddr, EgressAddr: cfg.EgressAddr, EgressPorts: egressPorts,
		Listen: listen, App: app, Log: log, DrainTimeout: cfg.DrainTimeout,
		Stats: st.store, StatsSinks: st.sinks, StatsFlushInterval: st.interval, DisableStats: !cfg.Stats, Pprof: cfg.Pprof,
		StdlibHTTP1Client: cfg.StdlibHTTP1Client, Tracing: tracing,
		MeshMaxRoutes: cfg.MeshMetricsMaxRoutes, MeshIdleTimeout: cfg.MeshMetricsIdleTimeout,
		// Spans to the builtin collector go to the control plane with the
		// xDS connection's TLS and token (cpAuth.identity is set below,
		// before the first configuration makes an exporter).
		ControlPlaneDial: func() []grpc.DialOption { return cpAuth.dialOptions() },
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var wg sync.WaitGroup
	if cfg.MemoryTrim {
		wg.Add(1)
		go func() { defer wg.Done(); (&memtrim.Trimmer{Ballast: gcBallast(cfg.Getenv)}).Run(runCtx) }()
	}
	apply := p.Apply
	if dns != nil {
		wg.Add(1)
		go func() { defer wg.Done(); dns.Serve(runCtx) }()
		// Names follow the configuration: a snapshot the proxy refused
		// changes nothing.
		apply = func(s *table.Snapshot) error {
			if err := p.Apply(s); err != nil {
				return err
			}
			dns.SetTable(newDNSTable(s))
			return nil
		}
	}
	errc := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := p.Run(runCtx); err != nil {
			errc <- err
		}
	}()
	warming := time.Duration(0)
	if v := cfg.Getenv("ENVOY_INITIAL_FETCH_TIMEOUT"); v != "" {
		if warming, err = parseSecondsOrDuration(v); err != nil {
			return configf("ENVOY_INITIAL_FETCH_TIMEOUT: %v", err)
		}
	}
	node := xdsclient.NewNode(id.String(), cluster, cfg.Version)
	// The control plane opens live taps on the admin endpoint.
	node.Metadata = xdsmeta.SetAdminAddress(node.Metadata, p.AdminAddr().String())
	cpAuth.identity = func() *tls.Certificate { return p.MeshIdentity(meshIdentityURI(id)) }
	// APPMESH_SDS_SOCKET_PATH: the secrets come from that SDS server (a
	// SPIRE agent, as with App Mesh) instead of the control plane.
	var externalSDS *sdsclient.Client
	if sock := cfg.Getenv("APPMESH_SDS_SOCKET_PATH"); sock != "" {
		externalSDS = sdsclient.New(sock, node, p.UpdateSecrets, log)
		wg.Add(1)
		go func() { defer wg.Done(); _ = externalSDS.Run(runCtx) }()
	}
	var wantExternal func([]string)
	if externalSDS != nil {
		wantExternal = externalSDS.Want
	}
	xc, err := xdsclient.New(xdsclient.Config{
		Server:         xdsAddr,
		Node:           node,
		Log:            log,
		CompileOptions: table.CompileOptions{Gateway: gateway},
		WarmingTimeout: warming,
		// The admin endpoint and stats report whether the control plane
		// is reachable.
		OnConnectionChange: p.SetControlPlaneConnected,
		DialOptions:        cpAuth.dialOptions(),
		// Certificates and trust from the mesh CA, rotated in place.
		OnSecrets:       p.UpdateSecrets,
		ExternalSecrets: wantExternal,
	}, apply)
	if err != nil {
		return err
	}
	go func() {
		defer wg.Done()
		if err := xc.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("xds client: %w", err)
		}
	}()
	log.Info("proxy starting", "node", id.String(), "xds", xdsAddr, "admin", p.AdminAddr().String())

	if ms, err := newMetricsService(cfg, xdsAddr, xdsclient.NewNode(id.String(), cluster, cfg.Version), log, p.MeshStats(), st.store, p.EndpointHealth); err != nil {
		cancel()
		wg.Wait()
		return err
	} else if ms != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = ms.Run(runCtx) }()
	}

	var reg *registration
	if !gateway && cfg.Register {
		reg, err = newRegistration(cfg, id, p)
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
	// The process exits in bounded time whatever is stuck: Shutdown
	// returns when shutCtx ends, and what runs beside the proxy gets a
	// few more seconds to stop.
	shutCtx, shutCancel := context.WithTimeout(context.Background(), cfg.DrainTimeout+5*time.Second)
	defer shutCancel()
	if err := p.Shutdown(shutCtx); err != nil {
		log.Error("shutdown did not finish: exiting", "err", err)
		if runErr == nil {
			runErr = err
		}
	}
	cancel()
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		log.Error("exiting with background work unfinished (xDS client, registration, stats, DNS) 5s after the shutdown")
	}
	return runErr
}

// defaults fills in the process's environment and streams where cfg
// leaves them nil.
func (cfg *Config) defaults() {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
}

// meshIdentityURI is the SPIFFE id the mesh CA issues to the node:
// spiffe://<mesh in lower case>/<kind>/<name>.
func meshIdentityURI(id nodeid.ID) string {
	return "spiffe://" + strings.ToLower(id.Mesh) + "/" + string(id.Kind) + "/" + id.Name
}
