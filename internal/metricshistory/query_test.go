package metricshistory

import (
	"math"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestQueryValuesRoundTrip: a query sent to another replica as URL
// parameters is the same query there.
func TestQueryValuesRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123)
	q := Query{Selector: Labels{Reporter: "source", SourceMesh: "m"}, GroupBy: []string{LabelRoute, LabelSourceWorkload}, Window: time.Minute, At: at}
	got, err := ParseQuery(q.Values(time.Time{}))
	if err != nil || !reflect.DeepEqual(got, q) {
		t.Fatalf("ParseQuery = %+v, %v; want %+v", got, err, q)
	}
	rq := RangeQuery{Selector: Labels{Route: "r/r1"}, Start: at, End: at.Add(time.Hour), Step: 10 * time.Second}
	gotR, err := ParseRangeQuery(rq.Values())
	if err != nil || !reflect.DeepEqual(gotR, rq) {
		t.Fatalf("ParseRangeQuery = %+v, %v; want %+v", gotR, err, rq)
	}
}

func TestParseQueryErrors(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{"window=1m&at=1&color=red", `parameter "color": not a label`},
		{"window=soon&at=1", `window "soon"`},
		{"window=1m", `at "": want a time in Unix nanoseconds`},
		{"window=1m&at=1&groupBy=color", `groupBy "color"`},
		{"window=100h&at=1", "window 100h0m0s"},
	} {
		v, _ := url.ParseQuery(tc.query)
		if _, err := ParseQuery(v); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseQuery(%s) = %v, want an error with %q", tc.query, err, tc.want)
		}
	}
}

// TestMergeSumsCountsNotQuantiles: two stores' counts of one group add
// up, and the quantiles are the summed histogram's.
func TestMergeSumsCountsNotQuantiles(t *testing.T) {
	fast := make([]uint64, numBuckets)
	fast[1] = 90 // (0.0005, 0.001]
	slow := make([]uint64, numBuckets)
	slow[9] = 10 // (0.5, 1]
	l := Labels{Route: "r"}
	st, err := Merge([]*Partial{
		{Seconds: 10, Groups: []GroupCounts{{Labels: l, Counts: Counts{Requests: 90, Buckets: fast}}}},
		{Seconds: 10, Groups: []GroupCounts{{Labels: l, Counts: Counts{Requests: 10, Errors: 10, Codes: map[string]uint64{"503": 10}, Buckets: slow}}}},
	})
	if err != nil || len(st) != 1 {
		t.Fatalf("Merge = %+v, %v", st, err)
	}
	s := st[0]
	if s.RPS != 10 || s.ErrorRatio != 0.1 || s.ErrorsByCode["503"] != 1 || math.Abs(s.P99-0.95) > 1e-12 || math.Abs(s.P50-(0.0005+0.0005*50/90)) > 1e-12 {
		t.Fatalf("merged stat %+v", s)
	}
	if _, err := Merge([]*Partial{{Seconds: 10}, {Seconds: 5}}); err == nil {
		t.Fatal("merged counts over different times")
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("window=1m&at=1&source_mesh=m&groupBy=route")
	f.Add("start=1&end=2&step=1s")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		if q, err := ParseQuery(v); err == nil {
			if _, err := ParseQuery(q.Values(time.Time{})); err != nil {
				t.Fatalf("re-parse %v: %v", q, err)
			}
		}
		if q, err := ParseRangeQuery(v); err == nil {
			if _, err := ParseRangeQuery(q.Values()); err != nil {
				t.Fatalf("re-parse %v: %v", q, err)
			}
		}
	})
}
