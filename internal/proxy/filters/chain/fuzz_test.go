package chain

import (
	"testing"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlens/meshlens/internal/proxy/filters/cors"
	"github.com/meshlens/meshlens/internal/proxy/filters/fault"
	"github.com/meshlens/meshlens/internal/proxy/filters/grpcweb"
	"github.com/meshlens/meshlens/internal/proxy/filters/ratelimit"
)

// FuzzDecode feeds arbitrary bytes as each known configuration type, per
// route (DecodePerFilter) and per listener (Add): an error or a config,
// never a panic.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte{0x0a, 0x02, 0x08, 0x01})
	f.Add(uint8(2), []byte{0x0a, 0x03, 'a', 'b', 'c'})
	f.Add(uint8(4), []byte{0x0a, 0x00})
	types := []string{fault.TypeURL, ratelimit.TypeURL, cors.PolicyTypeURL, filterConfigType, cors.FilterTypeURL, grpcweb.TypeURL}
	f.Fuzz(func(t *testing.T, which uint8, value []byte) {
		a := &anypb.Any{TypeUrl: types[int(which)%len(types)], Value: value}
		r, err := DecodePerFilter(map[string]*anypb.Any{"f": a}, 0)
		if err == nil && r == nil {
			t.Fatal("no error and no configuration")
		}
		var c Config
		_, _ = c.Add("f", a, 0)
	})
}
