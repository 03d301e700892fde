package tracestore

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits of a trace search.
const (
	// DefaultLimit is how many traces a search returns when it names no
	// limit (Jaeger's default).
	DefaultLimit = 100
	// MaxLimit caps a search's limit (the largest the Jaeger UI offers).
	MaxLimit = 1500
	// DefaultLookback is how far back a search looks when it names
	// neither start nor lookback (Jaeger's default query lookback).
	DefaultLookback = 48 * time.Hour
	// maxTags bounds the tag conditions of one search.
	maxTags = 50
	// maxTraceIDs bounds the traceID parameters of one search.
	maxTraceIDs = 100
)

// Query is a trace search, as Jaeger's /api/traces takes it.
type Query struct {
	Service, Operation       string
	Tags                     map[string]string
	Start, End               time.Time
	MinDuration, MaxDuration time.Duration
	Limit                    int
}

// ParseQuery reads the parameters of GET /api/traces, as Jaeger's query
// service reads them: service, operation, tag (key:value, repeated),
// tags (a JSON object of strings), start and end (µs since the epoch),
// lookback (a Go duration, used when start is absent), minDuration and
// maxDuration (Go durations), limit, and traceID (repeated; when present
// the other parameters are ignored). Errors name the parameter.
func ParseQuery(v url.Values, now time.Time) (Query, []traceID, error) {
	q := Query{Service: v.Get("service"), Operation: v.Get("operation"), Tags: map[string]string{}, Limit: DefaultLimit}
	var ids []traceID
	if len(v["traceID"]) > maxTraceIDs {
		return q, nil, fmt.Errorf("parameter 'traceID': at most %d trace ids", maxTraceIDs)
	}
	for _, s := range v["traceID"] {
		id, err := parseTraceID(s)
		if err != nil {
			return q, nil, fmt.Errorf("cannot parse traceID param %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	q.End = now
	if s := v.Get("end"); s != "" {
		t, err := parseMicros("end", s)
		if err != nil {
			return q, nil, err
		}
		q.End = t
	}
	lookback := DefaultLookback
	if s := v.Get("lookback"); s != "" && s != "custom" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return q, nil, fmt.Errorf("unable to parse param 'lookback': want a positive duration such as 1h, not %q", s)
		}
		lookback = d
	}
	q.Start = q.End.Add(-lookback)
	if s := v.Get("start"); s != "" {
		t, err := parseMicros("start", s)
		if err != nil {
			return q, nil, err
		}
		q.Start = t
	}
	for _, tag := range v["tag"] {
		k, val, ok := strings.Cut(tag, ":")
		if !ok {
			return q, nil, fmt.Errorf("malformed 'tag' parameter, expecting key:value, received: %s", tag)
		}
		q.Tags[k] = val
	}
	for _, tags := range v["tags"] {
		var m map[string]string
		if err := json.Unmarshal([]byte(tags), &m); err != nil {
			return q, nil, fmt.Errorf("malformed 'tags' parameter, cannot unmarshal JSON: %w", err)
		}
		for k, val := range m {
			q.Tags[k] = val
		}
	}
	if len(q.Tags) > maxTags {
		return q, nil, fmt.Errorf("parameter 'tags': at most %d tags", maxTags)
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n < 0 {
			return q, nil, fmt.Errorf("unable to parse param 'limit': want a whole number 0-%d, not %q", MaxLimit, s)
		}
		if n > 0 {
			q.Limit = int(min(n, MaxLimit))
		}
	}
	var err error
	if q.MinDuration, err = parseDuration("minDuration", v.Get("minDuration")); err != nil {
		return q, nil, err
	}
	if q.MaxDuration, err = parseDuration("maxDuration", v.Get("maxDuration")); err != nil {
		return q, nil, err
	}
	if q.MinDuration != 0 && q.MaxDuration != 0 && q.MaxDuration < q.MinDuration {
		return q, nil, fmt.Errorf("'maxDuration' should be greater than 'minDuration'")
	}
	if len(ids) == 0 && q.Service == "" {
		return q, nil, fmt.Errorf("parameter 'service' is required")
	}
	return q, ids, nil
}

func parseMicros(name, s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("unable to parse param '%s': want microseconds since the epoch, not %q", name, s)
	}
	return time.UnixMicro(n), nil
}

func parseDuration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("unable to parse param '%s': want a duration such as 100ms or 1.5s, not %q", name, s)
	}
	return d, nil
}
