package fault

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	faultcommonv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/stats"
)

func pct(n uint32) *typev3.FractionalPercent { return &typev3.FractionalPercent{Numerator: n} }

func fixedDelay(d time.Duration, p uint32) *faultcommonv3.FaultDelay {
	return &faultcommonv3.FaultDelay{
		FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)},
		Percentage:         pct(p),
	}
}

func headerDelay(p uint32) *faultcommonv3.FaultDelay {
	return &faultcommonv3.FaultDelay{
		FaultDelaySecifier: &faultcommonv3.FaultDelay_HeaderDelay_{HeaderDelay: &faultcommonv3.FaultDelay_HeaderDelay{}},
		Percentage:         pct(p),
	}
}

func httpAbort(code, p uint32) *faultv3.FaultAbort {
	return &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: code}, Percentage: pct(p)}
}

func grpcAbort(code, p uint32) *faultv3.FaultAbort {
	return &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: code}, Percentage: pct(p)}
}

func headerAbort(p uint32) *faultv3.FaultAbort {
	return &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HeaderAbort_{HeaderAbort: &faultv3.FaultAbort_HeaderAbort{}}, Percentage: pct(p)}
}

func mustAny(t testing.TB, m *faultv3.HTTPFault) *anypb.Any {
	t.Helper()
	a, err := xdsproto.NewAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustDecode(t testing.TB, m *faultv3.HTTPFault) *Config {
	t.Helper()
	c, err := Decode(mustAny(t, m))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    *faultv3.HTTPFault
		want string
	}{
		{"delay without specifier", &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{}}, "delay: one of fixed_delay or header_delay"},
		{"zero delay", &faultv3.HTTPFault{Delay: fixedDelay(0, 100)}, "delay.fixed_delay: 0s is not positive"},
		{"huge delay", &faultv3.HTTPFault{Delay: fixedDelay(48*time.Hour, 100)}, "delay.fixed_delay: 48h0m0s is over"},
		{"bad delay denominator", &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Second)},
			Percentage:         &typev3.FractionalPercent{Numerator: 1, Denominator: 9}}}, "delay.percentage.denominator"},
		{"abort status too low", &faultv3.HTTPFault{Abort: httpAbort(199, 100)}, "abort.http_status: 199 is outside [200, 600)"},
		{"abort status too high", &faultv3.HTTPFault{Abort: httpAbort(600, 100)}, "abort.http_status: 600"},
		{"abort without type", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{}}, "abort: one of http_status"},
		{"upstream cluster", &faultv3.HTTPFault{UpstreamCluster: "c"}, "upstream_cluster: not supported"},
		{"response rate limit", &faultv3.HTTPFault{ResponseRateLimit: &faultcommonv3.FaultRateLimit{}}, "response_rate_limit: not supported"},
		{"range matcher", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{}}}}, "headers[0].range_match: not supported"},
		{"pseudo header", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: ":path"}}}, "headers[0].name: pseudo-header"},
		{"bad header name", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "a b"}}}, "headers[0].name"},
		{"bad regex", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}}}}}, "headers[0].string_match.safe_regex.regex"},
		{"empty node", &faultv3.HTTPFault{DownstreamNodes: []string{""}}, "downstream_nodes[0]: empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(mustAny(t, tc.m))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := Decode(nil); err == nil {
		t.Fatal("nil Any decoded")
	}
	if _, err := Decode(&anypb.Any{TypeUrl: "type.googleapis.com/x.Y"}); err == nil || !strings.Contains(err.Error(), "want \""+TypeURL) {
		t.Fatalf("wrong type: err = %v", err)
	}
	if _, err := Decode(&anypb.Any{TypeUrl: TypeURL, Value: []byte{0xff}}); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	re := func(s string) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}}}
	}
	tests := []struct {
		name string
		m    *faultv3.HTTPFault
		h    http.Header
		rnd  uint64
		want Decision
	}{
		{"empty config", &faultv3.HTTPFault{}, hdr(), 0, Decision{}},
		{"fixed delay at 100%", &faultv3.HTTPFault{Delay: fixedDelay(50*time.Millisecond, 100)}, hdr(), 7, Decision{Delay: 50 * time.Millisecond}},
		{"fixed delay at 0%", &faultv3.HTTPFault{Delay: fixedDelay(50*time.Millisecond, 0)}, hdr(), 7, Decision{}},
		{"delay in the fraction", &faultv3.HTTPFault{Delay: fixedDelay(time.Second, 10)}, hdr(), 109, Decision{Delay: time.Second}},
		{"delay outside the fraction", &faultv3.HTTPFault{Delay: fixedDelay(time.Second, 10)}, hdr(), 110, Decision{}},
		{"http abort", &faultv3.HTTPFault{Abort: httpAbort(503, 100)}, hdr(), 0, Decision{Abort: 503}},
		{"grpc abort", &faultv3.HTTPFault{Abort: grpcAbort(14, 100)}, hdr(), 0, Decision{Abort: 200, GRPCAbort: 14, GRPC: true}},
		{"grpc abort OK status", &faultv3.HTTPFault{Abort: grpcAbort(0, 100)}, hdr(), 0, Decision{Abort: 200, GRPCAbort: 0, GRPC: true}},
		{"abort body", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 418}, Percentage: pct(100), ResponseBody: "teapot"}}, hdr(), 0, Decision{Abort: 418, Body: "teapot"}},
		{"delay and abort", &faultv3.HTTPFault{Delay: fixedDelay(time.Millisecond, 100), Abort: httpAbort(500, 100)}, hdr(), 0, Decision{Delay: time.Millisecond, Abort: 500}},
		{"header delay", &faultv3.HTTPFault{Delay: headerDelay(100)}, hdr(HeaderDelayRequest, "250"), 0, Decision{Delay: 250 * time.Millisecond}},
		{"header delay absent", &faultv3.HTTPFault{Delay: headerDelay(100)}, hdr(), 0, Decision{}},
		{"header delay not a number", &faultv3.HTTPFault{Delay: headerDelay(100)}, hdr(HeaderDelayRequest, "-5"), 0, Decision{}},
		{"header delay percentage narrows", &faultv3.HTTPFault{Delay: headerDelay(100)}, hdr(HeaderDelayRequest, "10", HeaderDelayRequestPercentage, "0"), 0, Decision{}},
		{"header delay percentage cannot widen", &faultv3.HTTPFault{Delay: headerDelay(0)}, hdr(HeaderDelayRequest, "10", HeaderDelayRequestPercentage, "100"), 0, Decision{}},
		{"header delay percentage bad is ignored", &faultv3.HTTPFault{Delay: headerDelay(100)}, hdr(HeaderDelayRequest, "10", HeaderDelayRequestPercentage, "x"), 0, Decision{Delay: 10 * time.Millisecond}},
		{"header abort http", &faultv3.HTTPFault{Abort: headerAbort(100)}, hdr(HeaderAbortRequest, "429"), 0, Decision{Abort: 429}},
		{"header abort http out of range", &faultv3.HTTPFault{Abort: headerAbort(100)}, hdr(HeaderAbortRequest, "600"), 0, Decision{}},
		{"header abort grpc", &faultv3.HTTPFault{Abort: headerAbort(100)}, hdr(HeaderAbortGRPCRequest, "8"), 0, Decision{Abort: 200, GRPCAbort: 8, GRPC: true}},
		{"header abort grpc 16", &faultv3.HTTPFault{Abort: headerAbort(100)}, hdr(HeaderAbortGRPCRequest, "16"), 0, Decision{Abort: 200, GRPCAbort: 16, GRPC: true}},
		{"header abort grpc out of range", &faultv3.HTTPFault{Abort: headerAbort(100)}, hdr(HeaderAbortGRPCRequest, "17"), 0, Decision{}},
		{"header abort http wins over grpc", &faultv3.HTTPFault{Abort: headerAbort(100)}, hdr(HeaderAbortRequest, "503", HeaderAbortGRPCRequest, "8"), 0, Decision{Abort: 503}},
		{"header abort percentage 0", &faultv3.HTTPFault{Abort: headerAbort(100)}, hdr(HeaderAbortRequest, "503", HeaderAbortRequestPercentage, "0"), 0, Decision{}},
		{"header abort ignored without header_abort", &faultv3.HTTPFault{Abort: httpAbort(500, 0)}, hdr(HeaderAbortRequest, "503"), 0, Decision{}},
		{"header delay ignored with fixed delay", &faultv3.HTTPFault{Delay: fixedDelay(time.Second, 100)}, hdr(HeaderDelayRequest, "5"), 0, Decision{Delay: time.Second}},
		{"header matcher hit", &faultv3.HTTPFault{Abort: httpAbort(500, 100), Headers: []*routev3.HeaderMatcher{re("test-")}}, hdr("X-User", "test-1"), 0, Decision{Abort: 500}},
		{"header matcher miss", &faultv3.HTTPFault{Abort: httpAbort(500, 100), Headers: []*routev3.HeaderMatcher{re("test-")}}, hdr("X-User", "prod-1"), 0, Decision{}},
		{"header matcher absent", &faultv3.HTTPFault{Abort: httpAbort(500, 100), Headers: []*routev3.HeaderMatcher{re("test-")}}, hdr(), 0, Decision{}},
		{"inverted matcher absent", &faultv3.HTTPFault{Abort: httpAbort(500, 100), Headers: []*routev3.HeaderMatcher{{Name: "x-user", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a"}}}}}}, hdr(), 0, Decision{Abort: 500}},
		{"present match", &faultv3.HTTPFault{Abort: httpAbort(500, 100), Headers: []*routev3.HeaderMatcher{{Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}, hdr("X-Canary", "1"), 0, Decision{Abort: 500}},
		{"present match false", &faultv3.HTTPFault{Abort: httpAbort(500, 100), Headers: []*routev3.HeaderMatcher{{Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}}}}, hdr("X-Canary", "1"), 0, Decision{}},
		{"missing as empty", &faultv3.HTTPFault{Abort: httpAbort(500, 100), Headers: []*routev3.HeaderMatcher{{Name: "x-a", TreatMissingHeaderAsEmpty: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: ""}}}}}}, hdr(), 0, Decision{Abort: 500}},
		{"downstream node hit", &faultv3.HTTPFault{Abort: httpAbort(500, 100), DownstreamNodes: []string{"a", "b"}}, hdr(HeaderDownstreamServiceNode, "b"), 0, Decision{Abort: 500}},
		{"downstream node miss", &faultv3.HTTPFault{Abort: httpAbort(500, 100), DownstreamNodes: []string{"a"}}, hdr(HeaderDownstreamServiceNode, "c"), 0, Decision{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustDecode(t, tc.m)
			if got := c.Decide(tc.h, tc.rnd); got != tc.want {
				t.Fatalf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
	var nilCfg *Config
	if d := nilCfg.Decide(hdr(), 0); d.Faulted() {
		t.Fatal("nil config faulted")
	}
}

// The delay and the abort draw independent fractions: at 50% each, all
// four combinations occur, in about equal shares.
func TestDecideIndependentFractions(t *testing.T) {
	t.Parallel()
	c := mustDecode(t, &faultv3.HTTPFault{Delay: fixedDelay(time.Millisecond, 50), Abort: httpAbort(500, 50)})
	var n [2][2]int
	for r := uint64(0); r < 10000; r++ {
		d := c.Decide(hdr(), r)
		n[b2i(d.Delay > 0)][b2i(d.Abort != 0)]++
	}
	for i := range 2 {
		for j := range 2 {
			if n[i][j] < 2000 || n[i][j] > 3000 {
				t.Fatalf("combination delay=%d abort=%d happened %d times of 10000: %v", i, j, n[i][j], n)
			}
		}
	}
}

// The deprecated HeaderMatcher specifiers still match, as in Envoy.
func TestDeprecatedHeaderSpecifiers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hm   *routev3.HeaderMatcher
		hit  string
		miss string
	}{
		//lint:ignore SA1019 testing the deprecated specifier on purpose
		{"exact", &routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "v"}}, "v", "vv"},
		//lint:ignore SA1019 testing the deprecated specifier on purpose
		{"prefix", &routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "v"}}, "vv", "w"},
		//lint:ignore SA1019 testing the deprecated specifier on purpose
		{"suffix", &routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "z"}}, "az", "za"},
		//lint:ignore SA1019 testing the deprecated specifier on purpose
		{"contains", &routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: "m"}}, "ama", "aaa"},
		//lint:ignore SA1019 testing the deprecated specifier on purpose
		{"safe regex", &routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "[0-9]+"}}}, "123", "12a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustDecode(t, &faultv3.HTTPFault{Abort: httpAbort(500, 100), Headers: []*routev3.HeaderMatcher{tc.hm}})
			if c.Decide(hdr("X-A", tc.hit), 0).Abort != 500 {
				t.Errorf("%q did not match", tc.hit)
			}
			if c.Decide(hdr("X-A", tc.miss), 0).Faulted() {
				t.Errorf("%q matched", tc.miss)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestOverride(t *testing.T) {
	t.Parallel()
	l := mustDecode(t, &faultv3.HTTPFault{Abort: httpAbort(500, 100)})
	r := mustDecode(t, &faultv3.HTTPFault{Delay: fixedDelay(time.Second, 100)})
	if got := Override(l, r).Decide(hdr(), 0); got != (Decision{Delay: time.Second}) {
		t.Fatalf("route config did not replace the listener's: %+v", got)
	}
	if got := Override(l, nil).Decide(hdr(), 0); got != (Decision{Abort: 500}) {
		t.Fatalf("listener config not used: %+v", got)
	}
}

func newTestFilter(t *testing.T) (*Filter, *stats.Store) {
	t.Helper()
	st, err := stats.NewStore(stats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc := st.Scope(StatsPrefix("ingress"))
	t.Cleanup(sc.Release)
	return NewFilter(NewStats(sc)), st
}

func counter(st *stats.Store, name string) uint64 {
	return st.Scope("").Counter(name).Value()
}

func TestInject(t *testing.T) {
	t.Parallel()
	f, st := newTestFilter(t)
	cfg := mustDecode(t, &faultv3.HTTPFault{Delay: fixedDelay(time.Millisecond, 100), Abort: httpAbort(503, 100), MaxActiveFaults: wrapperspb.UInt32(1)})
	d := cfg.Decide(hdr(), 0)
	abort, held, err := f.Inject(context.Background(), cfg, d)
	if err != nil || !held || abort.Abort != 503 || abort.Delay != 0 {
		t.Fatalf("Inject = %+v, %v, %v", abort, held, err)
	}
	if f.Active() != 1 {
		t.Fatalf("active = %d", f.Active())
	}
	// A second stream while the first holds the only slot: skipped.
	abort2, held2, err := f.Inject(context.Background(), cfg, d)
	if err != nil || held2 || abort2.Faulted() {
		t.Fatalf("overflowing Inject = %+v, %v, %v", abort2, held2, err)
	}
	f.Release()
	if f.Active() != 0 {
		t.Fatalf("active after release = %d", f.Active())
	}
	for name, want := range map[string]uint64{
		"http.ingress.fault.delays_injected": 1,
		"http.ingress.fault.aborts_injected": 1,
		"http.ingress.fault.faults_overflow": 1,
	} {
		if got := counter(st, name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if g := st.Scope("").Gauge("http.ingress.fault.active_faults"); g.Value() != 0 {
		t.Errorf("active_faults = %d", g.Value())
	}
}

func TestInjectCancelledDuringDelay(t *testing.T) {
	t.Parallel()
	f, st := newTestFilter(t)
	cfg := mustDecode(t, &faultv3.HTTPFault{Delay: fixedDelay(time.Hour, 100), Abort: httpAbort(503, 100)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	abort, held, err := f.Inject(ctx, cfg, cfg.Decide(hdr(), 0))
	if !errors.Is(err, context.Canceled) || !held || abort.Faulted() {
		t.Fatalf("Inject = %+v, %v, %v", abort, held, err)
	}
	f.Release()
	if got := counter(st, "http.ingress.fault.aborts_injected"); got != 0 {
		t.Fatalf("aborts_injected = %d after a cancelled delay", got)
	}
}

func TestInjectNothing(t *testing.T) {
	t.Parallel()
	f, _ := newTestFilter(t)
	_, held, err := f.Inject(context.Background(), nil, Decision{})
	if held || err != nil {
		t.Fatal("no-fault decision held a slot")
	}
}

func TestParseUint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"123", 123, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false}, {"", 0, false}, {"+1", 0, false}, {" 1", 0, false}, {"1.5", 0, false},
	}
	for _, tc := range tests {
		got, ok := ParseUint(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseUint(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDecideAllocs(t *testing.T) {
	c := mustDecode(t, &faultv3.HTTPFault{Delay: headerDelay(100), Abort: headerAbort(100),
		Headers: []*routev3.HeaderMatcher{{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "t"}}}}}})
	h := hdr("X-User", "t1", HeaderDelayRequest, "5", HeaderAbortRequest, "503")
	if n := testing.AllocsPerRun(100, func() { _ = c.Decide(h, 42) }); n != 0 {
		t.Fatalf("Decide allocates %v times", n)
	}
}

func BenchmarkDecide(b *testing.B) {
	c := mustDecode(b, &faultv3.HTTPFault{Delay: fixedDelay(time.Millisecond, 10), Abort: grpcAbort(14, 5)})
	h := hdr("X-User", "t1")
	b.ReportAllocs()
	var r uint64
	for b.Loop() {
		r++
		_ = c.Decide(h, r)
	}
}

// max_active_faults holds under concurrency: however streams interleave,
// no more than the bound hold a fault at once, and every stream either
// got a slot or was counted as overflow.
func TestMaxActiveFaultsConcurrent(t *testing.T) {
	t.Parallel()
	f, st := newTestFilter(t)
	const max, streams = 3, 64
	cfg := mustDecode(t, &faultv3.HTTPFault{Abort: httpAbort(503, 100), MaxActiveFaults: wrapperspb.UInt32(max)})
	var peak atomic.Int64
	var held atomic.Int64
	var wg sync.WaitGroup
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := f.Inject(context.Background(), cfg, cfg.Decide(hdr(), 0))
			if err != nil {
				t.Error(err)
				return
			}
			if !ok {
				return
			}
			held.Add(1)
			for {
				p, n := peak.Load(), f.Active()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			runtime.Gosched()
			f.Release()
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > max {
		t.Fatalf("%d faults active at once, bound %d", p, max)
	}
	overflow := counter(st, "http.ingress.fault.faults_overflow")
	if uint64(held.Load())+overflow != streams {
		t.Fatalf("held %d + overflow %d != %d streams", held.Load(), overflow, streams)
	}
	if f.Active() != 0 {
		t.Fatalf("active = %d after all released", f.Active())
	}
}
