// Package metricshistory answers the console's questions about traffic
// (requests per second, error ratio, latency quantiles per node, service,
// edge and route, over a window and as time series) from the proxies'
// mesh metrics: either from a bounded in-memory history fed by the
// proxies' metrics service streams (Store), or from a Prometheus server
// that scrapes the same metrics (Prometheus), behind one interface
// (Reader).
package metricshistory

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Label names of the mesh metrics, as docs/stats.md lists them.
const (
	LabelReporter            = "reporter"
	LabelSourceMesh          = "source_mesh"
	LabelSourceKind          = "source_kind"
	LabelSourceWorkload      = "source_workload"
	LabelDestinationMesh     = "destination_mesh"
	LabelDestinationService  = "destination_service"
	LabelDestinationWorkload = "destination_workload"
	LabelRoute               = "route"
	LabelProtocol            = "protocol"
	LabelSecurity            = "connection_security_policy"
	LabelResponseCode        = "response_code"
	LabelGRPCStatus          = "grpc_status"
)

// Metric names the history reads.
const (
	RequestsTotal   = "meshlens_requests_total"
	RequestDuration = "meshlens_request_duration_seconds"
)

// Labels identify a series of the history: one edge of the graph as one
// reporter saw it, for one route and protocol. A query's Selector and a
// result's group use the same type, empty fields meaning "any" and "not
// grouped by".
type Labels struct {
	Reporter            string `json:"reporter,omitempty"`
	SourceMesh          string `json:"sourceMesh,omitempty"`
	SourceKind          string `json:"sourceKind,omitempty"`
	SourceWorkload      string `json:"sourceWorkload,omitempty"`
	DestinationMesh     string `json:"destinationMesh,omitempty"`
	DestinationService  string `json:"destinationService,omitempty"`
	DestinationWorkload string `json:"destinationWorkload,omitempty"`
	Route               string `json:"route,omitempty"`
	Protocol            string `json:"protocol,omitempty"`
	// Security is connection_security_policy: "mutual_tls" when the
	// called side verified the caller's certificate, "none" when not,
	// "unknown" on the calling side.
	Security string `json:"connectionSecurityPolicy,omitempty"`
}

// labelNames lists the grouping labels in a fixed order.
var labelNames = []string{LabelReporter, LabelSourceMesh, LabelSourceKind, LabelSourceWorkload,
	LabelDestinationMesh, LabelDestinationService, LabelDestinationWorkload, LabelRoute, LabelProtocol, LabelSecurity}

// LabelNames are the labels a query can select on and group by.
func LabelNames() []string { return append([]string(nil), labelNames...) }

func (l *Labels) field(name string) *string {
	switch name {
	case LabelReporter:
		return &l.Reporter
	case LabelSourceMesh:
		return &l.SourceMesh
	case LabelSourceKind:
		return &l.SourceKind
	case LabelSourceWorkload:
		return &l.SourceWorkload
	case LabelDestinationMesh:
		return &l.DestinationMesh
	case LabelDestinationService:
		return &l.DestinationService
	case LabelDestinationWorkload:
		return &l.DestinationWorkload
	case LabelRoute:
		return &l.Route
	case LabelProtocol:
		return &l.Protocol
	case LabelSecurity:
		return &l.Security
	}
	return nil
}

// Get is the value of the label name ("" for an unknown name).
func (l Labels) Get(name string) string {
	if p := l.field(name); p != nil {
		return *p
	}
	return ""
}

// Set sets the label name; it reports false for a name that is not one of
// LabelNames.
func (l *Labels) Set(name, value string) bool {
	p := l.field(name)
	if p == nil {
		return false
	}
	*p = value
	return true
}

// matches reports whether l has every non-empty value of sel.
func (l Labels) matches(sel Labels) bool {
	for _, n := range labelNames {
		if v := sel.Get(n); v != "" && l.Get(n) != v {
			return false
		}
	}
	return true
}

// group keeps only the labels named in by.
func (l Labels) group(by []string) Labels {
	var g Labels
	for _, n := range by {
		g.Set(n, l.Get(n))
	}
	return g
}

// Query asks for the traffic of the series that match Selector, summed
// per group of the GroupBy labels, over the Window that ends At (zero:
// now).
type Query struct {
	Selector Labels
	GroupBy  []string
	Window   time.Duration
	At       time.Time
}

// RangeQuery asks for the same as Query as a time series: one point per
// Step from Start to End, each covering the Step before it.
type RangeQuery struct {
	Selector   Labels
	GroupBy    []string
	Start, End time.Time
	Step       time.Duration
}

// Stat is the traffic of one group over a window. Quantiles are in
// seconds, NaN when the window has no latency samples.
type Stat struct {
	Labels     Labels
	RPS        float64
	ErrorRatio float64 // errors / requests; 0 without requests
	// ErrorsByCode is errors per second per response code (5xx, 4xx,
	// and gRPC statuses as "grpc:<status>").
	ErrorsByCode  map[string]float64
	P50, P90, P99 float64
}

// Point is a Stat at one time of a series.
type Point struct {
	Time time.Time
	Stat
}

// Series is one group's points.
type Series struct {
	Labels Labels
	Points []Point
}

// Reader answers traffic queries. Store and Prometheus implement it.
type Reader interface {
	Stats(ctx context.Context, q Query) ([]Stat, error)
	Range(ctx context.Context, q RangeQuery) ([]Series, error)
}

// Limits on queries, so that one request cannot ask for unbounded work.
const (
	MaxWindow = 24 * time.Hour
	MaxPoints = 2000
)

// Validate checks a query's window and groups.
func (q Query) Validate() error {
	if q.Window <= 0 || q.Window > MaxWindow {
		return fmt.Errorf("window %s: want more than 0 and at most %s", q.Window, MaxWindow)
	}
	return validGroupBy(q.GroupBy)
}

// Validate checks a range query's bounds, step and groups.
func (q RangeQuery) Validate() error {
	switch {
	case q.Step <= 0:
		return fmt.Errorf("step %s: want more than 0", q.Step)
	case !q.End.After(q.Start):
		return fmt.Errorf("end %s: want after start %s", q.End.Format(time.RFC3339), q.Start.Format(time.RFC3339))
	case q.End.Sub(q.Start)/q.Step > MaxPoints:
		return fmt.Errorf("step %s: gives more than %d points from start to end", q.Step, MaxPoints)
	}
	return validGroupBy(q.GroupBy)
}

func validGroupBy(by []string) error {
	for _, n := range by {
		var l Labels
		if !l.Set(n, "x") {
			return fmt.Errorf("groupBy %q: not a label (want one of %v)", n, labelNames)
		}
	}
	return nil
}

// Buckets are the upper bounds, in seconds, of the latency histogram's
// buckets (Envoy's defaults, as the proxies export them); the last bucket
// (+Inf) is implied.
var Buckets = []float64{0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600}

// numBuckets counts the +Inf bucket too.
const numBuckets = 20

// quantile is Prometheus's histogram_quantile over per-bucket (not
// cumulative) counts: the bucket holding the q-th sample, interpolated
// linearly from its lower bound (0 for the first bucket); a quantile in
// the +Inf bucket is the largest finite bound. NaN without samples.
func quantile(q float64, counts *[numBuckets]uint64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if float64(cum+c) >= rank {
			if i == len(Buckets) {
				return Buckets[len(Buckets)-1]
			}
			lower := 0.0
			if i > 0 {
				lower = Buckets[i-1]
			}
			return lower + (Buckets[i]-lower)*(rank-float64(cum))/float64(c)
		}
		cum += c
	}
	return Buckets[len(Buckets)-1]
}
