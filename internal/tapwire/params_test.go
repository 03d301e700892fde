package tapwire

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseParams(t *testing.T) {
	for _, tc := range []struct {
		query   string
		want    Params
		wantErr string
	}{
		{"", Params{Duration: DefaultDuration}, ""},
		{"max=5&duration=2s&path_prefix=/a&show_headers=true", Params{Max: 5, Duration: 2 * time.Second, Filter: Filter{PathPrefix: "/a", ShowHeaders: true}}, ""},
		{"duration=1.5", Params{Duration: 1500 * time.Millisecond}, ""},
		{"max=-1", Params{}, "max"},
		{"max=x", Params{}, "max"},
		{"duration=11m", Params{}, "duration"},
		{"duration=0", Params{}, "duration"},
		{"duration=soon", Params{}, "duration"},
		{"path_prefix=a", Params{}, "path_prefix"},
		{"show_headers=maybe", Params{}, "show_headers"},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := ParseParams(q)
		if tc.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want one naming %s", tc.query, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.query, got, err, tc.want)
			continue
		}
		back, err := ParseParams(got.Query())
		if err != nil || back != got {
			t.Errorf("%q: round trip %+v, %v", tc.query, back, err)
		}
	}
}

// FuzzParseParams: any query is accepted or refused with an error, never
// a crash, and what is accepted round-trips.
func FuzzParseParams(f *testing.F) {
	f.Add("max=5&duration=2s&path_prefix=/a")
	f.Add("duration=1e300")
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		p, err := ParseParams(q)
		if err != nil {
			return
		}
		if p.Duration <= 0 || p.Duration > MaxDuration || p.Max < 0 {
			t.Fatalf("accepted out of bounds: %+v", p)
		}
	})
}
