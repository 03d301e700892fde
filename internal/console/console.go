// Package console is the JSON API the meshlens console draws from
// (/v1/console/...): the service graph built from the resources and the
// observed traffic, time series of golden metrics, the slowest and most
// failing routes. It reads traffic through metricshistory.Reader (the
// built-in history or Prometheus) and resources through a Lookup, and
// computes everything the front-end shows, so that the front-end only
// draws.
package console

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/metricshistory"
)

// MaxStreamClients bounds the graph/stream subscribers at once.
const MaxStreamClients = 64

// StreamInterval is how often graph/stream pushes a new graph.
const StreamInterval = 5 * time.Second

// Handler serves the console API.
type Handler struct {
	// Resources is the current state of the meshes.
	Resources func() v1alpha1.Lookup
	// Metrics answers traffic queries: the built-in history or
	// Prometheus.
	Metrics metricshistory.Reader
	// Nodes lists the proxies that report over the metrics service, with
	// their view of their endpoints (nil: no instances).
	Nodes func() []metricshistory.NodeReport
	// PeerInstances, when set, answers for the other control-plane
	// replicas sharing the store: the instances each one's proxies
	// report (asked of each with ?scope=local and r's Authorization) and
	// the replicas that did not answer. Without ?scope=local,
	// /v1/console/instances merges them with Nodes' own.
	PeerInstances func(r *http.Request) (lists [][]Instance, unreachable []string, err error)
	// Interval is graph/stream's period (default StreamInterval).
	Interval time.Duration

	once    sync.Once
	clients chan struct{}
}

// Register adds the console's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/console/graph", h.handleGraph)
	mux.HandleFunc("GET /v1/console/graph/stream", h.handleGraphStream)
	mux.HandleFunc("GET /v1/console/metrics", h.handleMetrics)
	mux.HandleFunc("GET /v1/console/top", h.handleTop)
	mux.HandleFunc("GET /v1/console/instances", h.handleInstances)
}

// Num is a float that encodes NaN and infinities as null (a quantile
// with no samples).
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func badRequest(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"status": http.StatusBadRequest, "code": "BadRequest", "message": err.Error()})
}

func (h *Handler) handleGraph(w http.ResponseWriter, r *http.Request) {
	window, err := parseDuration(r.URL.Query(), "window", DefaultWindow, metricshistory.MaxWindow)
	if err != nil {
		badRequest(w, err)
		return
	}
	g, err := h.Graph(r.Context(), r.URL.Query().Get("mesh"), window)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]any{"status": http.StatusBadGateway, "code": "MetricsUnavailable", "message": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// handleGraphStream pushes the graph as server-sent events ("event:
// graph") every Interval until the client goes away; at most
// MaxStreamClients at once (503 beyond).
func (h *Handler) handleGraphStream(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() { h.clients = make(chan struct{}, MaxStreamClients) })
	window, err := parseDuration(r.URL.Query(), "window", DefaultWindow, metricshistory.MaxWindow)
	if err != nil {
		badRequest(w, err)
		return
	}
	select {
	case h.clients <- struct{}{}:
		defer func() { <-h.clients }()
	default:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": 503, "code": "TooManyStreams", "message": "graph/stream: too many clients"})
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	interval := h.Interval
	if interval <= 0 {
		interval = StreamInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	mesh := r.URL.Query().Get("mesh")
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(interval + 10*time.Second))
		g, err := h.Graph(r.Context(), mesh, window)
		var b []byte
		if err == nil {
			b, err = json.Marshal(g)
		}
		if err != nil {
			b, _ = json.Marshal(map[string]string{"message": err.Error()})
			_, err = w.Write(append(append([]byte("event: error\ndata: "), b...), '\n', '\n'))
		} else {
			_, err = w.Write(append(append([]byte("event: graph\ndata: "), b...), '\n', '\n'))
		}
		if err != nil || rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// Point is one time of a metrics series.
type Point struct {
	Time         time.Time          `json:"time"`
	RPS          Num                `json:"rps"`
	ErrorRatio   Num                `json:"errorRatio"`
	ErrorsByCode map[string]float64 `json:"errorsByCode,omitempty"`
	P50          Num                `json:"p50"`
	P90          Num                `json:"p90"`
	P99          Num                `json:"p99"`
}

// MetricsResponse is GET /v1/console/metrics's body.
type MetricsResponse struct {
	Kind   string  `json:"kind"`
	Mesh   string  `json:"mesh,omitempty"`
	Name   string  `json:"name"`
	Source string  `json:"source,omitempty"`
	Step   string  `json:"step"`
	Points []Point `json:"points"`
}

func (h *Handler) handleMetrics(w http.ResponseWriter, r *http.Request) {
	p, err := parseMetricsParams(r.URL.Query())
	if err != nil {
		badRequest(w, err)
		return
	}
	end := time.Now()
	series, err := h.Metrics.Range(r.Context(), metricshistory.RangeQuery{Selector: p.selector(), Start: end.Add(-p.Range), End: end, Step: p.Step})
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]any{"status": http.StatusBadGateway, "code": "MetricsUnavailable", "message": err.Error()})
		return
	}
	resp := MetricsResponse{Kind: p.Kind, Mesh: p.Mesh, Name: p.Name, Source: p.Source, Step: p.Step.String(), Points: []Point{}}
	if len(series) > 0 {
		for _, pt := range series[0].Points {
			resp.Points = append(resp.Points, Point{Time: pt.Time.UTC(), RPS: Num(pt.RPS), ErrorRatio: Num(pt.ErrorRatio), ErrorsByCode: pt.ErrorsByCode,
				P50: Num(pt.P50), P90: Num(pt.P90), P99: Num(pt.P99)})
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// RouteStat is one route's golden metrics in GET /v1/console/top.
type RouteStat struct {
	Mesh       string `json:"mesh"`
	Route      string `json:"route"`
	Service    string `json:"service"`
	RPS        Num    `json:"rps"`
	ErrorRatio Num    `json:"errorRatio"`
	P50        Num    `json:"p50"`
	P99        Num    `json:"p99"`
}

// TopResponse lists the slowest routes (by p99) and the most failing
// (by error ratio), each at most limit long.
type TopResponse struct {
	Window  string      `json:"window"`
	Slowest []RouteStat `json:"slowest"`
	Failing []RouteStat `json:"failing"`
}

func (h *Handler) handleTop(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	window, err := parseDuration(v, "window", DefaultWindow, metricshistory.MaxWindow)
	if err != nil {
		badRequest(w, err)
		return
	}
	limit := DefaultTop
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxTop {
			badRequest(w, errorf("limit %q: want a number from 1 to %d", s, MaxTop))
			return
		}
		limit = n
	}
	stats, err := h.Metrics.Stats(r.Context(), metricshistory.Query{
		Selector: metricshistory.Labels{Reporter: "source", SourceMesh: v.Get("mesh")},
		GroupBy:  []string{metricshistory.LabelSourceMesh, metricshistory.LabelRoute, metricshistory.LabelDestinationService},
		Window:   window,
	})
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]any{"status": http.StatusBadGateway, "code": "MetricsUnavailable", "message": err.Error()})
		return
	}
	var routes []RouteStat
	for _, s := range stats {
		if s.RPS == 0 {
			continue
		}
		routes = append(routes, RouteStat{Mesh: s.Labels.SourceMesh, Route: s.Labels.Route, Service: s.Labels.DestinationService,
			RPS: Num(s.RPS), ErrorRatio: Num(s.ErrorRatio), P50: Num(s.P50), P99: Num(s.P99)})
	}
	resp := TopResponse{Window: window.String(), Slowest: top(routes, limit, func(r RouteStat) float64 { return float64(r.P99) }),
		Failing: top(routes, limit, func(r RouteStat) float64 { return float64(r.ErrorRatio) })}
	writeJSON(w, http.StatusOK, resp)
}

// top sorts by key, largest first (NaN last), and keeps limit, leaving
// out zero keys.
func top(rs []RouteStat, limit int, key func(RouteStat) float64) []RouteStat {
	out := []RouteStat{}
	for _, r := range rs {
		if k := key(r); k > 0 {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return key(out[i]) > key(out[j]) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func nan() float64 { return math.NaN() }

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
