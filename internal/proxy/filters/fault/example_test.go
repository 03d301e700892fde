package fault_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	faultcommonv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshlens/meshlens/internal/proxy/filters/fault"
)

// The request path of the fault filter: decode once, decide per request,
// inject, and answer locally when the decision aborts.
func Example() {
	a, _ := xdsproto.NewAny(&faultv3.HTTPFault{
		Delay: &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Millisecond)},
			Percentage:         &typev3.FractionalPercent{Numerator: 100},
		},
		Abort: &faultv3.FaultAbort{
			ErrorType:  &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14},
			Percentage: &typev3.FractionalPercent{Numerator: 100},
		},
	})
	listener, err := fault.Decode(a)
	if err != nil {
		panic(err)
	}
	f := fault.NewFilter(fault.NewStats(nil)) // per listener; stats from a scope at fault.StatsPrefix(hcm prefix)

	// Per request:
	cfg := fault.Override(listener, nil) // nil: the route has no typed_per_filter_config
	d := cfg.Decide(http.Header{}, 12345)
	abort, held, err := f.Inject(context.Background(), cfg, d)
	if held {
		defer f.Release() // when the stream ends
	}
	if err != nil {
		return // the client went away during the delay
	}
	if abort.Abort != 0 {
		fmt.Println("local reply: HTTP", abort.Abort, "grpc-status", abort.GRPCAbort, abort.GRPC)
	}
	// Output: local reply: HTTP 200 grpc-status 14 true
}
