// Package emf writes a stats.Snapshot as CloudWatch Embedded Metric
// Format (EMF) log lines, so that a proxy whose stdout (or a file) is
// shipped to CloudWatch Logs gets CloudWatch metrics without an agent
// translating statsD.
//
// Each line is one EMF document: an _aws member with the timestamp and one
// metric directive (namespace, one dimension set, metric definitions),
// then the dimensions and the metric values as top-level members. Stats
// that share exactly the same tags go in the same documents, at most 100
// metrics each (EMF's limit); the tags are the dimensions (the first 30,
// EMF's limit; later ones are still written as plain members). Metric
// names are <prefix>.<tag-extracted name> (prefix "envoy" by default,
// which gives App Mesh's metrics extension names such as
// envoy.appmesh.RequestCountPerTarget).
//
// Values: a counter's increase since the previous flush (Unit Count), a
// gauge's value (Unit None), and for a histogram the samples of the
// interval as an array of numbers in the histogram's unit: every sample
// (as its bin's representative value) when there are at most 100, else
// 100 values at evenly spaced quantiles, so that CloudWatch's percentiles
// come out right while its SampleCount for that metric is then 100 (count
// requests with a counter, not with a histogram's SampleCount). A metric
// whose name equals one of its dimensions is left out.
package emf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/meshlens/meshlens/internal/stats"
)

// EMF's limits.
const (
	MaxMetricsPerDocument = 100
	MaxDimensions         = 30
	MaxValuesPerMetric    = 100
)

// Defaults.
const (
	DefaultNamespace = "meshlens"
	DefaultPrefix    = "envoy"
)

// Options configure a sink.
type Options struct {
	// Namespace is the CloudWatch namespace; empty means
	// DefaultNamespace.
	Namespace string
	// Prefix starts every metric name; empty means DefaultPrefix.
	Prefix string
	// Include, when set, keeps only the stats whose full name it
	// matches: CloudWatch bills per metric, and a proxy has hundreds.
	Include *regexp.Regexp
}

// Sink writes EMF documents to a writer, one per line. It implements
// stats.Sink.
type Sink struct {
	mu   sync.Mutex
	w    io.Writer
	opts Options
}

// New returns a sink writing to w (a file, os.Stdout).
func New(w io.Writer, opts Options) *Sink {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	return &Sink{w: w, opts: opts}
}

// metricValue is one metric of a document: its name, unit and the JSON
// of its value.
type metricValue struct {
	name  string
	unit  string
	value []byte
}

type group struct {
	tags    []stats.Tag
	metrics []metricValue
}

// Flush writes the snapshot's documents.
func (s *Sink) Flush(ctx context.Context, snap *stats.Snapshot) error {
	docs := s.Documents(snap)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range docs {
		if _, err := s.w.Write(append(d, '\n')); err != nil {
			return fmt.Errorf("emf sink: write: %w", err)
		}
	}
	return ctx.Err()
}

// Documents renders a snapshot as EMF documents (without newlines).
func (s *Sink) Documents(snap *stats.Snapshot) [][]byte {
	groups := map[string]*group{}
	var order []string
	add := func(m *stats.Metric, unit string, value []byte) {
		if s.opts.Include != nil && !s.opts.Include.MatchString(m.Name) {
			return
		}
		k := tagKey(m.Tags)
		g := groups[k]
		if g == nil {
			g = &group{tags: m.Tags}
			groups[k] = g
			order = append(order, k)
		}
		g.metrics = append(g.metrics, metricValue{name: s.opts.Prefix + "." + m.TagExtractedName, unit: unit, value: value})
	}
	for _, c := range snap.Counters {
		add(c.Metric, "Count", strconv.AppendUint(nil, c.Delta, 10))
	}
	for _, g := range snap.Gauges {
		add(g.Metric, "None", strconv.AppendInt(nil, g.Value, 10))
	}
	for _, h := range snap.Histograms {
		if h.Interval.Count == 0 {
			continue
		}
		add(h.Metric, h.Unit.String(), histogramValues(h.Interval))
	}
	slices.Sort(order)
	ts := snap.Time.UnixMilli()
	var docs [][]byte
	for _, k := range order {
		docs = append(docs, s.groupDocuments(groups[k], ts)...)
	}
	return docs
}

func tagKey(tags []stats.Tag) string {
	var b strings.Builder
	for _, t := range tags {
		b.WriteString(t.Name)
		b.WriteByte(0)
		b.WriteString(t.Value)
		b.WriteByte(0)
	}
	return b.String()
}

// histogramValues is the JSON array standing for an interval's samples.
func histogramValues(st stats.HistogramStats) []byte {
	b := []byte{'['}
	n := 0
	put := func(v float64) {
		if n > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
		n++
	}
	if st.Count <= MaxValuesPerMetric {
		for _, bin := range st.Bins {
			for range bin.Count {
				put(bin.Representative())
			}
		}
	} else {
		for i := range MaxValuesPerMetric {
			put(st.Quantile((float64(i) + 0.5) / MaxValuesPerMetric))
		}
	}
	return append(b, ']')
}

// groupDocuments splits one tag set's metrics into documents of at most
// 100 metrics, never with the same name twice in one document.
func (s *Sink) groupDocuments(g *group, ts int64) [][]byte {
	dims := make([]string, 0, min(len(g.tags), MaxDimensions))
	reserved := map[string]bool{"_aws": true}
	for _, t := range g.tags {
		if t.Value == "" || reserved[t.Name] {
			continue
		}
		reserved[t.Name] = true
		if len(dims) < MaxDimensions {
			dims = append(dims, t.Name)
		}
	}
	var docs [][]byte
	var cur []metricValue
	names := map[string]bool{}
	emit := func() {
		if len(cur) > 0 {
			docs = append(docs, s.document(g.tags, dims, cur, ts))
		}
		cur, names = nil, map[string]bool{}
	}
	for _, m := range g.metrics {
		if reserved[m.name] {
			continue
		}
		if len(cur) == MaxMetricsPerDocument || names[m.name] {
			emit()
		}
		cur = append(cur, m)
		names[m.name] = true
	}
	emit()
	return docs
}

func (s *Sink) document(tags []stats.Tag, dims []string, metrics []metricValue, ts int64) []byte {
	b := []byte(`{"_aws":{"Timestamp":`)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"CloudWatchMetrics":[{"Namespace":`...)
	b = appendString(b, s.opts.Namespace)
	b = append(b, `,"Dimensions":[[`...)
	for i, d := range dims {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, d)
	}
	b = append(b, `]],"Metrics":[`...)
	for i, m := range metrics {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"Name":`...)
		b = appendString(b, m.name)
		b = append(b, `,"Unit":`...)
		b = appendString(b, m.unit)
		b = append(b, '}')
	}
	b = append(b, "]}]}"...)
	written := map[string]bool{"_aws": true}
	for _, t := range tags {
		if t.Value == "" || written[t.Name] {
			continue
		}
		written[t.Name] = true
		b = append(b, ',')
		b = appendString(b, t.Name)
		b = append(b, ':')
		b = appendString(b, t.Value)
	}
	for _, m := range metrics {
		b = append(b, ',')
		b = appendString(b, m.name)
		b = append(b, ':')
		b = append(b, m.value...)
	}
	return append(b, '}')
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}
