package proxy

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// Admin /clusters and /listeners: the runtime view of clusters, endpoints
// and listeners, in Envoy's text and JSON formats.

// sortedViews lists the current snapshot's cluster views by name.
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
		var out clustersJSON
		for _, v := range views {
			cs := clusterStatusJSON{Name: v.Cluster.Name, AddedViaAPI: true, ObservabilityName: v.Cluster.Name}
			if v.Cluster.Type == table.ClusterEDS && v.Cluster.ServiceName != "" && v.Cluster.ServiceName != v.Cluster.Name {
				cs.EDSServiceName = v.Cluster.ServiceName
			}
			for _, e := range v.Endpoints() {
				hs := hostStatusJSON{
					Address:      socketAddress(e.Addr),
					Weight:       max(e.Spec.Weight, 1),
					Hostname:     e.Hostname,
					Priority:     e.Spec.Priority,
					HealthStatus: hostHealthStatusJSON{EDSHealthStatus: "HEALTHY"},
				}
				if !e.Spec.Healthy {
					hs.HealthStatus.EDSHealthStatus = "UNHEALTHY"
				}
				if e.Stats != nil {
					hs.HealthStatus.FailedOutlierCheck = e.Stats.Outlier.Ejected()
					hs.HealthStatus.FailedActiveHealthCheck = e.Stats.HC.Failed.Load()
					hs.HealthStatus.PendingActiveHC = e.Stats.HC.Pending.Load()
				}
				if e.Spec.Zone != "" {
					hs.Locality = &localityJSON{Zone: e.Spec.Zone}
				}
				for _, st := range hostStats(e) {
					t := "COUNTER"
					if st.gauge {
						t = "GAUGE"
					}
					hs.Stats = append(hs.Stats, simpleMetricJSON{Name: st.name, Type: t, Value: uint64(max(st.v, 0))})
				}
				cs.HostStatuses = append(cs.HostStatuses, hs)
			}
			out.ClusterStatuses = append(out.ClusterStatuses, cs)
		}
		writeAdminJSON(w, out)
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
		var out listenersJSON
		for _, e := range entries {
			ls := listenerStatusJSON{Name: e.name, LocalAddress: socketAddress(e.addrs[0])}
			for _, a := range e.addrs[1:] {
				ls.AdditionalLocalAddresses = append(ls.AdditionalLocalAddresses, socketAddress(a))
			}
			out.ListenerStatuses = append(out.ListenerStatuses, ls)
		}
		writeAdminJSON(w, out)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	for _, e := range entries {
		fmt.Fprintf(w, "%s::%s\n", e.name, strings.Join(e.addrs, ","))
	}
}
