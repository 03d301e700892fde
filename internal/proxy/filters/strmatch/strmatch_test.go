package strmatch

import (
	"strings"
	"testing"

	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	re := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
	}
	tests := []struct {
		name string
		m    *matcherv3.StringMatcher
		in   string
		want bool
	}{
		{"exact", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://a.example"}}, "https://a.example", true},
		{"exact is case sensitive", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://a.example"}}, "https://A.example", false},
		{"exact ignore case", &matcherv3.StringMatcher{IgnoreCase: true, MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://a.example"}}, "https://A.example", true},
		{"prefix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "https://"}}, "https://x", true},
		{"prefix longer than value", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "https://"}}, "http", false},
		{"suffix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".example.com"}}, "https://a.example.com", true},
		{"suffix ignore case", &matcherv3.StringMatcher{IgnoreCase: true, MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".EXAMPLE.com"}}, "https://a.example.com", true},
		{"contains", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "mid"}}, "a-mid-b", true},
		{"contains ignore case", &matcherv3.StringMatcher{IgnoreCase: true, MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "MID"}}, "a-mid-b", true},
		{"contains miss", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "zzz"}}, "a-mid-b", false},
		{"regex full match", re(`https://[a-z]+\.example\.com`), "https://api.example.com", true},
		{"regex is anchored", re(`[a-z]+`), "abc1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Compile(tc.m, "f")
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Match(tc.in); got != tc.want {
				t.Fatalf("Match(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    *matcherv3.StringMatcher
		want string
	}{
		{"nil", nil, "f: missing"},
		{"no pattern", &matcherv3.StringMatcher{}, "f: no match pattern"},
		{"empty prefix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{}}, "f: empty prefix"},
		{"bad regex", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}, "f.safe_regex.regex:"},
		{"custom", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Custom{}}, "f.custom: extension matchers are not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.m, "f")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
