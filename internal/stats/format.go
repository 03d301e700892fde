package stats

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
)

// view is the list of live stats an output renders, taken under the lock
// and then rendered without it.
type view struct {
	counters   []*Counter
	gauges     []*Gauge
	histograms []*Histogram
	texts      []*TextReadout
}

func (s *Store) view() view {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := view{
		counters:   make([]*Counter, 0, len(s.counters)),
		gauges:     make([]*Gauge, 0, len(s.gauges)),
		histograms: make([]*Histogram, 0, len(s.histograms)),
		texts:      make([]*TextReadout, 0, len(s.texts)),
	}
	for _, c := range s.counters {
		v.counters = append(v.counters, c)
	}
	for _, g := range s.gauges {
		v.gauges = append(v.gauges, g)
	}
	for _, h := range s.histograms {
		v.histograms = append(v.histograms, h)
	}
	for _, t := range s.texts {
		v.texts = append(v.texts, t)
	}
	return v
}

func show(m *Metric, used, usedOnly bool, filter *regexp.Regexp) bool {
	if usedOnly && !used {
		return false
	}
	return filter == nil || filter.MatchString(m.Name)
}

// scalar is a counter or gauge line of /stats.
type scalar struct {
	name  string
	value string
}

// histView is a histogram's statistics as of the last merge, copied out
// under its lock.
type histView struct {
	m         *Metric
	used      bool
	intervalQ [len(Quantiles)]float64
	cumQ      [len(Quantiles)]float64
	buckets   [len(Buckets)]uint64
	count     uint64
	sum       uint64
	unit      Unit
}

func (h *Histogram) view() histView {
	h.mu.Lock()
	defer h.mu.Unlock()
	return histView{
		m: h.m, used: h.used, intervalQ: h.intervalQ, cumQ: h.cumQ,
		buckets: h.buckets, count: h.cumulative.Count, sum: h.cumulative.Sum, unit: h.unit,
	}
}

// selected returns what /stats shows, in its order: text readouts, then
// counters and gauges merged, then histograms, each sorted by name.
func (s *Store) selected(filter *regexp.Regexp, usedOnly bool) (texts, scalars []scalar, hists []histView) {
	v := s.view()
	for _, t := range v.texts {
		if show(t.m, t.Used(), usedOnly, filter) {
			texts = append(texts, scalar{t.m.Name, t.Value()})
		}
	}
	for _, c := range v.counters {
		if show(c.m, c.Used(), usedOnly, filter) {
			scalars = append(scalars, scalar{c.m.Name, strconv.FormatUint(c.Value(), 10)})
		}
	}
	for _, g := range v.gauges {
		if show(g.m, g.Used(), usedOnly, filter) {
			scalars = append(scalars, scalar{g.m.Name, strconv.FormatInt(g.Value(), 10)})
		}
	}
	for _, h := range v.histograms {
		hv := h.view()
		if show(h.m, hv.used, usedOnly, filter) {
			hists = append(hists, hv)
		}
	}
	byName := func(a, b scalar) int { return cmp.Compare(a.name, b.name) }
	slices.SortFunc(texts, byName)
	slices.SortStableFunc(scalars, byName)
	slices.SortFunc(hists, func(a, b histView) int { return cmp.Compare(a.m.Name, b.m.Name) })
	return texts, scalars, hists
}

// WriteText writes Envoy's /stats text: `name: value` lines (text
// readouts quoted) sorted by name, then one line per histogram with the
// interval and cumulative value of each quantile,
// `name: P0(i,c) P25(i,c) ... P100(i,c)`, `nan` where a period has no
// samples and `No recorded values` for a histogram never recorded.
// filter, if not nil, keeps the stats whose full name it matches (as
// /stats?filter=); usedOnly keeps the stats ever updated (?usedonly).
func (s *Store) WriteText(w io.Writer, filter *regexp.Regexp, usedOnly bool) error {
	texts, scalars, hists := s.selected(filter, usedOnly)
	bw := bufio.NewWriter(w)
	for _, t := range texts {
		// Envoy quotes without escaping; values are configuration
		// strings (versions, identifiers).
		bw.WriteString(t.name)
		bw.WriteString(": \"")
		bw.WriteString(t.value)
		bw.WriteString("\"\n")
	}
	for _, sc := range scalars {
		bw.WriteString(sc.name)
		bw.WriteString(": ")
		bw.WriteString(sc.value)
		bw.WriteByte('\n')
	}
	var buf []byte
	for _, h := range hists {
		bw.WriteString(h.m.Name)
		if !h.used {
			bw.WriteString(": No recorded values\n")
			continue
		}
		bw.WriteString(":")
		for i := range Quantiles {
			buf = append(buf[:0], " P"...)
			buf = append(buf, quantileLabels[i]...)
			buf = append(buf, '(')
			buf = appendFloat(buf, h.intervalQ[i])
			buf = append(buf, ',')
			buf = appendFloat(buf, h.cumQ[i])
			buf = append(buf, ')')
			bw.Write(buf)
		}
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}

// appendFloat formats v as Envoy's fmt library does for "{}": the
// shortest representation that reads back to v, in fixed notation from
// 1e-4 up to 1e16, `nan` for NaN.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "nan"...)
	case math.IsInf(v, 1):
		return append(b, "inf"...)
	case math.IsInf(v, -1):
		return append(b, "-inf"...)
	}
	if a := math.Abs(v); a != 0 && (a < 1e-4 || a >= 1e16) {
		return strconv.AppendFloat(b, v, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

// appendJSONFloat is appendFloat for JSON, where NaN is null.
func appendJSONFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return appendFloat(b, v)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// WriteJSON writes Envoy's /stats?format=json: {"stats":[{"name":..,
// "value":..},...]} in /stats order, the histograms gathered in one last
// element {"histograms":{"supported_quantiles":[0,25,...,100],
// "computed_quantiles":[{"name":..,"values":[{"cumulative":..,
// "interval":..},...]}]}} with null where a period has no samples.
func (s *Store) WriteJSON(w io.Writer, filter *regexp.Regexp, usedOnly bool) error {
	texts, scalars, hists := s.selected(filter, usedOnly)
	b := make([]byte, 0, 64*(len(texts)+len(scalars)+len(hists))+64)
	b = append(b, `{"stats":[`...)
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	for _, t := range texts {
		sep()
		b = append(b, `{"name":`...)
		b = appendJSONString(b, t.name)
		b = append(b, `,"value":`...)
		b = appendJSONString(b, t.value)
		b = append(b, '}')
	}
	for _, sc := range scalars {
		sep()
		b = append(b, `{"name":`...)
		b = appendJSONString(b, sc.name)
		b = append(b, `,"value":`...)
		b = append(b, sc.value...)
		b = append(b, '}')
	}
	if len(hists) > 0 {
		sep()
		b = append(b, `{"histograms":{"supported_quantiles":[`...)
		for i, l := range quantileLabels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, l...)
		}
		b = append(b, `],"computed_quantiles":[`...)
		for i, h := range hists {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendJSONString(b, h.m.Name)
			b = append(b, `,"values":[`...)
			for q := range Quantiles {
				if q > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"cumulative":`...)
				b = appendJSONFloat(b, h.cumQ[q])
				b = append(b, `,"interval":`...)
				b = appendJSONFloat(b, h.intervalQ[q])
				b = append(b, '}')
			}
			b = append(b, "]}"...)
		}
		b = append(b, "]}}"...)
	}
	b = append(b, "]}"...)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write stats json: %w", err)
	}
	return nil
}
