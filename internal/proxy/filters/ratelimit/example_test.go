package ratelimit_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	lrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshlens/meshlens/internal/proxy/filters/ratelimit"
)

// The request path of the HTTP local rate limit: decode and provision
// once, decide per request, answer locally when enforced.
func Example() {
	all := &corev3.RuntimeFractionalPercent{RuntimeKey: "rl", DefaultValue: &typev3.FractionalPercent{Numerator: 100}}
	a, _ := xdsproto.NewAny(&lrlv3.LocalRateLimit{
		StatPrefix:             "ingress_rl",
		TokenBucket:            &typev3.TokenBucket{MaxTokens: 1, TokensPerFill: wrapperspb.UInt32(1), FillInterval: durationpb.New(time.Second)},
		FilterEnabled:          all,
		FilterEnforced:         all,
		EnableRetryAfterHeader: true,
	})
	now := ratelimit.Now()
	route, err := ratelimit.Decode(a, now)
	if err != nil {
		panic(err)
	}
	route.Provision(nil) // a scope acquired at route.StatsPrefix() in the proxy

	for i := range 2 {
		cfg := ratelimit.Override(nil, route)
		d := cfg.Decide(now, uint64(i))
		if !d.Enforced {
			fmt.Println("forward")
			continue
		}
		h := http.Header{}
		cfg.LocalReplyHeaders(d, h)
		fmt.Println(d.Status, h.Get("X-Envoy-Ratelimited"), h.Get("Retry-After"))
	}
	// Output:
	// forward
	// 429 true 1
}
