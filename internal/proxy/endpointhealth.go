package proxy

import (
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/meshlens/meshlens/internal/proxy/cluster"
)

// EndpointHealthMetric is the metric family EndpointHealth reports: one
// gauge (value 1) per endpoint of every mesh cluster, labelled with how
// this proxy sees it, the same states /clusters prints as health_flags.
// The control plane reads it by this name (metricshistory).
const EndpointHealthMetric = "meshlens_endpoint_health"

// maxHealthEndpoints bounds the endpoints one report lists.
const maxHealthEndpoints = 5000

// EndpointHealth is this proxy's view of the endpoints of the clusters
// that reach virtual nodes: for each, its address, the virtual node, the
// active health check's state (healthy, failed, pending, none), whether
// outlier detection ejected it, and whether EDS says it is healthy. The
// metrics service sends it to the control plane, which shows per virtual
// node how its callers see its instances.
func (p *Proxy) EndpointHealth() []*dto.MetricFamily {
	views := p.sortedViews()
	f := &dto.MetricFamily{Name: proto.String(EndpointHealthMetric), Type: dto.MetricType_GAUGE.Enum(),
		Help: proto.String("endpoints of mesh clusters as this proxy sees them")}
	for _, v := range views {
		m := v.Cluster.Meta
		if m.VirtualNode == "" || strings.HasPrefix(v.Cluster.Name, "cds_ingress") {
			continue
		}
		for _, e := range v.Endpoints() {
			if len(f.Metric) >= maxHealthEndpoints {
				break
			}
			f.Metric = append(f.Metric, &dto.Metric{
				Label: labelPairs(
					"cluster", v.Cluster.Name, "destination_mesh", m.Mesh, "destination_workload", m.VirtualNode,
					"address", e.Addr, "health_check", healthCheckState(v, e), "ejected", boolString(e.Stats != nil && e.Stats.Outlier.Ejected()),
					"eds_healthy", boolString(e.Spec.Healthy)),
				Gauge: &dto.Gauge{Value: proto.Float64(1)},
			})
		}
	}
	if len(f.Metric) == 0 {
		return nil
	}
	return []*dto.MetricFamily{f}
}

func healthCheckState(v *cluster.View, e *cluster.Endpoint) string {
	switch {
	case e.Stats == nil || v.Cluster.HealthCheck == nil && !e.Stats.HC.Failed.Load() && !e.Stats.HC.Pending.Load():
		return "none"
	case e.Stats.HC.Failed.Load():
		return "failed"
	case e.Stats.HC.Pending.Load():
		return "pending"
	}
	return "healthy"
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func labelPairs(kv ...string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	slices.SortFunc(out, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}
