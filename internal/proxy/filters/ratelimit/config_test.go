package ratelimit

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	ratelimitcommonv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/local_ratelimit/v3"
	nlrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/local_ratelimit/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/stats"
)

func bucket(max, per uint32, d time.Duration) *typev3.TokenBucket {
	return &typev3.TokenBucket{MaxTokens: max, TokensPerFill: wrapperspb.UInt32(per), FillInterval: durationpb.New(d)}
}

func rfp(n uint32) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{RuntimeKey: "k", DefaultValue: &typev3.FractionalPercent{Numerator: n}}
}

func hvo(k, v string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: action}
}

func anyOf(t testing.TB, m xdsproto.Message) *anypb.Any {
	t.Helper()
	a, err := xdsproto.NewAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// full is the usual configuration: enabled and enforced for every request.
func full(max uint32) *lrlv3.LocalRateLimit {
	return &lrlv3.LocalRateLimit{
		StatPrefix:     "http_local_rate_limiter",
		TokenBucket:    bucket(max, 1, time.Second),
		FilterEnabled:  rfp(100),
		FilterEnforced: rfp(100),
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{
			hvo("x-local-rate-limit", "true", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		},
		EnableRetryAfterHeader: true,
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	mod := func(f func(m *lrlv3.LocalRateLimit)) *lrlv3.LocalRateLimit {
		m := full(1)
		f(m)
		return m
	}
	tests := []struct {
		name string
		m    *lrlv3.LocalRateLimit
		want string
	}{
		{"no stat prefix", mod(func(m *lrlv3.LocalRateLimit) { m.StatPrefix = "" }), "stat_prefix: required"},
		{"zero max tokens", mod(func(m *lrlv3.LocalRateLimit) { m.TokenBucket.MaxTokens = 0 }), "token_bucket.max_tokens: must be above 0"},
		{"zero tokens per fill", mod(func(m *lrlv3.LocalRateLimit) { m.TokenBucket.TokensPerFill = wrapperspb.UInt32(0) }), "token_bucket.tokens_per_fill: must be above 0"},
		{"no fill interval", mod(func(m *lrlv3.LocalRateLimit) { m.TokenBucket.FillInterval = nil }), "token_bucket.fill_interval: required"},
		{"fill interval too short", mod(func(m *lrlv3.LocalRateLimit) { m.TokenBucket.FillInterval = durationpb.New(10 * time.Millisecond) }), "token_bucket.fill_interval: 10ms is below the 50ms minimum"},
		{"bad percent", mod(func(m *lrlv3.LocalRateLimit) { m.FilterEnabled.DefaultValue.Denominator = 5 }), "filter_enabled.default_value.denominator"},
		{"descriptors", mod(func(m *lrlv3.LocalRateLimit) {
			m.Descriptors = []*ratelimitcommonv3.LocalRateLimitDescriptor{{}}
		}), "descriptors: not supported"},
		{"per connection", mod(func(m *lrlv3.LocalRateLimit) { m.LocalRateLimitPerDownstreamConnection = true }), "local_rate_limit_per_downstream_connection: not supported"},
		{"bad header name", mod(func(m *lrlv3.LocalRateLimit) {
			m.ResponseHeadersToAdd = []*corev3.HeaderValueOption{hvo("bad name", "v", 0)}
		}), "response_headers_to_add[0].header.key"},
		{"pseudo header", mod(func(m *lrlv3.LocalRateLimit) {
			m.ResponseHeadersToAdd = []*corev3.HeaderValueOption{hvo(":status", "200", 0)}
		}), "response_headers_to_add[0].header.key"},
		{"formatter", mod(func(m *lrlv3.LocalRateLimit) {
			m.ResponseHeadersToAdd = []*corev3.HeaderValueOption{hvo("x-a", "%START_TIME%", 0)}
		}), "response_headers_to_add[0].header.value"},
		{"bad value", mod(func(m *lrlv3.LocalRateLimit) {
			m.RequestHeadersToAddWhenNotEnforced = []*corev3.HeaderValueOption{hvo("x-a", "a\nb", 0)}
		}), "request_headers_to_add_when_not_enforced[0].header.value"},
		{"status not http", mod(func(m *lrlv3.LocalRateLimit) { m.Status = &typev3.HttpStatus{Code: 1000} }), "status.code"},
		{"x-ratelimit version", mod(func(m *lrlv3.LocalRateLimit) { m.EnableXRatelimitHeaders = 9 }), "enable_x_ratelimit_headers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(anyOf(t, tc.m), 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := Decode(&anypb.Any{TypeUrl: NetworkTypeURL}, 0); err == nil {
		t.Fatal("network config decoded as HTTP")
	}
}

func newStore(t *testing.T) *stats.Store {
	t.Helper()
	st, err := stats.NewStore(stats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func provisioned(t *testing.T, st *stats.Store, m *lrlv3.LocalRateLimit) *Config {
	t.Helper()
	c, err := Decode(anyOf(t, m), 0)
	if err != nil {
		t.Fatal(err)
	}
	sc := st.Scope(c.StatsPrefix())
	t.Cleanup(sc.Release)
	c.Provision(sc)
	return c
}

func value(st *stats.Store, name string) uint64 { return st.Scope("").Counter(name).Value() }

func TestDecideAndStats(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	c := provisioned(t, st, full(2))
	const at = int64(500 * time.Millisecond)
	for i := range 2 {
		if d := c.Decide(at, uint64(i)); !d.Enabled || d.Limited {
			t.Fatalf("request %d: %+v, want allowed", i, d)
		}
	}
	d := c.Decide(at, 7)
	want := Decision{Enabled: true, Limited: true, Enforced: true, Status: 429, GRPCStatus: 14, RetryAfter: 500 * time.Millisecond}
	if d != want {
		t.Fatalf("third request: %+v, want %+v", d, want)
	}
	h := http.Header{}
	c.LocalReplyHeaders(d, h)
	if h.Get("x-envoy-ratelimited") != "true" || h.Get("retry-after") != "1" || h.Get("x-local-rate-limit") != "true" {
		t.Fatalf("local reply headers: %v", h)
	}
	for name, want := range map[string]uint64{
		"http_local_rate_limiter.http_local_rate_limit.enabled":      3,
		"http_local_rate_limiter.http_local_rate_limit.ok":           2,
		"http_local_rate_limiter.http_local_rate_limit.rate_limited": 1,
		"http_local_rate_limiter.http_local_rate_limit.enforced":     1,
	} {
		if got := value(st, name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

func TestDecideVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(m *lrlv3.LocalRateLimit)
		want Decision // of the second request on a one-token bucket
	}{
		{"enabled defaults to 0%", func(m *lrlv3.LocalRateLimit) { m.FilterEnabled = nil }, Decision{}},
		{"enforced defaults to 0%", func(m *lrlv3.LocalRateLimit) { m.FilterEnforced = nil },
			Decision{Enabled: true, Limited: true, RetryAfter: time.Second}},
		{"custom status", func(m *lrlv3.LocalRateLimit) {
			m.Status = &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}
		},
			Decision{Enabled: true, Limited: true, Enforced: true, Status: 503, GRPCStatus: 14, RetryAfter: time.Second}},
		{"status below 400 is 429", func(m *lrlv3.LocalRateLimit) { m.Status = &typev3.HttpStatus{Code: typev3.StatusCode_OK} },
			Decision{Enabled: true, Limited: true, Enforced: true, Status: 429, GRPCStatus: 14, RetryAfter: time.Second}},
		{"resource exhausted", func(m *lrlv3.LocalRateLimit) { m.RateLimitedAsResourceExhausted = true },
			Decision{Enabled: true, Limited: true, Enforced: true, Status: 429, GRPCStatus: 8, RetryAfter: time.Second}},
		{"no bucket allows all", func(m *lrlv3.LocalRateLimit) { m.TokenBucket = nil }, Decision{Enabled: true}},
		{"x-ratelimit headers", func(m *lrlv3.LocalRateLimit) {
			m.EnableXRatelimitHeaders = ratelimitcommonv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03
		}, Decision{Enabled: true, Limited: true, Enforced: true, Status: 429, GRPCStatus: 14, RetryAfter: time.Second, Reset: time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := full(1)
			tc.mod(m)
			c, err := Compile(m, 0)
			if err != nil {
				t.Fatal(err)
			}
			c.Decide(0, 0)
			if got := c.Decide(0, 0); got != tc.want {
				t.Fatalf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	m := full(1)
	m.EnableXRatelimitHeaders = ratelimitcommonv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03
	m.FilterEnforced = rfp(0)
	m.ResponseHeadersToAdd = []*corev3.HeaderValueOption{
		hvo("x-a", "1", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
		hvo("x-a", "2", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
		hvo("x-b", "new", corev3.HeaderValueOption_ADD_IF_ABSENT),
		hvo("x-c", "set", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS),
		hvo("retry-after", "60", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		hvo("x-pct", "100%%", 0),
		{Header: &corev3.HeaderValue{Key: "x-legacy", Value: "v"}, Append: wrapperspb.Bool(false)},
	}
	m.RequestHeadersToAddWhenNotEnforced = []*corev3.HeaderValueOption{hvo("x-rl-would-limit", "true", 0)}
	c, err := Compile(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := c.Decide(0, 0)
	h := http.Header{}
	c.ResponseHeaders(first, h)
	if h.Get("x-ratelimit-limit") != "1" || h.Get("x-ratelimit-remaining") != "0" || h.Get("x-ratelimit-reset") != "1" {
		t.Fatalf("x-ratelimit headers on an allowed response: %v", h)
	}
	second := c.Decide(0, 0)
	if !second.Limited || second.Enforced {
		t.Fatalf("second = %+v, want limited, not enforced", second)
	}
	rq := http.Header{}
	c.RequestHeaders(first, rq)
	if len(rq) != 0 {
		t.Fatalf("request headers added to an allowed request: %v", rq)
	}
	c.RequestHeaders(second, rq)
	if rq.Get("x-rl-would-limit") != "true" {
		t.Fatalf("request headers: %v", rq)
	}
	reply := http.Header{"X-B": {"old"}, "X-Legacy": {"old"}}
	second.Enforced, second.Status = true, 429
	c.LocalReplyHeaders(second, reply)
	checks := map[string][]string{
		"X-A":                 {"1", "2"},
		"X-B":                 {"old"},
		"X-C":                 nil,
		"Retry-After":         {"60"}, // response_headers_to_add wins
		"X-Pct":               {"100%"},
		"X-Legacy":            {"v"},
		"X-Envoy-Ratelimited": {"true"},
	}
	for k, want := range checks {
		if got := reply[k]; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]int64{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 90 * time.Second: 90} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestOverride(t *testing.T) {
	t.Parallel()
	l, _ := Compile(full(1), 0)
	r, _ := Compile(full(5), 0)
	if Override(l, r) != r || Override(l, nil) != l {
		t.Fatal("Override")
	}
	// The route's bucket is its own: draining it leaves the listener's.
	for range 5 {
		r.Decide(0, 0)
	}
	if d := l.Decide(0, 0); d.Limited {
		t.Fatal("listener bucket drained by the route's")
	}
}

func TestDecideAllocs(t *testing.T) {
	st := newStore(t)
	c := provisioned(t, st, full(1<<30))
	if n := testing.AllocsPerRun(1000, func() { c.Decide(Now(), 1) }); n != 0 {
		t.Fatalf("Decide allocates %v times", n)
	}
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := &nlrlv3.LocalRateLimit{StatPrefix: "tcp_in", TokenBucket: bucket(2, 1, time.Second)}
	c, err := DecodeNetwork(anyOf(t, m), 0)
	if err != nil {
		t.Fatal(err)
	}
	sc := st.Scope(c.StatsPrefix())
	defer sc.Release()
	c.Provision(sc)
	got := []bool{c.AllowConnection(0), c.AllowConnection(0), c.AllowConnection(0), c.AllowConnection(int64(time.Second))}
	if want := []bool{true, true, false, true}; strings.Trim(strings.Join(strs(got), ","), "") != strings.Join(strs(want), ",") {
		t.Fatalf("AllowConnection sequence = %v, want %v", got, want)
	}
	if v := value(st, "local_ratelimit.tcp_in.rate_limited"); v != 1 {
		t.Fatalf("local_ratelimit.tcp_in.rate_limited = %d, want 1", v)
	}

	m.RuntimeEnabled = &corev3.RuntimeFeatureFlag{DefaultValue: wrapperspb.Bool(false), RuntimeKey: "k"}
	off, err := CompileNetwork(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if !off.AllowConnection(0) {
			t.Fatal("disabled filter refused a connection")
		}
	}
}

func strs(b []bool) []string {
	out := make([]string, len(b))
	for i, v := range b {
		if v {
			out[i] = "t"
		} else {
			out[i] = "f"
		}
	}
	return out
}

func TestNetworkErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    *nlrlv3.LocalRateLimit
		want string
	}{
		{"no prefix", &nlrlv3.LocalRateLimit{TokenBucket: bucket(1, 1, time.Second)}, "stat_prefix: required"},
		{"no bucket", &nlrlv3.LocalRateLimit{StatPrefix: "p"}, "token_bucket: required"},
		{"short interval", &nlrlv3.LocalRateLimit{StatPrefix: "p", TokenBucket: bucket(1, 1, time.Millisecond)}, "token_bucket.fill_interval"},
		{"share key", &nlrlv3.LocalRateLimit{StatPrefix: "p", TokenBucket: bucket(1, 1, time.Second), ShareKey: "k"}, "share_key: not supported"},
		{"runtime flag without default", &nlrlv3.LocalRateLimit{StatPrefix: "p", TokenBucket: bucket(1, 1, time.Second), RuntimeEnabled: &corev3.RuntimeFeatureFlag{}}, "runtime_enabled.default_value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeNetwork(anyOf(t, tc.m), 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	c, err := Compile(full(1<<30), Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var r uint64
	for b.Loop() {
		r++
		c.Decide(Now(), r)
	}
}
