package controlplane

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/store"
	"github.com/meshlens/meshlens/internal/xds"
)

// metrics are the control plane's own metrics, served on the API address
// at /metrics in Prometheus's text format. They are the control plane's
// (not Envoy's) so they use plain Prometheus names.
type metrics struct {
	reg *prometheus.Registry

	xdsSent     *prometheus.CounterVec
	xdsAcks     *prometheus.CounterVec
	xdsNacks    *prometheus.CounterVec
	xdsRTT      *prometheus.HistogramVec
	xdsPush     *prometheus.HistogramVec
	rebuilds    prometheus.Histogram
	rebuiltView prometheus.Counter
	storeOps    *prometheus.CounterVec
	storeTime   *prometheus.HistogramVec
	apiRequests *prometheus.CounterVec
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.xdsSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlens_controlplane_xds_responses_total", Help: "xDS responses sent to data planes, by resource type.",
	}, []string{"type"})
	m.xdsAcks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlens_controlplane_xds_acks_total", Help: "New configuration versions data planes accepted, by resource type.",
	}, []string{"type"})
	m.xdsNacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlens_controlplane_xds_nacks_total", Help: "Configuration data planes rejected (NACK), by resource type.",
	}, []string{"type"})
	m.xdsRTT = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "meshlens_controlplane_xds_ack_latency_seconds", Help: "Time from sending a response to its ACK, by resource type.",
		Buckets: latencyBuckets,
	}, []string{"type"})
	m.xdsPush = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "meshlens_controlplane_xds_push_latency_seconds", Help: "Time from a change reaching the xDS server to a data plane accepting the new version, by resource type.",
		Buckets: latencyBuckets,
	}, []string{"type"})
	m.rebuilds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "meshlens_controlplane_xds_rebuild_seconds", Help: "Time to translate the views of the data planes a change affected.",
		Buckets: latencyBuckets,
	})
	m.rebuiltView = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshlens_controlplane_xds_views_built_total", Help: "Data-plane views translated.",
	})
	m.storeOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlens_controlplane_store_operations_total", Help: "Store writes, by operation and result.",
	}, []string{"op", "result"})
	m.storeTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "meshlens_controlplane_store_operation_seconds", Help: "Time of store writes (fsynced), by operation.",
		Buckets: latencyBuckets,
	}, []string{"op"})
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlens_controlplane_api_requests_total", Help: "REST API requests, by method and status code.",
	}, []string{"method", "code"})
	m.reg.MustRegister(m.xdsSent, m.xdsAcks, m.xdsNacks, m.xdsRTT, m.xdsPush, m.rebuilds, m.rebuiltView,
		m.storeOps, m.storeTime, m.apiRequests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// typeName shortens a type URL to the xDS service name (lds, rds, cds, eds).
func typeName(typeURL string) string {
	switch typeURL {
	case "type.googleapis.com/envoy.config.listener.v3.Listener":
		return "lds"
	case "type.googleapis.com/envoy.config.route.v3.RouteConfiguration":
		return "rds"
	case "type.googleapis.com/envoy.config.cluster.v3.Cluster":
		return "cds"
	case "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment":
		return "eds"
	case "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret":
		return "sds"
	}
	return "other"
}

// xds.Metrics.
var _ xds.Metrics = (*metrics)(nil)

func (m *metrics) Rebuilt(n int, d time.Duration) {
	m.rebuilds.Observe(d.Seconds())
	m.rebuiltView.Add(float64(n))
}
func (m *metrics) Sent(typeURL string) { m.xdsSent.WithLabelValues(typeName(typeURL)).Inc() }
func (m *metrics) NACKed(typeURL string) {
	m.xdsNacks.WithLabelValues(typeName(typeURL)).Inc()
}
func (m *metrics) Acked(typeURL string, rtt, sinceUpdate time.Duration) {
	t := typeName(typeURL)
	m.xdsAcks.WithLabelValues(t).Inc()
	m.xdsRTT.WithLabelValues(t).Observe(rtt.Seconds())
	if sinceUpdate > 0 {
		m.xdsPush.WithLabelValues(t).Observe(sinceUpdate.Seconds())
	}
}

// observeStore records one store write.
func (m *metrics) observeStore(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, store.ErrConflict):
		result = "conflict"
	case errors.Is(err, store.ErrNotFound):
		result = "not_found"
	case errors.Is(err, v1alpha1.ErrResourceInUse), errors.Is(err, v1alpha1.ErrReferenceNotFound), errors.Is(err, v1alpha1.ErrInvalidReference), errors.Is(err, errDryRun):
		result = "rejected"
	case errors.Is(err, context.Canceled):
		result = "canceled"
	default:
		result = "error"
	}
	m.storeOps.WithLabelValues(op, result).Inc()
	m.storeTime.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// stateCollector reports gauges read at scrape time: connected data
// planes, streams, store revision and resources, registered instances.
type stateCollector struct {
	s                                       *Server
	proxies, streams, revision, res, instns *prometheus.Desc
}

func newStateCollector(s *Server) *stateCollector {
	return &stateCollector{
		s:        s,
		proxies:  prometheus.NewDesc("meshlens_controlplane_proxies_connected", "Data planes connected over xDS, by flavour (envoy or proxyless).", []string{"flavour"}, nil),
		streams:  prometheus.NewDesc("meshlens_controlplane_xds_streams", "Open xDS streams.", nil, nil),
		revision: prometheus.NewDesc("meshlens_controlplane_store_revision", "The store's revision.", nil, nil),
		res:      prometheus.NewDesc("meshlens_controlplane_resources", "Stored resources, by kind.", []string{"kind"}, nil),
		instns:   prometheus.NewDesc("meshlens_controlplane_registered_instances", "Live registered instances.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.proxies
	ch <- c.streams
	ch <- c.revision
	ch <- c.res
	ch <- c.instns
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	// Counted, not listed: a scrape with thousands of streams and
	// instances allocated tens of megabytes listing them.
	byFlavour, streams := c.s.xds.Connected()
	for fl, n := range byFlavour {
		ch <- prometheus.MustNewConstMetric(c.proxies, prometheus.GaugeValue, float64(n), fl)
	}
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(streams))
	snap := c.s.store.Snapshot()
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(snap.Revision()))
	for _, k := range v1alpha1.Kinds {
		ch <- prometheus.MustNewConstMetric(c.res, prometheus.GaugeValue, float64(len(snap.List(k, "", ""))), string(k))
	}
	ch <- prometheus.MustNewConstMetric(c.instns, prometheus.GaugeValue, float64(c.s.registry.View().Len()))
}

// handler serves /metrics.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// countRequests wraps the API to count requests by method and status.
func (m *metrics) countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		m.apiRequests.WithLabelValues(r.Method, strconv.Itoa(sw.status)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection's writer, so
// that a streaming answer (the console's server-sent events) can flush.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
