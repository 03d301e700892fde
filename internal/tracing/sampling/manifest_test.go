package sampling

import (
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want *Manifest
		err  string
	}{
		{name: "v2", in: `{"version": 2, "rules": [{"description": "Player moves.", "host": "*", "http_method": "*", "url_path": "/api/move/*", "fixed_target": 0, "rate": 0.05}], "default": {"fixed_target": 1, "rate": 0.1}}`,
			want: &Manifest{Version: 2, Rules: []Rule{{Description: "Player moves.", Host: "*", HTTPMethod: "*", URLPath: "/api/move/*", Rate: 0.05}}, Default: Rule{FixedTarget: 1, Rate: 0.1}}},
		{name: "v1", in: `{"version": 1, "rules": [{"service_name": "web-?", "http_method": "GET", "url_path": "*", "fixed_target": 3, "rate": 1}], "default": {"fixed_target": 0, "rate": 0}}`,
			want: &Manifest{Version: 1, Rules: []Rule{{Host: "web-?", HTTPMethod: "GET", URLPath: "*", FixedTarget: 3, Rate: 1}}}},
		{name: "no rules", in: `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}}`, want: &Manifest{Version: 2, Default: Rule{FixedTarget: 1, Rate: 0.05}}},
		{name: "not json", in: `{`, err: "sampling rules:"},
		{name: "trailing", in: `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}} {}`, err: "data after"},
		{name: "unknown field", in: `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "extra": 1}`, err: `"extra"`},
		{name: "no version", in: `{"default": {"fixed_target": 1, "rate": 0.05}}`, err: "version: missing"},
		{name: "bad version", in: `{"version": 3, "default": {"fixed_target": 1, "rate": 0.05}}`, err: "version: 3"},
		{name: "no default", in: `{"version": 2}`, err: "default: missing"},
		{name: "default matcher", in: `{"version": 2, "default": {"host": "*", "fixed_target": 1, "rate": 0.05}}`, err: "default: only fixed_target and rate"},
		{name: "default no rate", in: `{"version": 2, "default": {"fixed_target": 1}}`, err: "default.rate: missing"},
		{name: "default no target", in: `{"version": 2, "default": {"rate": 0.1}}`, err: "default.fixed_target: missing"},
		{name: "negative target", in: `{"version": 2, "default": {"fixed_target": -1, "rate": 0.1}}`, err: "default.fixed_target: -1"},
		{name: "rate above 1", in: `{"version": 2, "rules": [{"host": "*", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 1.5}], "default": {"fixed_target": 1, "rate": 0.1}}`, err: "rules[0].rate: 1.5"},
		{name: "v2 service_name", in: `{"version": 2, "rules": [{"service_name": "*", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 1}], "default": {"fixed_target": 1, "rate": 0.1}}`, err: "rules[0]: version 2 rules match host, not service_name"},
		{name: "v1 host", in: `{"version": 1, "rules": [{"host": "*", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 1}], "default": {"fixed_target": 1, "rate": 0.1}}`, err: "rules[0]: version 1 rules match service_name, not host"},
		{name: "no method", in: `{"version": 2, "rules": [{"host": "*", "url_path": "*", "fixed_target": 1, "rate": 1}], "default": {"fixed_target": 1, "rate": 0.1}}`, err: "rules[0].http_method: missing"},
		{name: "empty path", in: `{"version": 2, "rules": [{"host": "*", "http_method": "*", "url_path": "", "fixed_target": 1, "rate": 1}], "default": {"fixed_target": 1, "rate": 0.1}}`, err: "rules[0].url_path: empty"},
		{name: "wrong type", in: `{"version": 2, "default": {"fixed_target": "1", "rate": 0.1}}`, err: "fixed_target"},
	} {
		got, err := ParseManifest([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want one with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got.Version != tc.want.Version || got.Default != tc.want.Default || len(got.Rules) != len(tc.want.Rules) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
			continue
		}
		for i := range got.Rules {
			if got.Rules[i] != tc.want.Rules[i] {
				t.Errorf("%s: rule %d %+v, want %+v", tc.name, i, got.Rules[i], tc.want.Rules[i])
			}
		}
	}
}

func TestWildcardMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"*", "anything", true}, {"", "", true}, {"", "a", false},
		{"GET", "get", true}, {"GET", "POST", false},
		{"/api/*", "/api/orders/1", true}, {"/api/*", "/apix", false},
		{"web-?", "web-1", true}, {"web-?", "web-12", false}, {"*.example.com", "a.b.example.com", true},
		{"a*b*c", "aXbYbZc", true}, {"a*b*c", "aXbYbZ", false}, {"?", "", false},
	} {
		if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"version": 2, "rules": [{"host": "*", "http_method": "GET", "url_path": "/a*", "fixed_target": 1, "rate": 0.5}], "default": {"fixed_target": 1, "rate": 0.05}}`))
	f.Add([]byte(`{"version": 1, "rules": [{"service_name": "?", "http_method": "*", "url_path": "*", "fixed_target": 0, "rate": 0}], "default": {"fixed_target": 0, "rate": 1}}`))
	f.Add([]byte(`{"version": 2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		rs, err := NewRules(m)
		if err != nil {
			t.Fatalf("parsed manifest does not compile: %v", err)
		}
		rs.Sample(42, "host", "GET", "/path", timeZero)
	})
}
