package sidecar

import (
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"time"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"

	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/stats"
	"github.com/meshlens/meshlens/internal/stats/emf"
	"github.com/meshlens/meshlens/internal/stats/metricsservice"
	"github.com/meshlens/meshlens/internal/stats/statsd"
)

// proxyStats is the stats setup of the proxy, from App Mesh's environment
// variables and the Config.
type proxyStats struct {
	store    *stats.Store
	sinks    []stats.Sink
	interval time.Duration
	closers  []func() error
}

func newProxyStats(cfg Config, id nodeid.ID) (*proxyStats, error) {
	fixed, err := stats.FixedTagsFromEnv(cfg.Getenv, id.Mesh, id.Name, id.Kind == nodeid.VirtualGateway)
	if err != nil {
		return nil, configf("%v", err)
	}
	ps := &proxyStats{}
	if ps.store, err = stats.NewStore(stats.Options{FixedTags: fixed}); err != nil {
		return nil, err
	}
	if v := cfg.Getenv("ENVOY_STATS_FLUSH_INTERVAL"); v != "" {
		d, err := parseSecondsOrDuration(v)
		if err != nil || d <= 0 {
			return nil, configf("ENVOY_STATS_FLUSH_INTERVAL %q: want a positive duration such as 10s", v)
		}
		ps.interval = d
	}
	sc, on, err := statsd.ConfigFromEnv(cfg.Getenv)
	if err != nil {
		return nil, configf("%v", err)
	}
	if on {
		sink, err := statsd.New(sc)
		if err != nil {
			return nil, err
		}
		ps.sinks = append(ps.sinks, sink)
		ps.closers = append(ps.closers, sink.Close)
	}
	if cfg.EMFPath != "" {
		opts := emf.Options{Namespace: cfg.EMFNamespace}
		if cfg.EMFInclude != "" {
			if opts.Include, err = regexp.Compile(cfg.EMFInclude); err != nil {
				return nil, configf("--emf-include: %v", err)
			}
		}
		out := cfg.Stdout
		if cfg.EMFPath != "-" {
			file, err := os.OpenFile(cfg.EMFPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return nil, fmt.Errorf("--emf-path: %w", err)
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

// newMetricsService is the sink that streams the mesh metrics (and every
// stat with --metrics-service-all-stats) to the control plane, as App
// Mesh's Envoy bootstrap points its stats sinks at a gRPC cluster; nil
// when turned off with "none" or when stats are off.
func newMetricsService(cfg Config, xdsAddr string, node *corev3.Node, log *slog.Logger, mesh, all *stats.Store, extra func() []*dto.MetricFamily) (*metricsservice.Sink, error) {
	addr := firstNonEmpty(cfg.MetricsServiceAddr, xdsAddr)
	if addr == "none" || mesh == nil {
		return nil, nil
	}
	if cfg.MetricsServiceInterval < 0 {
		return nil, configf("--metrics-service-interval %s: must be positive", cfg.MetricsServiceInterval)
	}
	stores := []*stats.Store{mesh}
	if cfg.MetricsServiceAllStats {
		stores = append(stores, all)
	}
	// The token and TLS go to the control plane only, not to a metrics
	// service elsewhere.
	var dial []grpc.DialOption
	if addr == xdsAddr {
		cpAuth, err := authFromConfig(cfg)
		if err != nil {
			return nil, err
		}
		dial = cpAuth.dialOptions()
	}
	sink, err := metricsservice.New(metricsservice.Options{Addr: addr, Node: node, DialOptions: dial, Stores: stores, Extra: extra, Interval: cfg.MetricsServiceInterval, Log: log})
	if err != nil {
		return nil, configf("--metrics-service-addr: %v", err)
	}
	return sink, nil
}
