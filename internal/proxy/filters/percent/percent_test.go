package percent

import (
	"testing"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
)

func TestFromProtoAndHit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      *typev3.FractionalPercent
		wantErr bool
		hits    uint64 // hits over rnd = 0..999999
	}{
		{"nil is default (none)", nil, false, 0},
		{"50 of hundred", &typev3.FractionalPercent{Numerator: 50}, false, 500000},
		{"1 of ten thousand", &typev3.FractionalPercent{Numerator: 1, Denominator: typev3.FractionalPercent_TEN_THOUSAND}, false, 100},
		{"3 of million", &typev3.FractionalPercent{Numerator: 3, Denominator: typev3.FractionalPercent_MILLION}, false, 3},
		{"over the denominator is all", &typev3.FractionalPercent{Numerator: 200}, false, 1000000},
		{"bad denominator", &typev3.FractionalPercent{Numerator: 1, Denominator: 7}, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := FromProto(tc.in, None, "x.percentage")
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var n uint64
			for r := uint64(0); r < 1000000; r++ {
				if f.Hit(r) {
					n++
				}
			}
			if n != tc.hits {
				t.Fatalf("hits = %d, want %d", n, tc.hits)
			}
		})
	}
}

func TestFromRuntimeDefault(t *testing.T) {
	t.Parallel()
	f, err := FromRuntime(nil, All, "filter_enabled")
	if err != nil || f != All {
		t.Fatalf("nil runtime percent = %v, %v; want All", f, err)
	}
	f, err = FromRuntime(&corev3.RuntimeFractionalPercent{RuntimeKey: "k", DefaultValue: &typev3.FractionalPercent{Numerator: 5}}, All, "filter_enabled")
	if err != nil || f != (Fraction{5, 100}) {
		t.Fatalf("got %v, %v", f, err)
	}
}

func TestCapped(t *testing.T) {
	t.Parallel()
	f := Fraction{Numerator: 50, Denominator: 100}
	if got := f.Capped(80); got.Numerator != 50 {
		t.Fatalf("capped widened to %d", got.Numerator)
	}
	if got := f.Capped(10); got.Numerator != 10 {
		t.Fatalf("capped = %d, want 10", got.Numerator)
	}
}
