package fault

import (
	"net/http"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	faultv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// FuzzDecode: any bytes as an HTTPFault either compile or fail with an
// error; a compiled config decides without panicking.
func FuzzDecode(f *testing.F) {
	for _, m := range []*faultv3.HTTPFault{
		{Delay: fixedDelay(time.Second, 10), Abort: httpAbort(503, 50)},
		{Delay: headerDelay(100), Abort: headerAbort(100), MaxActiveFaults: nil},
		{Abort: grpcAbort(14, 100), DownstreamNodes: []string{"n"}},
	} {
		b, err := xdsproto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(&anypb.Any{TypeUrl: TypeURL, Value: b})
		if err != nil {
			return
		}
		d := c.Decide(http.Header{}, 1)
		if d.Delay < 0 || d.Delay > maxDelay {
			t.Fatalf("delay %v out of bounds", d.Delay)
		}
	})
}

// FuzzHeaders: whatever a client puts in the x-envoy-fault-* headers, the
// decision stays within its documented bounds.
func FuzzHeaders(f *testing.F) {
	f.Add("503", "14", "100", "250", "100", uint64(3))
	f.Add("", "", "", "", "", uint64(0))
	f.Add("199", "99999999999", "-1", "18446744073709551615", "x", uint64(1<<63))
	cfg, err := Compile(&faultv3.HTTPFault{Delay: headerDelay(100), Abort: headerAbort(100)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, abort, grpc, abortPct, delay, delayPct string, rnd uint64) {
		h := http.Header{}
		h.Set(HeaderAbortRequest, abort)
		h.Set(HeaderAbortGRPCRequest, grpc)
		h.Set(HeaderAbortRequestPercentage, abortPct)
		h.Set(HeaderDelayRequest, delay)
		h.Set(HeaderDelayRequestPercentage, delayPct)
		d := cfg.Decide(h, rnd)
		if d.Delay < 0 {
			t.Fatalf("negative delay %v", d.Delay)
		}
		if d.Abort != 0 && !d.GRPC && (d.Abort < 200 || d.Abort >= 600) {
			t.Fatalf("abort status %d outside [200, 600)", d.Abort)
		}
		if d.GRPC && (d.Abort != 200 || d.GRPCAbort < 0 || d.GRPCAbort > 16) {
			t.Fatalf("gRPC abort %+v", d)
		}
	})
}
