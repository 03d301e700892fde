package controlplane

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlens/meshlens/internal/tracestore"
)

// traceDirName is the trace store's folder under the data dir.
const traceDirName = "traces"

// openTraceStore opens the built-in trace store: in memory, and on disk
// under the data dir when a disk budget is given. It also checks the
// address advertised to proxies for it.
func openTraceStore(cfg Config) (*tracestore.Store, error) {
	if a := cfg.OTLPAdvertiseAddr; a != "" {
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("otlp advertise addr: must be host:port with a port 1-65535, not %q", a)
		}
	}
	opts := cfg.TraceStore
	if opts.Logger == nil {
		opts.Logger = cfg.Logger
	}
	if opts.MaxDiskBytes > 0 && opts.Dir == "" {
		opts.Dir = filepath.Join(cfg.DataDir, traceDirName)
	}
	s, err := tracestore.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open trace store: %w", err)
	}
	return s, nil
}

// builtinCollector is where proxies send spans for the builtin tracing
// provider: the control plane's gRPC address, which serves OTLP beside
// xDS. It is empty, and builtin tracing off, when OTLP is disabled or
// the address is a wildcard that a proxy cannot dial and none is
// advertised; the log says so.
func (s *Server) builtinCollector() string {
	if s.cfg.DisableOTLP {
		return ""
	}
	if s.cfg.OTLPAdvertiseAddr != "" {
		return s.cfg.OTLPAdvertiseAddr
	}
	addr := s.xdsLn.Addr().(*net.TCPAddr)
	if addr.IP.IsUnspecified() {
		s.log.Warn("builtin tracing is off: the xDS address is a wildcard proxies cannot send spans to; set --otlp-advertise-addr",
			"xds", addr.String())
		return ""
	}
	return addr.String()
}

// traceStoreCollector exports the trace store's counters with the
// control plane's metrics.
type traceStoreCollector struct {
	s                                    *tracestore.Store
	spans, bytes, disk, traces, services *prometheus.Desc
	received, rejected, evicted, dups    *prometheus.Desc
}

func newTraceStoreCollector(s *tracestore.Store) *traceStoreCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("meshlens_controlplane_tracestore_"+name, help, nil, nil)
	}
	return &traceStoreCollector{
		s:        s,
		spans:    d("spans", "Spans the trace store keeps."),
		bytes:    d("bytes", "Bytes the kept spans are counted as (encoded size plus overhead)."),
		disk:     d("disk_bytes", "Bytes of the trace store's files on disk."),
		traces:   d("traces", "Traces the trace store keeps."),
		services: d("services", "Services with spans in the trace store."),
		received: d("spans_received_total", "Spans the trace store accepted."),
		rejected: d("spans_rejected_total", "Spans the trace store refused (bad ids, larger than the byte budget)."),
		evicted:  d("spans_evicted_total", "Spans evicted, oldest first, to stay within the bounds."),
		dups:     d("spans_duplicate_total", "Spans received again and ignored."),
	}
}

func (c *traceStoreCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.spans, c.bytes, c.disk, c.traces, c.services, c.received, c.rejected, c.evicted, c.dups} {
		ch <- d
	}
}

func (c *traceStoreCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(c.spans, st.Spans)
	gauge(c.bytes, st.Bytes)
	gauge(c.disk, st.DiskBytes)
	gauge(c.traces, int64(st.Traces))
	gauge(c.services, int64(st.Services))
	counter(c.received, st.Received)
	counter(c.rejected, st.Rejected)
	counter(c.evicted, st.Evicted)
	counter(c.dups, st.DuplicateSpans)
}
