package metricshistory

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Queries travel between control-plane replicas as URL parameters: every
// label of the selector by its metric name (source_mesh=m), groupBy as a
// comma-separated list, durations in Go's form (10s) and times as Unix
// nanoseconds, so that every replica counts the same slots.

// Values encodes q for ParseQuery. A zero At is sent as now.
func (q Query) Values(now time.Time) url.Values {
	v := selectorValues(q.Selector, q.GroupBy)
	v.Set("window", q.Window.String())
	at := q.At
	if at.IsZero() {
		at = now
	}
	v.Set("at", strconv.FormatInt(at.UnixNano(), 10))
	return v
}

// Values encodes q for ParseRangeQuery.
func (q RangeQuery) Values() url.Values {
	v := selectorValues(q.Selector, q.GroupBy)
	v.Set("start", strconv.FormatInt(q.Start.UnixNano(), 10))
	v.Set("end", strconv.FormatInt(q.End.UnixNano(), 10))
	v.Set("step", q.Step.String())
	return v
}

func selectorValues(sel Labels, by []string) url.Values {
	v := url.Values{}
	for _, n := range labelNames {
		if x := sel.Get(n); x != "" {
			v.Set(n, x)
		}
	}
	if len(by) > 0 {
		v.Set("groupBy", strings.Join(by, ","))
	}
	return v
}

// queryParams are the parameters other than labels each form takes.
var (
	queryParams      = map[string]bool{"groupBy": true, "window": true, "at": true, "scope": true}
	rangeQueryParams = map[string]bool{"groupBy": true, "start": true, "end": true, "step": true, "scope": true}
)

// ParseQuery decodes what Query.Values encodes, and validates it.
func ParseQuery(v url.Values) (Query, error) {
	var q Query
	var err error
	if q.Selector, q.GroupBy, err = parseSelector(v, queryParams); err != nil {
		return q, err
	}
	if q.Window, err = time.ParseDuration(v.Get("window")); err != nil {
		return q, fmt.Errorf("window %q: %w", v.Get("window"), err)
	}
	if q.At, err = parseNanos(v, "at"); err != nil {
		return q, err
	}
	return q, q.Validate()
}

// ParseRangeQuery decodes what RangeQuery.Values encodes, and validates
// it.
func ParseRangeQuery(v url.Values) (RangeQuery, error) {
	var q RangeQuery
	var err error
	if q.Selector, q.GroupBy, err = parseSelector(v, rangeQueryParams); err != nil {
		return q, err
	}
	if q.Step, err = time.ParseDuration(v.Get("step")); err != nil {
		return q, fmt.Errorf("step %q: %w", v.Get("step"), err)
	}
	if q.Start, err = parseNanos(v, "start"); err != nil {
		return q, err
	}
	if q.End, err = parseNanos(v, "end"); err != nil {
		return q, err
	}
	return q, q.Validate()
}

func parseSelector(v url.Values, params map[string]bool) (Labels, []string, error) {
	var sel Labels
	for k, vals := range v {
		if params[k] {
			continue
		}
		if !sel.Set(k, vals[0]) {
			return sel, nil, fmt.Errorf("parameter %q: not a label (want one of %v) nor one of %v", k, labelNames, keys(params))
		}
	}
	var by []string
	if s := v.Get("groupBy"); s != "" {
		by = strings.Split(s, ",")
	}
	return sel, by, nil
}

func parseNanos(v url.Values, name string) (time.Time, error) {
	n, err := strconv.ParseInt(v.Get(name), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("%s %q: want a time in Unix nanoseconds", name, v.Get(name))
	}
	return time.Unix(0, n), nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
