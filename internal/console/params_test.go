package console

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseMetricsParams(t *testing.T) {
	for _, tc := range []struct {
		query, err string
		want       metricsParams
	}{
		{query: "kind=node&mesh=demo&name=greeter", want: metricsParams{Kind: "node", Mesh: "demo", Name: "greeter", Range: DefaultRange, Step: DefaultStep}},
		{query: "kind=edge&name=g.demo.local&source=front&window=5m&step=30", want: metricsParams{Kind: "edge", Name: "g.demo.local", Source: "front", Range: 5 * time.Minute, Step: 30 * time.Second}},
		{query: "name=x", err: "kind: is required"},
		{query: "kind=pod&name=x", err: `kind "pod": want node`},
		{query: "kind=edge&name=x", err: "source: is required"},
		{query: "kind=node", err: "name: is required"},
		{query: "kind=node&name=x&window=-1s", err: `window "-1s": want more than 0`},
		{query: "kind=node&name=x&window=soon", err: `window "soon": want a duration`},
		{query: "kind=node&name=x&window=24h&step=1s", err: "gives more than 2000 points"},
	} {
		v, _ := url.ParseQuery(tc.query)
		got, err := parseMetricsParams(v)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.query, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.query, got, err, tc.want)
		}
	}
}

// FuzzParseMetricsParams: any query string gives parameters within
// bounds or an error naming the parameter, never a panic.
func FuzzParseMetricsParams(f *testing.F) {
	f.Add("kind=node&name=a&window=5m&step=10s")
	f.Add("kind=edge&name=a&source=b&window=99999999999")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		p, err := parseMetricsParams(v)
		if err != nil {
			return
		}
		if p.Range <= 0 || p.Step <= 0 || p.Range/p.Step > 2000 {
			t.Fatalf("accepted out of bounds: %+v", p)
		}
	})
}
