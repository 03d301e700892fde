package cors_test

import (
	"fmt"
	"net/http"

	"github.com/meshlens/meshlens/internal/xdsproto"
	corsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/matcher/v3"

	"github.com/meshlens/meshlens/internal/proxy/filters/cors"
)

// The request path of the CORS filter: a preflight is answered locally.
func Example() {
	a, _ := xdsproto.NewAny(&corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://app.example.com"}}},
		AllowMethods:           "POST",
		AllowHeaders:           "content-type,x-grpc-web",
		MaxAge:                 "600",
	})
	route, err := cors.DecodePolicy(a)
	if err != nil {
		panic(err)
	}
	f := cors.NewFilter(cors.NewStats(nil))

	req := http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"POST"}}
	p := cors.Merge(route, nil) // route's policy, then the virtual host's
	r := f.Check(p, http.MethodOptions, req, 0)
	if r.Kind == cors.Preflight {
		h := http.Header{}
		p.Preflight(r, req, h)
		fmt.Println(200, h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Methods"), h.Get("Access-Control-Max-Age"))
	}
	// Output: 200 https://app.example.com POST 600
}
