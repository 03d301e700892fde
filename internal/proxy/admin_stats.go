package proxy

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"

	"github.com/meshlens/meshlens/internal/stats"
)

// Admin /stats, /stats/prometheus and /reset_counters.
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
	if stats.AcceptsOpenMetrics(r.Header.Get("Accept")) {
		// OpenMetrics, with the latency histograms' exemplars: the two
		// stores' expositions joined under one "# EOF".
		_ = p.stats.WriteOpenMetrics(&b, filter, usedOnly)
		if p.mesh.Store() != nil {
			b.Truncate(len(bytes.TrimSuffix(b.Bytes(), []byte("# EOF\n"))))
			_ = p.mesh.Store().WriteOpenMetrics(&b, filter, usedOnly)
		}
		w.Header().Set("Content-Type", stats.OpenMetricsContentType)
		_, _ = w.Write(b.Bytes())
		return
	}
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
