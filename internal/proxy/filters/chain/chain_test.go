package chain

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	faultcommonv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/fault/v3"
	grpcwebv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/grpc_web/v3"
	lrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/local_ratelimit/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/filters/grpcweb"
	"github.com/meshlens/meshlens/internal/proxy/filters/ratelimit"
	"github.com/meshlens/meshlens/internal/stats"
)

func mustAny(t testing.TB, m xdsproto.Message) *anypb.Any {
	t.Helper()
	a, err := xdsproto.NewAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// gatewayChain is the control plane's chain: grpc_web, cors, fault,
// local_ratelimit, with empty listener-level configurations.
func gatewayChain(t *testing.T) *Config {
	t.Helper()
	cfg := &Config{}
	for _, f := range []struct {
		name string
		m    xdsproto.Message
	}{
		{"envoy.filters.http.grpc_web", &grpcwebv3.GrpcWeb{}},
		{"envoy.filters.http.cors", &corsv3.Cors{}},
		{"envoy.filters.http.fault", &faultv3.HTTPFault{}},
		{"envoy.filters.http.local_ratelimit", &lrlv3.LocalRateLimit{StatPrefix: "gw"}},
	} {
		if known, err := cfg.Add(f.name, mustAny(t, f.m), ratelimit.Now()); !known || err != nil {
			t.Fatalf("Add %s: %v %v", f.name, known, err)
		}
	}
	return cfg
}

func perRoute(t *testing.T, m map[string]xdsproto.Message) *Route {
	t.Helper()
	a := map[string]*anypb.Any{}
	for k, v := range m {
		a[k] = mustAny(t, v)
	}
	r, err := DecodePerFilter(a, ratelimit.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	all       = &typev3.FractionalPercent{Numerator: 100}
	allRT     = &corev3.RuntimeFractionalPercent{DefaultValue: all}
	oneBucket = &lrlv3.LocalRateLimit{
		StatPrefix:                     "rl",
		TokenBucket:                    &typev3.TokenBucket{MaxTokens: 1, TokensPerFill: wrapperspb.UInt32(1), FillInterval: durationpb.New(time.Hour)},
		FilterEnabled:                  allRT,
		FilterEnforced:                 allRT,
		EnableRetryAfterHeader:         true,
		RateLimitedAsResourceExhausted: true,
	}
	allowApp = &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://app.example"}}}, AllowMethods: "POST"}
)

func TestNilChainDoesNothing(t *testing.T) {
	var c *Chain
	r, _ := http.NewRequest("GET", "http://x/", nil)
	var s Stream
	up := &http.Response{}
	allocs := testing.AllocsPerRun(100, func() {
		rep, err := c.Request(context.Background(), r, nil, &s, nil)
		if rep.Status != 0 || err != nil {
			t.Fatal(rep, err)
		}
		c.Response(&s, up)
		s.End()
	})
	if allocs != 0 {
		t.Errorf("a nil chain allocates %.0f times per stream", allocs)
	}
	if New(&Config{}, "x", nil) != nil {
		t.Error("New of an empty configuration is not nil")
	}
}

// TestLocalRepliesThroughEarlierFilters: a filter's local reply to a
// gRPC-Web call from a browser is a gRPC-Web trailers-only response that
// carries the CORS headers, as Envoy's encoders of the filters before
// the replying one shape it.
func TestLocalRepliesThroughEarlierFilters(t *testing.T) {
	store, err := stats.NewStore(stats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	acquire := func(p string) *stats.Scope { return store.Scope(p) }
	cfg := gatewayChain(t)
	c := New(cfg, "gw", acquire)
	rt := perRoute(t, map[string]xdsproto.Message{
		"envoy.filters.http.local_ratelimit": oneBucket,
		"envoy.filters.http.cors":            allowApp,
	})
	rt.RateLimit.Provision(acquire(rt.RateLimit.StatsPrefix()))
	call := func() (Reply, http.Header) {
		r, _ := http.NewRequest("POST", "http://gw/pkg.Svc/M", strings.NewReader("AAAAAAA="))
		r.Header.Set("Content-Type", "application/grpc-web-text")
		r.Header.Set("Origin", "https://app.example")
		var s Stream
		defer s.End()
		resp := http.Header{}
		rep, err := c.Request(context.Background(), r, rt, &s, resp)
		if err != nil {
			t.Fatal(err)
		}
		if r.Header.Get("Content-Type") != "application/grpc" || r.ContentLength != -1 {
			t.Errorf("the upstream request: content-type %q, length %d", r.Header.Get("Content-Type"), r.ContentLength)
		}
		return rep, resp
	}
	if rep, _ := call(); rep.Status != 0 {
		t.Fatalf("first call: %+v", rep)
	}
	rep, h := call()
	if rep.Status != 200 || rep.Body != "" || rep.Flags != accesslog.RateLimited {
		t.Errorf("rate limited call: %+v, want 200, no body, RL", rep)
	}
	want := map[string]string{
		"Content-Type":                "application/grpc-web-text+proto",
		"Grpc-Status":                 "8",
		"Grpc-Message":                BodyRateLimited,
		"X-Envoy-Ratelimited":         "true",
		"Access-Control-Allow-Origin": "https://app.example",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, h.Get(k), v, h)
		}
	}
}

// TestFaultFlags: a delay is flagged DI and waited; an abort is FI with
// the configured status and Envoy's body; a client gone during the delay
// ends the request with its context's error.
func TestFaultFlags(t *testing.T) {
	c := New(gatewayChain(t), "gw", func(string) *stats.Scope { return nil })
	rt := perRoute(t, map[string]xdsproto.Message{"envoy.filters.http.fault": &faultv3.HTTPFault{
		Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Millisecond)}, Percentage: all},
		Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}, Percentage: all},
	}})
	r, _ := http.NewRequest("GET", "http://x/", nil)
	var s Stream
	rep, err := c.Request(context.Background(), r, rt, &s, http.Header{})
	s.End()
	if err != nil || rep.Status != 503 || rep.Body != BodyFaultAbort || rep.Flags != accesslog.DelayInjected|accesslog.FaultInjected {
		t.Errorf("faulted request: %+v %v", rep, err)
	}
	slow := perRoute(t, map[string]xdsproto.Message{"envoy.filters.http.fault": &faultv3.HTTPFault{
		Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Hour)}, Percentage: all},
	}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Request(ctx, r, slow, &s, http.Header{}); err == nil {
		t.Error("a request whose client left during the delay went on")
	}
	s.End()
	if c.fault.Active() != 0 {
		t.Errorf("%d active faults after the streams ended", c.fault.Active())
	}
}

// TestResponseGRPCWeb: the upstream's gRPC response becomes gRPC-Web: its
// trailers are the body's last frame, not HTTP trailers, and an actual
// CORS request's response gets the allow-origin header.
func TestResponseGRPCWeb(t *testing.T) {
	c := New(gatewayChain(t), "gw", func(string) *stats.Scope { return nil })
	rt := perRoute(t, map[string]xdsproto.Message{"envoy.filters.http.cors": allowApp})
	r, _ := http.NewRequest("POST", "http://gw/pkg.Svc/M", bytes.NewReader(grpcweb.AppendFrame(nil, 0, []byte("hi"))))
	r.Header.Set("Content-Type", "application/grpc-web+proto")
	r.Header.Set("Origin", "https://app.example")
	var s Stream
	defer s.End()
	if rep, err := c.Request(context.Background(), r, rt, &s, http.Header{}); rep.Status != 0 || err != nil {
		t.Fatal(rep, err)
	}
	resp := &http.Response{
		StatusCode:    200,
		Header:        http.Header{"Content-Type": {"application/grpc"}},
		Body:          io.NopCloser(bytes.NewReader(grpcweb.AppendFrame(nil, 0, []byte("ok")))),
		ContentLength: 7,
		Trailer:       http.Header{"Grpc-Status": {"0"}},
	}
	c.Response(&s, resp)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Trailer != nil {
		t.Errorf("resp.Trailer = %v while the body is read, want none (the trailers are in the body)", resp.Trailer)
	}
	if err := resp.Body.Close(); err != nil || resp.Trailer.Get("Grpc-Status") != "0" {
		t.Errorf("after Close, resp.Trailer = %v (%v), want the upstream's back for outlier detection", resp.Trailer, err)
	}
	if resp.ContentLength != -1 || resp.Header.Get("Content-Type") != "application/grpc-web+proto" || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("response head: trailer %v length %d header %v", resp.Trailer, resp.ContentLength, resp.Header)
	}
	br := bytes.NewReader(body)
	msg, err := grpcweb.ReadFrame(br, 0)
	if err != nil || string(msg.Payload) != "ok" {
		t.Fatalf("message frame %+v %v", msg, err)
	}
	tr, err := grpcweb.ReadFrame(br, 0)
	if err != nil || !tr.Trailer() {
		t.Fatalf("trailer frame %+v %v", tr, err)
	}
	if h, err := grpcweb.ParseTrailer(tr.Payload); err != nil || h.Get("Grpc-Status") != "0" {
		t.Errorf("trailers %v %v", h, err)
	}
}

// TestDecodePerFilterOptional: an unknown per-route configuration is
// refused, unless a FilterConfig marks it optional.
func TestDecodePerFilterOptional(t *testing.T) {
	unknown := &anypb.Any{TypeUrl: "type.googleapis.com/acme.Audit"}
	if _, err := DecodePerFilter(map[string]*anypb.Any{"acme": unknown}, 0); err == nil {
		t.Error("an unknown per-route configuration was accepted")
	}
	opt := mustAny(t, &routev3.FilterConfig{Config: unknown, IsOptional: true})
	if r, err := DecodePerFilter(map[string]*anypb.Any{"acme": opt}, 0); err != nil || r == nil {
		t.Errorf("an optional unknown configuration: %v %v", r, err)
	}
	if got := Combine(nil, &Route{}, nil); got != nil {
		t.Errorf("Combine of empty levels: %+v, want nil", got)
	}
}

// TestResponseNotGRPC: a response to a gRPC-Web call that is not gRPC (an
// error page) becomes a trailers-only gRPC-Web response: HTTP 200, the
// grpc-status of its HTTP status and its body as grpc-message.
func TestResponseNotGRPC(t *testing.T) {
	c := New(gatewayChain(t), "gw", func(string) *stats.Scope { return nil })
	r, _ := http.NewRequest("POST", "http://gw/pkg.Svc/M", bytes.NewReader(grpcweb.AppendFrame(nil, 0, nil)))
	r.Header.Set("Content-Type", "application/grpc-web")
	var s Stream
	defer s.End()
	if rep, err := c.Request(context.Background(), r, nil, &s, http.Header{}); rep.Status != 0 || err != nil {
		t.Fatal(rep, err)
	}
	resp := &http.Response{
		StatusCode: 503,
		Header:     http.Header{"Content-Type": {"text/plain"}},
		Body:       io.NopCloser(strings.NewReader("no healthy upstream")),
	}
	c.Response(&s, resp)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Grpc-Status") != "14" || resp.Header.Get("Grpc-Message") != "no healthy upstream" {
		t.Errorf("response %d %q %v", resp.StatusCode, body, resp.Header)
	}
}
