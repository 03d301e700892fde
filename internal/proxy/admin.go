package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/pprof"
	"runtime"
	"slices"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/hcm"
	"github.com/meshlens/meshlens/internal/proxy/listener"
	"github.com/meshlens/meshlens/internal/proxy/table"

	// The typed configs that listeners and clusters embed: /config_dump
	// renders them with protojson, which must resolve every Any.
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/access_loggers/file/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/router/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/upstreams/http/v3"
)

// xDS type URLs, the keys of table.Snapshot.Resources.
const (
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// adminRoute is one admin endpoint. Endpoints that change state require
// POST, as Envoy's do, so that a stray GET (a browser prefetch, a
// crawler) cannot stop the proxy.
type adminRoute struct {
	path    string
	help    string
	mutates bool
	handle  func(w http.ResponseWriter, r *http.Request)
}

func (p *Proxy) adminRoutes() []adminRoute {
	return []adminRoute{
		{"/server_info", "print server version/status information", false, p.handleServerInfo},
		{"/ready", "print server state, return 200 if LIVE, otherwise return 503", false, p.handleReady},
		{"/stats", "print server stats", false, p.handleStats},
		{"/stats/prometheus", "print server stats in prometheus format", false, p.handlePrometheus},
		{"/reset_counters", "reset all counters to zero", true, p.handleResetCounters},
		{"/clusters", "upstream cluster status", false, p.handleClusters},
		{"/listeners", "print listener info", false, p.handleListeners},
		{"/config_dump", "dump current Envoy configs", false, p.handleConfigDump},
		{"/tap", "stream a sample of live requests as JSON lines (?path_prefix, ?method, ?authority, ?max, ?duration, ?show_headers)", false, p.handleTap},
		{"/healthcheck/fail", "cause the server to fail health checks", true, p.handleHealthcheck(true)},
		{"/healthcheck/ok", "cause the server to pass health checks", true, p.handleHealthcheck(false)},
		{"/drain_listeners", "drain listeners (?graceful, ?inboundonly)", true, p.handleDrainListeners},
		{"/quitquitquit", "exit the server", true, p.handleQuit},
	}
}

// newAdminServer builds the admin HTTP server, with the limits every
// server of the proxy has.
func (p *Proxy) newAdminServer() *http.Server {
	mux := http.NewServeMux()
	routes := p.adminRoutes()
	for _, rt := range routes {
		mux.HandleFunc(rt.path, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != rt.path {
				http.NotFound(w, r)
				return
			}
			if rt.mutates && r.Method != http.MethodPost {
				w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
				w.WriteHeader(http.StatusMethodNotAllowed)
				fmt.Fprintf(w, "Method %s not allowed, POST required.\n", r.Method)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			rt.handle(w, r)
		})
	}
	if p.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		fmt.Fprintln(w, "admin commands are:")
		for _, rt := range routes {
			fmt.Fprintf(w, "  %s: %s\n", rt.path, rt.help)
		}
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          p.errLog,
	}
}

// serverState is Envoy's: PRE_INITIALIZING until the control plane is
// reached, INITIALIZING until a first snapshot applies, then LIVE, or
// DRAINING once health checks are failed (POST /healthcheck/fail) or the
// proxy shuts down.
func (p *Proxy) serverState() serverState {
	switch {
	case p.draining.Load() || p.applied.Load() && p.hcFailed.Load():
		return stateDraining
	case p.applied.Load():
		return stateLive
	case p.cpConnected.Load():
		return stateInitializing
	}
	return statePreInitializing
}

func (p *Proxy) handleServerInfo(w http.ResponseWriter, r *http.Request) {
	up := pbDuration(time.Since(p.started).Truncate(time.Second))
	mode := "sidecar"
	if p.cfg.Gateway {
		mode = "gateway"
	}
	writeAdminJSON(w, serverInfoJSON{
		Version:            p.cfg.Version,
		State:              p.serverState(),
		HotRestartVersion:  "disabled",
		UptimeCurrentEpoch: up,
		UptimeAllEpochs:    up,
		Node:               nodeJSON{ID: p.cfg.NodeID, Cluster: p.cfg.Cluster, Metadata: map[string]string{"meshlens.mode": mode}},
		CommandLineOptions: commandLineOptionsJSON{
			BaseID:         "0",
			Concurrency:    uint32(runtime.GOMAXPROCS(0)),
			ServiceNode:    p.cfg.NodeID,
			ServiceCluster: p.cfg.Cluster,
			DrainTime:      pbDuration(p.cfg.DrainTimeout),
			Mode:           "Serve",
		},
	})
}

func (p *Proxy) handleReady(w http.ResponseWriter, r *http.Request) {
	st := p.serverState()
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	if st != stateLive {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, st.String())
}

func (p *Proxy) handleHealthcheck(fail bool) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		p.hcFailed.Store(fail)
		if fail {
			p.log.Info("health checks failed by admin request")
		} else {
			p.log.Info("health checks passing again by admin request")
		}
		fmt.Fprintln(w, "OK")
	}
}

func (p *Proxy) handleDrainListeners(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	_, graceful := q["graceful"]
	_, inboundOnly := q["inboundonly"]
	p.drainListeners(inboundOnly, graceful)
	fmt.Fprintln(w, "OK")
}

func (p *Proxy) handleQuit(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, "OK")
	p.log.Info("exit requested through the admin API")
	p.quitNow()
}

// drainListeners is /drain_listeners: the listeners (inbound and gateway
// ones only with inboundOnly) stop accepting, and later snapshots do not
// bind them again. Connections already accepted are drained: at once,
// or, with graceful, after a DrainTimeout period during which sockets
// keep accepting but every HTTP response asks its client to close
// (Connection: close, or GOAWAY on HTTP/2), as Envoy's graceful drain.
func (p *Proxy) drainListeners(inboundOnly, graceful bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	want := func(d table.Direction) bool { return !inboundOnly || d != table.Outbound }
	p.stopped[table.Inbound] = true
	p.stopped[table.Gateway] = true
	if !inboundOnly {
		p.stopped[table.Outbound] = true
	}
	var socks []*listener.Socket
	var lrts []*listenerRT
	for addr, s := range p.sockets {
		b := s.Binding()
		if b == nil || !want(b.Runtime.Load().Listener.Direction) {
			continue
		}
		socks = append(socks, s)
		delete(p.sockets, addr)
		if lrt := p.listeners[b.Runtime.Name]; lrt != nil && !slices.Contains(lrts, lrt) {
			lrts = append(lrts, lrt)
		}
	}
	var servers []*hcm.Server
	for _, lrt := range lrts {
		for _, hs := range lrt.servers {
			servers = append(servers, hs)
		}
		lrt.servers = map[string]*hcm.Server{}
	}
	if !graceful {
		for _, s := range socks {
			s.Close()
		}
	}
	p.bg.Go(func() {
		if graceful {
			for _, hs := range servers {
				hs.SetKeepAlives(false)
			}
			t := time.NewTimer(p.cfg.DrainTimeout)
			select {
			case <-t.C:
			case <-p.quit:
				t.Stop()
			}
			for _, s := range socks {
				s.Close()
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
		defer cancel()
		for _, hs := range servers {
			hs.Drain(ctx)
		}
	})
	p.log.Info("listeners drained by admin request", "inbound_only", inboundOnly, "graceful", graceful, "sockets", len(socks))
}
