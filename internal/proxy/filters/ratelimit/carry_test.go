package ratelimit

import (
	"testing"
	"time"

	lrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestContinueFrom(t *testing.T) {
	cfg := func(prefix string, max uint32) *Config {
		c, err := Compile(&lrlv3.LocalRateLimit{StatPrefix: prefix, TokenBucket: &typev3.TokenBucket{
			MaxTokens: max, TokensPerFill: wrapperspb.UInt32(1), FillInterval: durationpb.New(time.Hour),
		}}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	prev := cfg("a", 1)
	tests := []struct {
		name string
		next *Config
		same bool
	}{
		{"identical", cfg("a", 1), true},
		{"other prefix", cfg("b", 1), false},
		{"other bucket", cfg("a", 2), false},
	}
	for _, tt := range tests {
		tt.next.ContinueFrom(prev)
		if got := tt.next.Bucket() == prev.Bucket(); got != tt.same {
			t.Errorf("%s: shares the bucket %v, want %v", tt.name, got, tt.same)
		}
	}
	var none *Config
	cfg("a", 1).ContinueFrom(none) // no previous: keeps its own
}
