package stats

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"regexp"
	"strconv"
	"strings"
)

// OpenMetricsContentType is the Content-Type of WriteOpenMetrics's
// output.
const OpenMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8"

// AcceptsOpenMetrics reports whether an Accept header asks for
// OpenMetrics (application/openmetrics-text, at any q above 0), as
// Prometheus asks when exemplar storage is on.
func AcceptsOpenMetrics(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "application/openmetrics-text" {
			continue
		}
		if q, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
				continue
			}
		}
		return true
	}
	return false
}

// WriteOpenMetrics writes the same series as WritePrometheus, with the
// same names, labels and values, in the OpenMetrics 1.0 text format, and
// with exemplars: each histogram bucket line carries the latest sample
// recorded with ObserveWithExemplar in that bucket, as
// "# {trace_id="<32 hex>"} <value> <timestamp>". The differences the
// format requires: a counter whose name ends in _total is the family of
// that name less _total (its sample keeps the full name); a counter
// whose name does not end in _total is typed unknown, so that no series
// is renamed; the output ends with "# EOF".
func (s *Store) WriteOpenMetrics(w io.Writer, filter *regexp.Regexp, usedOnly bool) error {
	v := s.view()
	bw := bufio.NewWriter(w)
	// taken holds every family and sample name written: OpenMetrics
	// forbids a name being both.
	taken := map[string]bool{}
	free := func(names ...string) bool {
		for _, n := range names {
			if taken[n] {
				return false
			}
		}
		for _, n := range names {
			taken[n] = true
		}
		return true
	}

	for _, f := range families(v.counters, func(c *Counter) bool { return show(c.m, c.Used(), usedOnly, filter) }) {
		fam, typ := f.name, "unknown"
		if base, ok := strings.CutSuffix(f.name, "_total"); ok && base != "" {
			fam, typ = base, "counter"
		}
		if !free(fam, f.name) {
			continue
		}
		writeType(bw, fam, typ)
		for _, c := range f.members {
			writeSample(bw, f.name, c.m.promLabels, strconv.FormatUint(c.Value(), 10))
		}
	}
	for _, f := range families(v.gauges, func(g *Gauge) bool { return show(g.m, g.Used(), usedOnly, filter) }) {
		if !free(f.name) {
			continue
		}
		writeType(bw, f.name, "gauge")
		for _, g := range f.members {
			writeSample(bw, f.name, g.m.promLabels, strconv.FormatInt(g.Value(), 10))
		}
	}
	for _, f := range families(v.texts, func(t *TextReadout) bool { return show(t.m, t.Used(), usedOnly, filter) }) {
		if !free(f.name) {
			continue
		}
		writeType(bw, f.name, "gauge")
		for _, t := range f.members {
			l := t.m.promLabels
			if l != "" {
				l += ","
			}
			writeSample(bw, f.name, l+`text_value="`+escapeLabelValue(t.Value())+`"`, "0")
		}
	}
	for _, f := range families(v.histograms, func(*Histogram) bool { return true }) {
		type member struct {
			hv  histView
			ex  [len(Buckets) + 1]Exemplar
			has [len(Buckets) + 1]bool
		}
		var members []member
		for _, h := range f.members {
			if hv := h.view(); show(h.m, hv.used, usedOnly, filter) {
				ex, has := h.Exemplars()
				members = append(members, member{hv, ex, has})
			}
		}
		bucket, sum, count := f.name+"_bucket", f.name+"_sum", f.name+"_count"
		if len(members) == 0 || !free(f.name, bucket, sum, count) {
			continue
		}
		writeType(bw, f.name, "histogram")
		for _, m := range members {
			h := m.hv
			l := h.m.promLabels
			lb := l
			if lb != "" {
				lb += ","
			}
			secs := s.promSecs && h.unit == Milliseconds
			for i := range len(Buckets) + 1 {
				le, n := "+Inf", h.count
				if i < len(Buckets) {
					b := Buckets[i]
					if secs {
						b /= 1000
					}
					le, n = strconv.FormatFloat(b, 'f', -1, 64), h.buckets[i]
				}
				writeSampleNoNewline(bw, bucket, lb+`le="`+le+`"`, strconv.FormatUint(n, 10))
				if m.has[i] {
					writeExemplar(bw, m.ex[i], secs)
				}
				bw.WriteByte('\n')
			}
			if secs {
				writeSample(bw, sum, l, strconv.FormatFloat(float64(h.sum)/1000, 'f', -1, 64))
			} else {
				writeSample(bw, sum, l, strconv.FormatUint(h.sum, 10))
			}
			writeSample(bw, count, l, strconv.FormatUint(h.count, 10))
		}
	}
	bw.WriteString("# EOF\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write openmetrics stats: %w", err)
	}
	return nil
}

func writeSampleNoNewline(w *bufio.Writer, name, labels, value string) {
	w.WriteString(name)
	w.WriteByte('{')
	w.WriteString(labels)
	w.WriteString("} ")
	w.WriteString(value)
}

// writeExemplar writes ` # {trace_id="..."} value timestamp`, the value
// in the exposition's unit and the timestamp in seconds.
func writeExemplar(w *bufio.Writer, e Exemplar, secs bool) {
	w.WriteString(` # {trace_id="`)
	var id [32]byte
	hex.Encode(id[:], e.TraceID[:])
	w.Write(id[:])
	w.WriteString(`"} `)
	if secs {
		w.WriteString(strconv.FormatFloat(float64(e.Value)/1000, 'f', -1, 64))
	} else {
		w.WriteString(strconv.FormatUint(e.Value, 10))
	}
	w.WriteByte(' ')
	w.WriteString(strconv.FormatFloat(float64(e.Time.UnixNano())/1e9, 'f', 3, 64))
}
