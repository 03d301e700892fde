package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/table"

	// The typed configs that listeners and clusters embed: /config_dump
	// renders them with protojson, which must resolve every Any.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
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
func (p *Proxy) serverState() adminv3.ServerInfo_State {
	switch {
	case p.draining.Load() || p.applied.Load() && p.hcFailed.Load():
		return adminv3.ServerInfo_DRAINING
	case p.applied.Load():
		return adminv3.ServerInfo_LIVE
	case p.cpConnected.Load():
		return adminv3.ServerInfo_INITIALIZING
	}
	return adminv3.ServerInfo_PRE_INITIALIZING
}

// prettyJSON renders a message as Envoy's admin does: proto field names
// (snake_case), one field per line, so that `grep state` finds the
// state's own line.
var prettyJSON = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}

// prettyJSONDefaults also prints fields at their default value, as
// Envoy's /server_info does: "state": "LIVE" is the enum's zero value.
var prettyJSONDefaults = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true, EmitDefaultValues: true}

func writeJSON(w http.ResponseWriter, m proto.Message) { writeJSONWith(w, prettyJSON, m) }

func writeJSONWith(w http.ResponseWriter, opts protojson.MarshalOptions, m proto.Message) {
	b, err := opts.Marshal(m)
	if err != nil {
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	_, _ = io.WriteString(w, "\n")
}

func (p *Proxy) handleServerInfo(w http.ResponseWriter, r *http.Request) {
	up := durationpb.New(time.Since(p.started).Truncate(time.Second))
	node := &corev3.Node{Id: p.cfg.NodeID, Cluster: p.cfg.Cluster}
	mode := "sidecar"
	if p.cfg.Gateway {
		mode = "gateway"
	}
	node.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"meshlens.mode": structpb.NewStringValue(mode)}}
	writeJSONWith(w, prettyJSONDefaults, &adminv3.ServerInfo{
		Version:            p.cfg.Version,
		State:              p.serverState(),
		HotRestartVersion:  "disabled",
		UptimeCurrentEpoch: up,
		UptimeAllEpochs:    up,
		Node:               node,
		CommandLineOptions: &adminv3.CommandLineOptions{
			Concurrency:    uint32(runtime.GOMAXPROCS(0)),
			ServiceNode:    p.cfg.NodeID,
			ServiceCluster: p.cfg.Cluster,
			DrainTime:      durationpb.New(p.cfg.DrainTimeout),
			Mode:           adminv3.CommandLineOptions_Serve,
		},
	})
}

func (p *Proxy) handleReady(w http.ResponseWriter, r *http.Request) {
	st := p.serverState()
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	if st != adminv3.ServerInfo_LIVE {
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
	var socks []*socket
	var lrts []*listenerRT
	for addr, s := range p.sockets {
		b := s.binding.Load()
		if b == nil || !want(b.lrt.cfg.Load().l.Direction) {
			continue
		}
		socks = append(socks, s)
		delete(p.sockets, addr)
		if !slices.Contains(lrts, b.lrt) {
			lrts = append(lrts, b.lrt)
		}
	}
	var servers []*httpServer
	for _, lrt := range lrts {
		for _, hs := range lrt.servers {
			servers = append(servers, hs)
		}
		lrt.servers = map[string]*httpServer{}
	}
	if !graceful {
		for _, s := range socks {
			s.close()
		}
	}
	p.bg.Go(func() {
		if graceful {
			for _, hs := range servers {
				hs.setKeepAlives(false)
			}
			t := time.NewTimer(p.cfg.DrainTimeout)
			select {
			case <-t.C:
			case <-p.quit:
				t.Stop()
			}
			for _, s := range socks {
				s.close()
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
		defer cancel()
		for _, hs := range servers {
			hs.drain(ctx)
		}
	})
	p.log.Info("listeners drained by admin request", "inbound_only", inboundOnly, "graceful", graceful, "sockets", len(socks))
}

// ---- /clusters ----

func (p *Proxy) sortedViews() []*cluster.View {
	rs := p.state.Load()
	if rs == nil {
		return nil
	}
	out := make([]*cluster.View, 0, len(rs.byName))
	for _, v := range rs.byName {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *cluster.View) int { return strings.Compare(a.Cluster.Name, b.Cluster.Name) })
	return out
}

// circuitBreakerDefaults are Envoy's thresholds when a cluster sets none.
func thresholds(l table.CircuitBreakers) [4]uint32 {
	or := func(v, d uint32) uint32 {
		if v == 0 {
			return d
		}
		return v
	}
	return [4]uint32{or(l.MaxConnections, 1024), or(l.MaxPendingRequests, 1024), or(l.MaxRequests, 1024), or(l.MaxRetries, 3)}
}

func healthFlags(e *cluster.Endpoint) string {
	// Envoy's order: active HC, outlier, EDS, then pending.
	var f string
	if e.Stats != nil && e.Stats.HC.Failed.Load() {
		f = "/failed_active_hc"
	}
	if e.Stats != nil && e.Stats.Outlier.Ejected() {
		f += "/failed_outlier_check"
	}
	if !e.Spec.Healthy {
		f += "/failed_eds_health"
	}
	if e.Stats != nil && e.Stats.HC.Pending.Load() {
		f += "/pending_active_hc"
	}
	if f == "" {
		return "healthy"
	}
	return f
}

func hostStats(e *cluster.Endpoint) []struct {
	name  string
	gauge bool
	v     int64
} {
	s := e.Stats
	return []struct {
		name  string
		gauge bool
		v     int64
	}{
		{"cx_active", true, s.CxActive.Load()},
		{"cx_connect_fail", false, s.CxConnectFail.Load()},
		{"cx_total", false, s.CxTotal.Load()},
		{"rq_active", true, s.RqActive.Load()},
		{"rq_error", false, s.RqError.Load()},
		{"rq_success", false, s.RqSuccess.Load()},
		{"rq_timeout", false, s.RqTimeout.Load()},
		{"rq_total", false, s.RqTotal.Load()},
	}
}

func (p *Proxy) handleClusters(w http.ResponseWriter, r *http.Request) {
	views := p.sortedViews()
	if r.URL.Query().Get("format") == "json" {
		out := &adminv3.Clusters{}
		for _, v := range views {
			cs := &adminv3.ClusterStatus{Name: v.Cluster.Name, AddedViaApi: true, ObservabilityName: v.Cluster.Name}
			if v.Cluster.Type == table.ClusterEDS && v.Cluster.ServiceName != "" && v.Cluster.ServiceName != v.Cluster.Name {
				cs.EdsServiceName = v.Cluster.ServiceName
			}
			for _, e := range v.Endpoints() {
				hs := &adminv3.HostStatus{
					Address:  socketAddress(e.Addr),
					Weight:   max(e.Spec.Weight, 1),
					Hostname: e.Hostname,
					Priority: e.Spec.Priority,
					HealthStatus: &adminv3.HostHealthStatus{
						EdsHealthStatus: corev3.HealthStatus_HEALTHY,
					},
				}
				if !e.Spec.Healthy {
					hs.HealthStatus.EdsHealthStatus = corev3.HealthStatus_UNHEALTHY
				}
				if e.Stats != nil {
					hs.HealthStatus.FailedOutlierCheck = e.Stats.Outlier.Ejected()
					hs.HealthStatus.FailedActiveHealthCheck = e.Stats.HC.Failed.Load()
					hs.HealthStatus.PendingActiveHc = e.Stats.HC.Pending.Load()
				}
				if e.Spec.Zone != "" {
					hs.Locality = &corev3.Locality{Zone: e.Spec.Zone}
				}
				for _, st := range hostStats(e) {
					t := adminv3.SimpleMetric_COUNTER
					if st.gauge {
						t = adminv3.SimpleMetric_GAUGE
					}
					hs.Stats = append(hs.Stats, &adminv3.SimpleMetric{Name: st.name, Type: t, Value: uint64(max(st.v, 0))})
				}
				cs.HostStatuses = append(cs.HostStatuses, hs)
			}
			out.ClusterStatuses = append(out.ClusterStatuses, cs)
		}
		writeJSON(w, out)
		return
	}
	var b bytes.Buffer
	for _, v := range views {
		n := v.Cluster.Name
		fmt.Fprintf(&b, "%s::observability_name::%s\n", n, n)
		t := thresholds(v.Cluster.Limits)
		for _, prio := range []string{"default_priority", "high_priority"} {
			fmt.Fprintf(&b, "%s::%s::max_connections::%d\n", n, prio, t[0])
			fmt.Fprintf(&b, "%s::%s::max_pending_requests::%d\n", n, prio, t[1])
			fmt.Fprintf(&b, "%s::%s::max_requests::%d\n", n, prio, t[2])
			fmt.Fprintf(&b, "%s::%s::max_retries::%d\n", n, prio, t[3])
		}
		fmt.Fprintf(&b, "%s::added_via_api::true\n", n)
		if v.Cluster.Type == table.ClusterEDS && v.Cluster.ServiceName != "" && v.Cluster.ServiceName != n {
			fmt.Fprintf(&b, "%s::eds_service_name::%s\n", n, v.Cluster.ServiceName)
		}
		for _, e := range v.Endpoints() {
			h := n + "::" + e.Addr
			for _, st := range hostStats(e) {
				fmt.Fprintf(&b, "%s::%s::%d\n", h, st.name, st.v)
			}
			fmt.Fprintf(&b, "%s::hostname::%s\n", h, e.Hostname)
			fmt.Fprintf(&b, "%s::health_flags::%s\n", h, healthFlags(e))
			fmt.Fprintf(&b, "%s::weight::%d\n", h, max(e.Spec.Weight, 1))
			fmt.Fprintf(&b, "%s::region::\n", h)
			fmt.Fprintf(&b, "%s::zone::%s\n", h, e.Spec.Zone)
			fmt.Fprintf(&b, "%s::sub_zone::\n", h)
			fmt.Fprintf(&b, "%s::canary::false\n", h)
			fmt.Fprintf(&b, "%s::priority::%d\n", h, e.Spec.Priority)
			fmt.Fprintf(&b, "%s::success_rate::-1\n", h)
			fmt.Fprintf(&b, "%s::local_origin_success_rate::-1\n", h)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	_, _ = w.Write(b.Bytes())
}

// socketAddress renders host:port as Envoy's Address.
func socketAddress(hostport string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	pv, _ := strconv.ParseUint(port, 10, 32)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(pv)},
	}}}
}

// ---- /listeners ----

func (p *Proxy) handleListeners(w http.ResponseWriter, r *http.Request) {
	rs := p.state.Load()
	bound := map[string][]BoundListener{}
	for _, b := range p.Listeners() {
		bound[b.Listener] = append(bound[b.Listener], b)
	}
	type entry struct {
		name  string
		addrs []string
	}
	var entries []entry
	if rs != nil {
		for _, l := range rs.snap.Listeners {
			e := entry{name: l.Name}
			for _, b := range bound[l.Name] {
				e.addrs = append(e.addrs, b.Addr.String())
			}
			if len(e.addrs) == 0 {
				e.addrs = []string{l.Address.String()}
			}
			entries = append(entries, e)
		}
	}
	if r.URL.Query().Get("format") == "json" {
		out := &adminv3.Listeners{}
		for _, e := range entries {
			ls := &adminv3.ListenerStatus{Name: e.name, LocalAddress: socketAddress(e.addrs[0])}
			for _, a := range e.addrs[1:] {
				ls.AdditionalLocalAddresses = append(ls.AdditionalLocalAddresses, socketAddress(a))
			}
			out.ListenerStatuses = append(out.ListenerStatuses, ls)
		}
		writeJSON(w, out)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	for _, e := range entries {
		fmt.Fprintf(w, "%s::%s\n", e.name, strings.Join(e.addrs, ","))
	}
}

// ---- /config_dump ----

func (p *Proxy) handleConfigDump(w http.ResponseWriter, r *http.Request) {
	_, includeEDS := r.URL.Query()["include_eds"]
	dump, err := p.configDump(includeEDS)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, dump)
}

// configDump renders the received xDS resources in Envoy's ConfigDump
// shape: ClustersConfigDump, (EndpointsConfigDump with include_eds),
// ListenersConfigDump, RoutesConfigDump, all as dynamic resources.
func (p *Proxy) configDump(includeEDS bool) (*adminv3.ConfigDump, error) {
	rs := p.state.Load()
	dump := &adminv3.ConfigDump{}
	if rs == nil {
		return dump, nil
	}
	s := rs.snap
	updated := timestamppb.New(p.appliedAt(rs))
	ver := func(t string) string { return s.Versions[t] }
	var msgs []proto.Message

	clusters := &adminv3.ClustersConfigDump{VersionInfo: ver(typeCluster)}
	for _, m := range sortedResources(s.Resources[typeCluster]) {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("config dump: %w", err)
		}
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{
			VersionInfo: ver(typeCluster), Cluster: a, LastUpdated: updated,
		})
	}
	msgs = append(msgs, clusters)

	if includeEDS {
		eps := &adminv3.EndpointsConfigDump{}
		for _, m := range sortedResources(s.Resources[typeEndpoint]) {
			a, err := anypb.New(m)
			if err != nil {
				return nil, fmt.Errorf("config dump: %w", err)
			}
			eps.DynamicEndpointConfigs = append(eps.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
				VersionInfo: ver(typeEndpoint), EndpointConfig: a, LastUpdated: updated,
			})
		}
		msgs = append(msgs, eps)
	}

	listeners := &adminv3.ListenersConfigDump{VersionInfo: ver(typeListener)}
	for _, m := range sortedResources(s.Resources[typeListener]) {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("config dump: %w", err)
		}
		listeners.DynamicListeners = append(listeners.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: resourceName(m),
			ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{
				VersionInfo: ver(typeListener), Listener: a, LastUpdated: updated,
			},
		})
	}
	msgs = append(msgs, listeners)

	routes := &adminv3.RoutesConfigDump{}
	for _, m := range sortedResources(s.Resources[typeRoute]) {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("config dump: %w", err)
		}
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
			VersionInfo: ver(typeRoute), RouteConfig: a, LastUpdated: updated,
		})
	}
	msgs = append(msgs, routes)

	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("config dump: %w", err)
		}
		dump.Configs = append(dump.Configs, a)
	}
	return dump, nil
}

// appliedAt is when a snapshot state was swapped in.
func (p *Proxy) appliedAt(rs *runtimeState) time.Time {
	if rs.appliedAt.IsZero() {
		return p.started
	}
	return rs.appliedAt
}

func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case interface{ GetName() string }:
		return r.GetName()
	case interface{ GetClusterName() string }:
		return r.GetClusterName()
	}
	return ""
}

func sortedResources(ms []proto.Message) []proto.Message {
	out := slices.Clone(ms)
	slices.SortStableFunc(out, func(a, b proto.Message) int { return strings.Compare(resourceName(a), resourceName(b)) })
	return out
}

// ---- /stats ----

// statsQuery reads the query parameters Envoy's /stats endpoints take:
// filter (a regular expression over full stat names; 400 when it does not
// compile) and usedonly.
func statsQuery(w http.ResponseWriter, r *http.Request) (filter *regexp.Regexp, usedOnly, ok bool) {
	q := r.URL.Query()
	if f := q.Get("filter"); f != "" {
		var err error
		if filter, err = regexp.Compile(f); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "Invalid regex: filter: %v\n", err)
			return nil, false, false
		}
	}
	_, usedOnly = q["usedonly"]
	return filter, usedOnly, true
}

// handleStats is /stats: Envoy's text format, ?format=json or
// ?format=prometheus.
func (p *Proxy) handleStats(w http.ResponseWriter, r *http.Request) {
	switch f := r.URL.Query().Get("format"); f {
	case "prometheus":
		p.handlePrometheus(w, r)
		return
	case "", "text", "json":
	default:
		http.Error(w, "format: must be one of text, json, prometheus", http.StatusBadRequest)
		return
	}
	filter, usedOnly, ok := statsQuery(w, r)
	if !ok {
		return
	}
	p.refreshServerStats()
	var b bytes.Buffer
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		_ = p.stats.WriteJSON(&b, filter, usedOnly)
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		_ = p.stats.WriteText(&b, filter, usedOnly)
	}
	_, _ = w.Write(b.Bytes())
}

// handlePrometheus is /stats/prometheus: Envoy's stats with Envoy's
// Prometheus naming, then the mesh metrics (meshlens_*).
func (p *Proxy) handlePrometheus(w http.ResponseWriter, r *http.Request) {
	filter, usedOnly, ok := statsQuery(w, r)
	if !ok {
		return
	}
	p.refreshServerStats()
	var b bytes.Buffer
	_ = p.stats.WritePrometheus(&b, filter, usedOnly)
	if p.mesh.Store() != nil {
		_ = p.mesh.Store().WritePrometheus(&b, filter, usedOnly)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

// handleResetCounters is POST /reset_counters: every counter to zero, as
// Envoy does (gauges and histograms stay).
func (p *Proxy) handleResetCounters(w http.ResponseWriter, r *http.Request) {
	p.stats.ResetCounters()
	if p.mesh.Store() != nil {
		p.mesh.Store().ResetCounters()
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	fmt.Fprintln(w, "OK")
}
