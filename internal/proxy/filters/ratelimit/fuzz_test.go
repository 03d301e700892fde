package ratelimit

import (
	"net/http"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
	nlrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/local_ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// FuzzDecode: any bytes either compile or fail with an error, and a
// compiled config decides and writes headers without panicking.
func FuzzDecode(f *testing.F) {
	b, _ := xdsproto.Marshal(full(3))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(&anypb.Any{TypeUrl: TypeURL, Value: b}, 0)
		if err != nil {
			return
		}
		for i := range 4 {
			d := c.Decide(int64(i)*int64(time.Second), uint64(i))
			h := http.Header{}
			c.ResponseHeaders(d, h)
			c.RequestHeaders(d, h)
			if d.Enforced {
				c.LocalReplyHeaders(d, h)
				if d.Status < 400 || d.Status > 599 {
					t.Fatalf("local reply status %d", d.Status)
				}
			}
		}
	})
}

// FuzzDecodeNetwork: as FuzzDecode, for the network filter.
func FuzzDecodeNetwork(f *testing.F) {
	b, _ := xdsproto.Marshal(&nlrlv3.LocalRateLimit{StatPrefix: "p", TokenBucket: bucket(2, 1, time.Second)})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeNetwork(&anypb.Any{TypeUrl: NetworkTypeURL, Value: b}, 0)
		if err != nil {
			return
		}
		c.AllowConnection(0)
	})
}

// FuzzBucket: any sequence of (possibly non-monotonic) clock readings
// never grants more than max_tokens plus the fills elapsed.
func FuzzBucket(f *testing.F) {
	f.Add(uint32(3), uint32(1), []byte{0, 1, 2, 200, 3})
	f.Fuzz(func(t *testing.T, max, per uint32, steps []byte) {
		max = max%1000 + 1
		per = per%1000 + 1
		const iv = int64(100 * time.Millisecond)
		b := NewBucket(max, per, time.Duration(iv), 0)
		var granted, latest int64
		for _, s := range steps {
			now := int64(s) * iv / 4
			if now > latest {
				latest = now
			}
			if ok, retry := b.Allow(now); ok {
				granted++
			} else if retry <= 0 || retry > time.Duration(iv) {
				t.Fatalf("retry %v outside (0, interval]", retry)
			}
		}
		if limit := int64(max) + latest/iv*int64(per); granted > limit {
			t.Fatalf("granted %d > %d", granted, limit)
		}
	})
}
