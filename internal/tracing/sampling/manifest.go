package sampling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
)

// A Manifest is an X-Ray local sampling rules file, as the X-Ray SDKs
// and Envoy's X-Ray tracer (sampling_rule_manifest) read it: version 2
// rules match "host", version 1 rules "service_name"; both match
// "http_method" and "url_path", with the wildcards * (any run) and ?
// (any one character). A request with no incoming decision is decided
// by the first rule that matches it, else by "default": up to
// fixed_target requests a second are sampled, then rate of the rest.

// maxManifestRules bounds a manifest's rules.
const maxManifestRules = 1000

// Manifest is a parsed X-Ray sampling rules file.
type Manifest struct {
	Version int
	Rules   []Rule
	Default Rule
}

// Rule is one sampling rule; the default rule matches everything.
type Rule struct {
	Description string
	Host        string
	HTTPMethod  string
	URLPath     string
	FixedTarget int
	Rate        float64
}

type manifestJSON struct {
	Version *int       `json:"version"`
	Rules   []ruleJSON `json:"rules"`
	Default *ruleJSON  `json:"default"`
}

type ruleJSON struct {
	Description string   `json:"description"`
	Host        *string  `json:"host"`
	ServiceName *string  `json:"service_name"`
	HTTPMethod  *string  `json:"http_method"`
	URLPath     *string  `json:"url_path"`
	FixedTarget *int     `json:"fixed_target"`
	Rate        *float64 `json:"rate"`
}

// ParseManifest reads an X-Ray sampling rules file (version 1 or 2);
// errors name the field.
func ParseManifest(data []byte) (*Manifest, error) {
	var mj manifestJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&mj); err != nil {
		return nil, fmt.Errorf("sampling rules: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("sampling rules: data after the JSON object")
	}
	if mj.Version == nil {
		return nil, fmt.Errorf("version: missing; want 1 or 2")
	}
	v := *mj.Version
	if v != 1 && v != 2 {
		return nil, fmt.Errorf("version: %d is not 1 or 2", v)
	}
	if mj.Default == nil {
		return nil, fmt.Errorf("default: missing")
	}
	if len(mj.Rules) > maxManifestRules {
		return nil, fmt.Errorf("rules: %d rules, more than %d", len(mj.Rules), maxManifestRules)
	}
	m := &Manifest{Version: v}
	d := *mj.Default
	if d.Host != nil || d.ServiceName != nil || d.HTTPMethod != nil || d.URLPath != nil {
		return nil, fmt.Errorf("default: only fixed_target and rate are allowed")
	}
	def, err := d.rule("default", v, false)
	if err != nil {
		return nil, err
	}
	m.Default = def
	for i, rj := range mj.Rules {
		r, err := rj.rule(fmt.Sprintf("rules[%d]", i), v, true)
		if err != nil {
			return nil, err
		}
		m.Rules = append(m.Rules, r)
	}
	return m, nil
}

func (rj ruleJSON) rule(field string, version int, matcher bool) (Rule, error) {
	r := Rule{Description: rj.Description}
	if rj.FixedTarget == nil {
		return r, fmt.Errorf("%s.fixed_target: missing", field)
	}
	if *rj.FixedTarget < 0 || *rj.FixedTarget > math.MaxInt32 {
		return r, fmt.Errorf("%s.fixed_target: %d is not between 0 and %d", field, *rj.FixedTarget, math.MaxInt32)
	}
	r.FixedTarget = *rj.FixedTarget
	if rj.Rate == nil {
		return r, fmt.Errorf("%s.rate: missing", field)
	}
	if p := *rj.Rate; math.IsNaN(p) || p < 0 || p > 1 {
		return r, fmt.Errorf("%s.rate: %v is not between 0 and 1", field, p)
	}
	r.Rate = *rj.Rate
	if !matcher {
		return r, nil
	}
	hostField, host, other := "host", rj.Host, rj.ServiceName
	if version == 1 {
		hostField, host, other = "service_name", rj.ServiceName, rj.Host
	}
	if other != nil {
		return r, fmt.Errorf("%s: version %d rules match %s, not %s", field, version, hostField, map[string]string{"host": "service_name", "service_name": "host"}[hostField])
	}
	for _, f := range []struct {
		name string
		v    *string
		dst  *string
	}{{hostField, host, &r.Host}, {"http_method", rj.HTTPMethod, &r.HTTPMethod}, {"url_path", rj.URLPath, &r.URLPath}} {
		if f.v == nil {
			return r, fmt.Errorf("%s.%s: missing", field, f.name)
		}
		if *f.v == "" {
			return r, fmt.Errorf("%s.%s: empty; use \"*\" to match anything", field, f.name)
		}
		*f.dst = *f.v
	}
	return r, nil
}

// wildcardMatch reports whether s matches pattern, in which * matches
// any run of bytes and ? any one byte; case-insensitive for ASCII, as
// X-Ray matches. It does not allocate.
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || lower(pattern[p]) == lower(s[i])):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
