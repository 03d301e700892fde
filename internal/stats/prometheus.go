package stats

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// promIdentity computes a stat's Prometheus metric name and label text
// once, when the stat is created: prefix (envoy_) + the tag-extracted name with
// every character outside [a-zA-Z0-9_] made '_', and its tags as labels
// in tag order (names sanitized the same way, values escaped as the text
// format requires). A tag whose sanitized name repeats an earlier one, or
// is le or text_value (which the renderer adds), is left out so that
// every sample stays valid.
func promIdentity(m *Metric, prefix string) (name, labels string) {
	name = prefix + sanitizeProm(m.TagExtractedName)
	var b strings.Builder
	var seen []string
	for _, t := range m.Tags {
		ln := sanitizeProm(t.Name)
		if ln == "" || ln == "le" || ln == "text_value" || slices.Contains(seen, ln) {
			continue
		}
		if ln[0] >= '0' && ln[0] <= '9' {
			ln = "_" + ln
		}
		seen = append(seen, ln)
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(ln)
		b.WriteString(`="`)
		b.WriteString(escapeLabelValue(t.Value))
		b.WriteByte('"')
	}
	return name, b.String()
}

func sanitizeProm(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(isAlnum(c) || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeLabelValue(v string) string { return labelEscaper.Replace(v) }

// WritePrometheus writes Envoy's /stats/prometheus text exposition:
// families named envoy_<tag-extracted name> with the tags as labels,
// counters first (TYPE counter, without a _total suffix: Envoy's names
// are kept as they are, so envoy_cluster_upstream_cx_total is Envoy's
// upstream_cx_total), then gauges, text readouts (as gauges of value 0
// with a text_value label), then histograms with Envoy's default buckets
// as _bucket{le=...}, _sum and _count. Families are sorted by name and
// each is one contiguous group under one TYPE line; within a family,
// samples are sorted by full stat name. filter and usedOnly select stats
// as for WriteText. A family whose name is already taken by a family
// printed earlier (of another type, or by a histogram's
// _bucket/_sum/_count) is left out rather than printed invalid.
func (s *Store) WritePrometheus(w io.Writer, filter *regexp.Regexp, usedOnly bool) error {
	v := s.view()
	bw := bufio.NewWriter(w)
	taken := map[string]bool{}

	counters := families(v.counters, func(c *Counter) bool { return show(c.m, c.Used(), usedOnly, filter) })
	for _, f := range counters {
		if taken[f.name] {
			continue
		}
		taken[f.name] = true
		writeType(bw, f.name, "counter")
		for _, c := range f.members {
			writeSample(bw, f.name, c.m.promLabels, strconv.FormatUint(c.Value(), 10))
		}
	}
	gauges := families(v.gauges, func(g *Gauge) bool { return show(g.m, g.Used(), usedOnly, filter) })
	texts := families(v.texts, func(t *TextReadout) bool { return show(t.m, t.Used(), usedOnly, filter) })
	for _, f := range gauges {
		if taken[f.name] {
			continue
		}
		taken[f.name] = true
		writeType(bw, f.name, "gauge")
		for _, g := range f.members {
			writeSample(bw, f.name, g.m.promLabels, strconv.FormatInt(g.Value(), 10))
		}
	}
	for _, f := range texts {
		if taken[f.name] {
			continue
		}
		taken[f.name] = true
		writeType(bw, f.name, "gauge")
		for _, t := range f.members {
			l := t.m.promLabels
			if l != "" {
				l += ","
			}
			writeSample(bw, f.name, l+`text_value="`+escapeLabelValue(t.Value())+`"`, "0")
		}
	}
	hists := families(v.histograms, func(*Histogram) bool { return true })
	for _, f := range hists {
		bucket, sum, count := f.name+"_bucket", f.name+"_sum", f.name+"_count"
		if taken[f.name] || taken[bucket] || taken[sum] || taken[count] {
			continue
		}
		var members []histView
		for _, h := range f.members {
			if hv := h.view(); show(h.m, hv.used, usedOnly, filter) {
				members = append(members, hv)
			}
		}
		if len(members) == 0 {
			continue
		}
		taken[f.name], taken[bucket], taken[sum], taken[count] = true, true, true, true
		writeType(bw, f.name, "histogram")
		for _, h := range members {
			l := h.m.promLabels
			lb := l
			if lb != "" {
				lb += ","
			}
			secs := s.promSecs && h.unit == Milliseconds
			for i, le := range Buckets {
				if secs {
					le /= 1000
				}
				writeSample(bw, bucket, lb+`le="`+strconv.FormatFloat(le, 'f', -1, 64)+`"`, strconv.FormatUint(h.buckets[i], 10))
			}
			writeSample(bw, bucket, lb+`le="+Inf"`, strconv.FormatUint(h.count, 10))
			if secs {
				writeSample(bw, sum, l, strconv.FormatFloat(float64(h.sum)/1000, 'f', -1, 64))
			} else {
				writeSample(bw, sum, l, strconv.FormatUint(h.sum, 10))
			}
			writeSample(bw, count, l, strconv.FormatUint(h.count, 10))
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write prometheus stats: %w", err)
	}
	return nil
}

type metricHolder interface{ Metric() *Metric }

type family[T metricHolder] struct {
	name    string
	members []T
}

// families groups the selected stats by Prometheus name, families sorted
// by name and members by full stat name.
func families[T metricHolder](stats []T, keep func(T) bool) []family[T] {
	byName := map[string][]T{}
	for _, st := range stats {
		if keep(st) {
			n := st.Metric().promName
			byName[n] = append(byName[n], st)
		}
	}
	out := make([]family[T], 0, len(byName))
	for n, ms := range byName {
		slices.SortFunc(ms, func(a, b T) int { return cmp.Compare(a.Metric().Name, b.Metric().Name) })
		out = append(out, family[T]{n, ms})
	}
	slices.SortFunc(out, func(a, b family[T]) int { return cmp.Compare(a.name, b.name) })
	return out
}

func writeType(w *bufio.Writer, name, typ string) {
	w.WriteString("# TYPE ")
	w.WriteString(name)
	w.WriteByte(' ')
	w.WriteString(typ)
	w.WriteByte('\n')
}

// writeSample writes name{labels} value, with {} even without labels, as
// Envoy does.
func writeSample(w *bufio.Writer, name, labels, value string) {
	w.WriteString(name)
	w.WriteByte('{')
	w.WriteString(labels)
	w.WriteString("} ")
	w.WriteString(value)
	w.WriteByte('\n')
}
