package metricshistory

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Prometheus answers the same queries as Store with PromQL over the same
// metrics, scraped by a Prometheus server from the proxies'
// /stats/prometheus.
type Prometheus struct {
	base   *url.URL
	client *http.Client
	now    func() time.Time
}

// DefaultPrometheusTimeout bounds one query.
const DefaultPrometheusTimeout = 10 * time.Second

// maxPrometheusBody bounds a query's answer.
const maxPrometheusBody = 64 << 20

// minRateWindow is the shortest range a rate() of Range reads, so that a
// short step still spans several scrapes.
const minRateWindow = 30 * time.Second

// NewPrometheus returns a Reader querying the Prometheus server at
// rawURL (http or https, e.g. http://127.0.0.1:9090).
func NewPrometheus(rawURL string) (*Prometheus, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("prometheus url %q: %w", rawURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus url %q: want http(s)://host:port", rawURL)
	}
	return &Prometheus{base: u, client: &http.Client{Timeout: DefaultPrometheusTimeout}, now: time.Now}, nil
}

// selector renders Labels as a PromQL label matcher list.
func selector(sel Labels, extra ...string) string {
	var parts []string
	for _, n := range labelNames {
		if v := sel.Get(n); v != "" {
			parts = append(parts, n+"="+strconv.Quote(v))
		}
	}
	parts = append(parts, extra...)
	return "{" + strings.Join(parts, ",") + "}"
}

func promDuration(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10) + "s"
}

// queries are the PromQL expressions of one Stat per group: requests
// per second, errors per second, errors by code, and the quantiles.
func queries(sel Labels, by []string, window time.Duration) map[string]string {
	g := strings.Join(by, ",")
	w := promDuration(window)
	req := RequestsTotal + selector(sel)
	errSel := RequestsTotal + selector(sel, `response_code=~"5.."`)
	codes := RequestsTotal + selector(sel, `response_code=~"[45].."`)
	bucket := RequestDuration + "_bucket" + selector(sel)
	gle := "le"
	if g != "" {
		gle = g + ",le"
	}
	gcode := LabelResponseCode
	if g != "" {
		gcode = g + "," + LabelResponseCode
	}
	q := map[string]string{
		"rps":    fmt.Sprintf("sum by (%s) (rate(%s[%s]))", g, req, w),
		"errors": fmt.Sprintf("sum by (%s) (rate(%s[%s]))", g, errSel, w),
		"codes":  fmt.Sprintf("sum by (%s) (rate(%s[%s]))", gcode, codes, w),
	}
	for name, v := range map[string]string{"p50": "0.5", "p90": "0.9", "p99": "0.99"} {
		q[name] = fmt.Sprintf("histogram_quantile(%s, sum by (%s) (rate(%s[%s])))", v, gle, bucket, w)
	}
	return q
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

type promResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	} `json:"data"`
}

func (p *Prometheus) get(ctx context.Context, path string, params url.Values) ([]promSample, error) {
	u := p.base.JoinPath(path)
	u.RawQuery = params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPrometheusBody+1))
	if err != nil {
		return nil, fmt.Errorf("prometheus: read answer: %w", err)
	}
	if len(b) > maxPrometheusBody {
		return nil, fmt.Errorf("prometheus: answer larger than %d bytes", maxPrometheusBody)
	}
	var pr promResponse
	if err := json.Unmarshal(b, &pr); err != nil {
		return nil, fmt.Errorf("prometheus: %s: decode answer: %w", resp.Status, err)
	}
	if pr.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s: %s: %s (query %s)", resp.Status, pr.ErrorType, pr.Error, params.Get("query"))
	}
	return pr.Data.Result, nil
}

func sampleFloat(v [2]any) (time.Time, float64, bool) {
	ts, ok1 := v[0].(float64)
	s, ok2 := v[1].(string)
	if !ok1 || !ok2 {
		return time.Time{}, 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, 0, false
	}
	sec, frac := math.Modf(ts)
	return time.Unix(int64(sec), int64(frac*1e9)), f, true
}

func groupOf(m map[string]string, by []string) Labels {
	var l Labels
	for _, n := range by {
		l.Set(n, m[n])
	}
	return l
}

// point accumulates one group's answers at one time.
type point struct {
	rps, errs     float64
	codes         map[string]float64
	p50, p90, p99 float64
}

func newPoint() *point { return &point{p50: math.NaN(), p90: math.NaN(), p99: math.NaN()} }

func (pt *point) set(name string, m map[string]string, v float64) {
	switch name {
	case "rps":
		pt.rps = v
	case "errors":
		pt.errs = v
	case "codes":
		if v > 0 {
			if pt.codes == nil {
				pt.codes = map[string]float64{}
			}
			pt.codes[m[LabelResponseCode]] += v
		}
	case "p50":
		pt.p50 = v
	case "p90":
		pt.p90 = v
	case "p99":
		pt.p99 = v
	}
}

func (pt *point) stat(l Labels) Stat {
	st := Stat{Labels: l, RPS: pt.rps, ErrorsByCode: pt.codes, P50: pt.p50, P90: pt.p90, P99: pt.p99}
	if pt.rps > 0 {
		st.ErrorRatio = pt.errs / pt.rps
	}
	return st
}

// Stats implements Reader with instant queries.
func (p *Prometheus) Stats(ctx context.Context, q Query) ([]Stat, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	at := q.At
	if at.IsZero() {
		at = p.now()
	}
	groups := map[Labels]*point{}
	for name, expr := range queries(q.Selector, q.GroupBy, q.Window) {
		res, err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}, "time": {strconv.FormatFloat(float64(at.UnixNano())/1e9, 'f', 3, 64)}})
		if err != nil {
			return nil, err
		}
		for _, s := range res {
			_, v, ok := sampleFloat(s.Value)
			if !ok {
				continue
			}
			l := groupOf(s.Metric, q.GroupBy)
			if groups[l] == nil {
				if name != "rps" {
					continue // groups come from the request rate
				}
				groups[l] = newPoint()
			}
			groups[l].set(name, s.Metric, v)
		}
	}
	out := make([]Stat, 0, len(groups))
	for l, pt := range groups {
		out = append(out, pt.stat(l))
	}
	sortStats(out)
	return out, nil
}

// Range implements Reader with range queries; each point's rates cover
// the step before it, and at least 30s.
func (p *Prometheus) Range(ctx context.Context, q RangeQuery) ([]Series, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	window := max(q.Step, minRateWindow)
	step := strconv.FormatFloat(q.Step.Seconds(), 'f', -1, 64)
	groups := map[Labels]map[int64]*point{}
	for name, expr := range queries(q.Selector, q.GroupBy, window) {
		res, err := p.get(ctx, "/api/v1/query_range", url.Values{"query": {expr}, "step": {step},
			"start": {strconv.FormatInt(q.Start.Unix(), 10)}, "end": {strconv.FormatInt(q.End.Unix(), 10)}})
		if err != nil {
			return nil, err
		}
		for _, s := range res {
			l := groupOf(s.Metric, q.GroupBy)
			pts := groups[l]
			if pts == nil {
				if name != "rps" {
					continue
				}
				pts = map[int64]*point{}
				groups[l] = pts
			}
			for _, v := range s.Values {
				t, f, ok := sampleFloat(v)
				if !ok {
					continue
				}
				pt := pts[t.Unix()]
				if pt == nil {
					pt = newPoint()
					pts[t.Unix()] = pt
				}
				pt.set(name, s.Metric, f)
			}
		}
	}
	out := make([]Series, 0, len(groups))
	for l, pts := range groups {
		sr := Series{Labels: l}
		for ts, pt := range pts {
			sr.Points = append(sr.Points, Point{Time: time.Unix(ts, 0), Stat: pt.stat(l)})
		}
		sort.Slice(sr.Points, func(i, j int) bool { return sr.Points[i].Time.Before(sr.Points[j].Time) })
		out = append(out, sr)
	}
	sort.Slice(out, func(i, j int) bool { return lessLabels(out[i].Labels, out[j].Labels) })
	return out, nil
}
