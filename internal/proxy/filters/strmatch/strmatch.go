// Package strmatch compiles Envoy's StringMatcher (type.matcher.v3) into
// a value that matches without allocating: exact, prefix, suffix and
// contains (each optionally ignoring ASCII case) and safe_regex (RE2, which
// is what Go's regexp implements, anchored at both ends as Envoy's full
// match is). The custom extension matcher is refused.
package strmatch

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
)

// maxRegex bounds a regex's source length; the compiled program is linear
// in it.
const maxRegex = 4096

type kind uint8

const (
	exact kind = iota
	prefix
	suffix
	contains
	regex
)

// Matcher is a compiled StringMatcher. It is immutable and safe for
// concurrent use.
type Matcher struct {
	kind       kind
	ignoreCase bool
	s          string
	re         *regexp.Regexp
}

// Compile compiles m; field names it in errors.
func Compile(m *matcherv3.StringMatcher, field string) (Matcher, error) {
	if m == nil {
		return Matcher{}, fmt.Errorf("%s: missing", field)
	}
	out := Matcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.kind, out.s = exact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.kind, out.s = prefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.kind, out.s = suffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.kind, out.s = contains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		src := p.SafeRegex.GetRegex()
		if len(src) > maxRegex {
			return Matcher{}, fmt.Errorf("%s.safe_regex.regex: longer than %d bytes", field, maxRegex)
		}
		if m.GetIgnoreCase() {
			// Envoy ignores ignore_case for safe_regex; so do we.
			out.ignoreCase = false
		}
		re, err := regexp.Compile(`^(?:` + src + `)$`)
		if err != nil {
			return Matcher{}, fmt.Errorf("%s.safe_regex.regex: %w", field, err)
		}
		out.kind, out.re = regex, re
	case *matcherv3.StringMatcher_Custom:
		return Matcher{}, fmt.Errorf("%s.custom: extension matchers are not supported", field)
	default:
		return Matcher{}, fmt.Errorf("%s: %w", field, errors.New("no match pattern set"))
	}
	if out.kind != exact && out.kind != regex && out.s == "" {
		return Matcher{}, fmt.Errorf("%s: empty %s pattern", field, [...]string{"", "prefix", "suffix", "contains"}[out.kind])
	}
	return out, nil
}

// Match reports whether v matches.
func (m *Matcher) Match(v string) bool {
	switch m.kind {
	case exact:
		if m.ignoreCase {
			return strings.EqualFold(v, m.s)
		}
		return v == m.s
	case prefix:
		if len(v) < len(m.s) {
			return false
		}
		if m.ignoreCase {
			return strings.EqualFold(v[:len(m.s)], m.s)
		}
		return v[:len(m.s)] == m.s
	case suffix:
		if len(v) < len(m.s) {
			return false
		}
		if m.ignoreCase {
			return strings.EqualFold(v[len(v)-len(m.s):], m.s)
		}
		return v[len(v)-len(m.s):] == m.s
	case contains:
		if m.ignoreCase {
			return containsFold(v, m.s)
		}
		return strings.Contains(v, m.s)
	case regex:
		return m.re.MatchString(v)
	}
	return false
}

// containsFold is strings.Contains ignoring ASCII and Unicode simple case,
// without allocating a lowered copy.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
