package cors

import (
	"net/http"
	"strings"
	"testing"

	"github.com/meshlens/meshlens/internal/xdsproto"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	corsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/stats"
)

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func suffix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s}}
}

func anyOf(t testing.TB, m xdsproto.Message) *anypb.Any {
	t.Helper()
	a, err := xdsproto.NewAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func gateway() *corsv3.CorsPolicy {
	return &corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{exact("https://app.example.com"), suffix(".trusted.example")},
		AllowMethods:           "GET, POST, PUT",
		AllowHeaders:           "content-type, x-grpc-web, authorization",
		ExposeHeaders:          "grpc-status, grpc-message",
		MaxAge:                 "86400",
		AllowCredentials:       wrapperspb.Bool(true),
	}
}

func mustPolicy(t testing.TB, m *corsv3.CorsPolicy) *Policy {
	t.Helper()
	p, err := DecodePolicy(anyOf(t, m))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func newFilter(t *testing.T) (*Filter, *stats.Store) {
	t.Helper()
	st, err := stats.NewStore(stats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc := st.Scope(StatsPrefix("ingress"))
	t.Cleanup(sc.Release)
	return NewFilter(NewStats(sc)), st
}

func TestCheckAndHeaders(t *testing.T) {
	t.Parallel()
	preflight := func(origin string) http.Header {
		return hdr(HeaderOrigin, origin, HeaderRequestMethod, "POST", "Access-Control-Request-Headers", "content-type")
	}
	tests := []struct {
		name       string
		policy     *corsv3.CorsPolicy
		method     string
		req        http.Header
		wantKind   Kind
		wantLocal  map[string]string // preflight reply headers
		wantResp   map[string]string // actual response headers
		valid, inv uint64
	}{
		{name: "no origin is not CORS", policy: gateway(), method: "GET", req: hdr(), wantKind: None},
		{name: "actual request, allowed origin", policy: gateway(), method: "POST", req: hdr(HeaderOrigin, "https://app.example.com"), wantKind: Actual,
			wantResp: map[string]string{HeaderAllowOrigin: "https://app.example.com", HeaderAllowCredentials: "true", HeaderExposeHeaders: "grpc-status, grpc-message"}, valid: 1},
		{name: "actual request, origin by suffix", policy: gateway(), method: "GET", req: hdr(HeaderOrigin, "https://x.trusted.example"), wantKind: Actual,
			wantResp: map[string]string{HeaderAllowOrigin: "https://x.trusted.example"}, valid: 1},
		{name: "origin not allowed: forwarded without headers", policy: gateway(), method: "GET", req: hdr(HeaderOrigin, "https://evil.example"), wantKind: None, inv: 1},
		{name: "preflight, allowed origin", policy: gateway(), method: "OPTIONS", req: preflight("https://app.example.com"), wantKind: Preflight,
			wantLocal: map[string]string{HeaderAllowOrigin: "https://app.example.com", HeaderAllowMethods: "GET, POST, PUT",
				HeaderAllowHeaders: "content-type, x-grpc-web, authorization", HeaderMaxAge: "86400", HeaderAllowCredentials: "true"}, valid: 1},
		{name: "OPTIONS without request method is an actual request", policy: gateway(), method: "OPTIONS", req: hdr(HeaderOrigin, "https://app.example.com"), wantKind: Actual,
			wantResp: map[string]string{HeaderAllowOrigin: "https://app.example.com"}, valid: 1},
		{name: "preflight, origin not allowed, forwarded by default", policy: gateway(), method: "OPTIONS", req: preflight("https://evil.example"), wantKind: None, inv: 1},
		{name: "preflight, origin not allowed, not forwarded", policy: func() *corsv3.CorsPolicy {
			p := gateway()
			p.ForwardNotMatchingPreflights = wrapperspb.Bool(false)
			return p
		}(), method: "OPTIONS", req: preflight("https://evil.example"), wantKind: RejectedPreflight,
			wantLocal: map[string]string{HeaderAllowOrigin: "", HeaderAllowMethods: "GET, POST, PUT", HeaderMaxAge: "86400"}, inv: 1},
		{name: "wildcard methods and headers echo the request's", policy: &corsv3.CorsPolicy{
			AllowOriginStringMatch: []*matcherv3.StringMatcher{exact("https://app.example.com")}, AllowMethods: "*", AllowHeaders: "*",
		}, method: "OPTIONS", req: preflight("https://app.example.com"), wantKind: Preflight,
			wantLocal: map[string]string{HeaderAllowMethods: "POST", HeaderAllowHeaders: "content-type"}, valid: 1},
		{name: "wildcard origin", policy: &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exact("*")}}, method: "GET",
			req: hdr(HeaderOrigin, "https://any.example"), wantKind: Actual, wantResp: map[string]string{HeaderAllowOrigin: "https://any.example", HeaderAllowCredentials: ""}, valid: 1},
		{name: "no allowed origins: every origin invalid", policy: &corsv3.CorsPolicy{AllowMethods: "GET"}, method: "GET", req: hdr(HeaderOrigin, "https://a"), wantKind: None, inv: 1},
		{name: "filter disabled", policy: func() *corsv3.CorsPolicy {
			p := gateway()
			p.FilterEnabled = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 0}}
			return p
		}(), method: "GET", req: hdr(HeaderOrigin, "https://app.example.com"), wantKind: None},
		{name: "shadow mode counts only", policy: func() *corsv3.CorsPolicy {
			p := gateway()
			p.FilterEnabled = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 0}}
			p.ShadowEnabled = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}}
			return p
		}(), method: "GET", req: hdr(HeaderOrigin, "https://app.example.com"), wantKind: None, valid: 1},
		{name: "private network access", policy: func() *corsv3.CorsPolicy {
			p := gateway()
			p.AllowPrivateNetworkAccess = wrapperspb.Bool(true)
			return p
		}(), method: "OPTIONS", req: func() http.Header {
			h := preflight("https://app.example.com")
			h.Set(HeaderRequestPrivateNetwork, "true")
			return h
		}(), wantKind: Preflight, wantLocal: map[string]string{HeaderAllowPrivateNetworkAccess: "true"}, valid: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, st := newFilter(t)
			p := mustPolicy(t, tc.policy)
			r := f.Check(p, tc.method, tc.req, 0)
			if r.Kind != tc.wantKind {
				t.Fatalf("kind = %d, want %d", r.Kind, tc.wantKind)
			}
			local, resp := http.Header{}, http.Header{}
			p.Preflight(r, tc.req, local)
			p.ResponseHeaders(r, resp)
			if r.Kind != Preflight && r.Kind != RejectedPreflight && len(local) != 0 {
				t.Fatalf("preflight headers for kind %d: %v", r.Kind, local)
			}
			if r.Kind != Actual && len(resp) != 0 {
				t.Fatalf("response headers for kind %d: %v", r.Kind, resp)
			}
			for k, v := range tc.wantLocal {
				if got := local.Get(k); got != v {
					t.Errorf("preflight %s = %q, want %q", k, got, v)
				}
			}
			for k, v := range tc.wantResp {
				if got := resp.Get(k); got != v {
					t.Errorf("response %s = %q, want %q", k, got, v)
				}
			}
			if got := st.Scope("").Counter("http.ingress.cors.origin_valid").Value(); got != tc.valid {
				t.Errorf("origin_valid = %d, want %d", got, tc.valid)
			}
			if got := st.Scope("").Counter("http.ingress.cors.origin_invalid").Value(); got != tc.inv {
				t.Errorf("origin_invalid = %d, want %d", got, tc.inv)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	route := mustPolicy(t, &corsv3.CorsPolicy{AllowMethods: "POST", AllowCredentials: wrapperspb.Bool(false)})
	vhost := mustPolicy(t, gateway())
	p := Merge(route, nil, vhost)
	f, _ := newFilter(t)
	req := hdr(HeaderOrigin, "https://app.example.com", HeaderRequestMethod, "POST")
	r := f.Check(p, "OPTIONS", req, 0)
	if r.Kind != Preflight {
		t.Fatalf("kind = %d: the virtual host's origins should apply", r.Kind)
	}
	h := http.Header{}
	p.Preflight(r, req, h)
	if h.Get(HeaderAllowMethods) != "POST" {
		t.Errorf("allow-methods = %q, want the route's POST", h.Get(HeaderAllowMethods))
	}
	if h.Get(HeaderAllowCredentials) != "" {
		t.Errorf("route's allow_credentials false did not win")
	}
	if h.Get(HeaderMaxAge) != "86400" {
		t.Errorf("max-age = %q, want the virtual host's", h.Get(HeaderMaxAge))
	}
	// filter_enabled comes from the most specific policy only: the route's
	// (unset: enabled) wins over a virtual host that disables the filter.
	off := gateway()
	off.FilterEnabled = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 0}}
	if r := f.Check(Merge(route, mustPolicy(t, off)), "OPTIONS", req, 0); r.Kind != Preflight {
		t.Fatalf("virtual host's filter_enabled applied over the route's: kind %d", r.Kind)
	}
	if r := f.Check(Merge(mustPolicy(t, off), vhost), "OPTIONS", req, 0); r.Kind != None {
		t.Fatalf("route's filter_enabled 0%% ignored: kind %d", r.Kind)
	}
	if Merge() != nil || Merge(nil, vhost) != vhost {
		t.Fatal("Merge of zero or one policy")
	}
	if r := f.Check(nil, "GET", req, 0); r.Kind != None {
		t.Fatal("nil policy acted")
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    *corsv3.CorsPolicy
		want string
	}{
		{"bad regex", &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "["}}}}}, "allow_origin_string_match[0].safe_regex.regex"},
		{"empty matcher", &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{{}}}, "allow_origin_string_match[0]"},
		{"bad methods", &corsv3.CorsPolicy{AllowMethods: "GET\r\nX: y"}, "allow_methods"},
		{"bad max age", &corsv3.CorsPolicy{MaxAge: "1h"}, "max_age: \"1h\" is not a number"},
		{"bad enabled", &corsv3.CorsPolicy{FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Denominator: 4}}}, "filter_enabled.default_value.denominator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodePolicy(anyOf(t, tc.m))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if err := DecodeFilter(anyOf(t, &corsv3.Cors{})); err != nil {
		t.Fatal(err)
	}
	if err := DecodeFilter(anyOf(t, gateway())); err == nil {
		t.Fatal("policy accepted as the filter config")
	}
	if _, err := DecodePolicy(anyOf(t, &corsv3.Cors{})); err == nil {
		t.Fatal("filter config accepted as a policy")
	}
}

func TestCheckAllocs(t *testing.T) {
	f, _ := newFilter(t)
	p := mustPolicy(t, gateway())
	req := hdr(HeaderOrigin, "https://x.trusted.example", HeaderRequestMethod, "POST")
	if n := testing.AllocsPerRun(100, func() { f.Check(p, "OPTIONS", req, 1) }); n != 0 {
		t.Fatalf("Check allocates %v times", n)
	}
}

// FuzzDecodePolicy: any bytes either compile or fail with an error; a
// compiled policy classifies and writes headers without panicking, and
// never echoes an origin it did not accept.
func FuzzDecodePolicy(f *testing.F) {
	b, _ := xdsproto.Marshal(gateway())
	f.Add(b, "https://app.example.com", "OPTIONS")
	f.Fuzz(func(t *testing.T, b []byte, origin, method string) {
		p, err := DecodePolicy(&anypb.Any{TypeUrl: PolicyTypeURL, Value: b})
		if err != nil {
			return
		}
		fl := NewFilter(Stats{})
		req := hdr(HeaderOrigin, origin, HeaderRequestMethod, "GET")
		r := fl.Check(p, method, req, 0)
		h := http.Header{}
		p.Preflight(r, req, h)
		p.ResponseHeaders(r, h)
		if got := h.Get(HeaderAllowOrigin); got != "" && !p.originAllowed(got) {
			t.Fatalf("echoed origin %q not allowed", got)
		}
	})
}
