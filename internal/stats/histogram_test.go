package stats

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var fixedTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// refBin is libcircllhist's int_scale_to_hist_bucket(v, 0) written out
// step by step: the (val, exp) pair Envoy files an integer sample under.
func refBin(v uint64) (val, exp int) {
	if v == 0 {
		return 0, 0
	}
	exp = 1
	if v < 10 {
		v *= 10
		exp--
	}
	for v >= 100 {
		v /= 10
		exp++
	}
	return int(v), exp
}

func TestBinLayoutMatchesCircllhist(t *testing.T) {
	t.Parallel()
	vals := []uint64{0, 1, 9, 10, 11, 99, 100, 101, 109, 110, 999, 1000, 1234, 99999, 100000, 1 << 53, math.MaxUint64 - 1, math.MaxUint64}
	for k := range numDecades {
		vals = append(vals, pow10u[k], pow10u[k]-1, pow10u[k]+1)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		vals = append(vals, r.Uint64()>>r.IntN(64))
	}
	for _, v := range vals {
		idx := binOf(v)
		if idx < 0 || idx >= numBins {
			t.Fatalf("binOf(%d) = %d out of range", v, idx)
		}
		val, exp := refBin(v)
		if v == 0 {
			if idx != 0 {
				t.Fatalf("binOf(0) = %d", idx)
			}
			continue
		}
		lower, width := binBounds(idx)
		// circllhist's exponent is our decade, its mantissa our slot+10,
		// and the bounds are computed the same way.
		k := (idx - 1) / binsPerDecade
		if got := (idx-1)%binsPerDecade + 10; got != val || k != exp {
			t.Fatalf("v=%d: bin (%d, %d), circllhist (%d, %d)", v, got, k, val, exp)
		}
		if lower != (float64(val)/10.0)*pow10f[exp] || width != pow10f[exp]/10.0 {
			t.Fatalf("v=%d: bounds %v+%v", v, lower, width)
		}
		if v < 1<<53 {
			f := float64(v)
			// Envoy's bounds carry its rounding (1.1*100 is
			// 110.00000000000001), so allow for it.
			if tol := (lower + width) * 1e-12; f < lower-tol || f >= lower+width+tol {
				t.Fatalf("v=%d not in its bin [%v, %v)", v, lower, lower+width)
			}
		}
	}
}

// Envoy's /stats lines for one sample recorded before the previous merge,
// as Envoy itself prints them (from its docs and public admin dumps).
func TestEnvoyQuantileLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		samples []uint64
		want    string
	}{
		{[]uint64{1}, "P0(nan,1) P25(nan,1.025) P50(nan,1.05) P75(nan,1.075) P90(nan,1.09) P95(nan,1.095) P99(nan,1.099) P99.5(nan,1.0995) P99.9(nan,1.0999) P100(nan,1.1)"},
		{[]uint64{205123}, "P0(nan,200000) P25(nan,202500) P50(nan,205000) P75(nan,207500) P90(nan,209000) P95(nan,209500) P99(nan,209900) P99.5(nan,209950) P99.9(nan,209990) P100(nan,210000)"},
		{[]uint64{59321}, "P0(nan,59000) P25(nan,59250) P50(nan,59500) P75(nan,59750) P90(nan,59900) P95(nan,59950) P99(nan,59990) P99.5(nan,59995) P99.9(nan,59999) P100(nan,60000)"},
		{[]uint64{0, 0, 0}, "P0(nan,0) P25(nan,0) P50(nan,0) P75(nan,0) P90(nan,0) P95(nan,0) P99(nan,0) P99.5(nan,0) P99.9(nan,0) P100(nan,0)"},
	} {
		s := newTestStore(t, Options{})
		h := s.Scope("").Histogram("h", Milliseconds)
		for _, v := range tc.samples {
			h.Record(v)
		}
		s.MergeHistograms()
		s.MergeHistograms() // the samples are now outside the interval
		var b bytes.Buffer
		if err := s.WriteText(&b, nil, false); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSuffix(strings.TrimPrefix(b.String(), "h: "), "\n"); got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.samples, got, tc.want)
		}
	}
}

// TestQuantileMath follows hist_approx_quantile by hand on four bins.
func TestQuantileMath(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	h := s.Scope("").Histogram("h", Milliseconds)
	for _, v := range []uint64{1, 2, 3, 4} {
		h.Record(v)
	}
	s.MergeHistograms()
	st := h.Cumulative()
	for _, tc := range []struct{ q, want float64 }{
		{0, 1},      // lower count 0 == 0: the first bin's left edge
		{0.25, 1.1}, // target 1 == bin 1's upper count: its right edge
		{0.5, 2.1},
		{0.75, 3.1},
		{0.9, 4.06}, // target 3.6 inside bin 4 [4, 4.1): 4 + 0.6*0.1
		{1, 4.1},
	} {
		if got := st.Quantile(tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Q(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if !math.IsNaN((HistogramStats{}).Quantile(0.5)) {
		t.Error("quantile of nothing is not NaN")
	}
	// A wide bin interpolates linearly: 10 samples of 1234 in [1200, 1300).
	h2 := s.Scope("").Histogram("h2", Milliseconds)
	for range 10 {
		h2.Record(1234)
	}
	s.MergeHistograms()
	if got := h2.Cumulative().Quantile(0.5); got != 1250 {
		t.Errorf("P50 = %v, want 1250", got)
	}
}

// TestPrometheusBuckets checks Envoy's le semantics: a bin counts toward
// le only if it lies entirely at or below it, so integer samples count
// when strictly below an integer bound.
func TestPrometheusBuckets(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	h := s.Scope("").Histogram("h", Milliseconds)
	samples := []uint64{0, 1, 5, 10, 25, 99, 100, 249, 250, 3599999, 3600000, 5000000}
	for _, v := range samples {
		h.Record(v)
	}
	s.MergeHistograms()
	st := h.Cumulative()
	for i, le := range Buckets {
		var want uint64
		for _, v := range samples {
			if v == 0 && le >= 0 || v > 0 && float64(v) < le && (v < 100 || binTop(v) <= le) {
				want++
			}
		}
		if got := st.CountBelow(le); got != want || h.buckets[i] != want {
			t.Errorf("le=%v: %d (cached %d), want %d", le, got, h.buckets[i], want)
		}
	}
	// Spot checks written out.
	for le, want := range map[float64]uint64{0.5: 1, 1: 1, 5: 2, 10: 3, 25: 4, 100: 6, 250: 8, 500: 9, 3600000: 10} {
		if got := st.CountBelow(le); got != want {
			t.Errorf("le=%v: %d, want %d", le, got, want)
		}
	}
	if st.Count != uint64(len(samples)) {
		t.Errorf("count %d", st.Count)
	}
}

func binTop(v uint64) float64 {
	lo, w := binBounds(binOf(v))
	return lo + w
}

func TestIntervalAndCumulative(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	h := s.Scope("").Histogram("h", Milliseconds)
	if h.Used() {
		t.Error("used before any sample")
	}
	h.Record(10)
	h.Record(20)
	s.MergeHistograms()
	h.Record(30)
	s.MergeHistograms()
	iv, cum := h.Interval(), h.Cumulative()
	if iv.Count != 1 || iv.Sum != 30 || len(iv.Bins) != 1 || iv.Bins[0].Lower != 30 {
		t.Errorf("interval = %+v", iv)
	}
	if cum.Count != 3 || cum.Sum != 60 || len(cum.Bins) != 3 {
		t.Errorf("cumulative = %+v", cum)
	}
	s.MergeHistograms()
	if iv := h.Interval(); iv.Count != 0 || iv.Sum != 0 || !math.IsNaN(iv.Quantile(0.5)) {
		t.Errorf("empty interval = %+v", iv)
	}
	if !h.Used() {
		t.Error("not used after samples")
	}
}

func TestRecordDuration(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	ms := s.Scope("").Histogram("ms", Milliseconds)
	us := s.Scope("").Histogram("us", Microseconds)
	ms.RecordDuration(1500 * time.Microsecond)
	us.RecordDuration(1500 * time.Microsecond)
	ms.RecordDuration(-time.Second)
	s.MergeHistograms()
	if got := ms.Cumulative().Sum; got != 1 {
		t.Errorf("ms sum = %d, want 1 (truncated) + 0", got)
	}
	if got := us.Cumulative().Sum; got != 1500 {
		t.Errorf("us sum = %d, want 1500", got)
	}
}

func TestRepresentative(t *testing.T) {
	t.Parallel()
	for v, want := range map[uint64]float64{1: 1, 7: 7, 42: 42, 99: 99, 100: 105, 123: 125, 1234: 1250, 205123: 205000} {
		lo, w := binBounds(binOf(v))
		if got := (Bin{Lower: lo, Width: w}).Representative(); got != want {
			t.Errorf("representative of %d = %v, want %v", v, got, want)
		}
	}
}

func TestAppendFloat(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{
		0: "0", 1: "1", 1.025: "1.025", 105: "105", 1e6: "1000000", 210000: "210000",
		1e16: "1e+16", 1e-5: "1e-05", 0.5: "0.5", math.NaN(): "nan",
	} {
		if got := string(appendFloat(nil, v)); got != want {
			t.Errorf("appendFloat(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestHistogramShardsCoverAll(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Options{})
	h := s.Scope("").Histogram("h", Milliseconds)
	var want []uint64
	for i := range 2000 {
		v := uint64(i * i)
		h.Record(v)
		want = append(want, v)
	}
	s.MergeHistograms()
	st := h.Cumulative()
	var got uint64
	for _, b := range st.Bins {
		got += b.Count
	}
	if got != uint64(len(want)) || st.Count != got {
		t.Errorf("bins hold %d samples, count %d, want %d", got, st.Count, len(want))
	}
	if !slices.IsSortedFunc(st.Bins, func(a, b Bin) int {
		if a.Lower < b.Lower {
			return -1
		}
		return 1
	}) {
		t.Error("bins not sorted")
	}
}
