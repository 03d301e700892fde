// Package percent evaluates Envoy's FractionalPercent (type.v3) and
// RuntimeFractionalPercent (config.core.v3) the way Envoy's runtime does
// when no runtime override is present: a request is in the fraction when a
// uniformly random number modulo the denominator is below the numerator.
//
// meshlens has no runtime layer, so a runtime_key is accepted and ignored:
// the default_value is what applies, exactly as in an Envoy whose runtime
// does not set that key.
package percent

import (
	"fmt"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
)

// Fraction is Numerator/Denominator. The zero Fraction is never hit.
type Fraction struct {
	Numerator   uint32
	Denominator uint32 // 100, 10000 or 1000000
}

// All is 100%.
var All = Fraction{Numerator: 100, Denominator: 100}

// None is 0%.
var None = Fraction{Numerator: 0, Denominator: 100}

// FromProto converts a FractionalPercent; nil gives def. field names the
// field for the error message.
func FromProto(p *typev3.FractionalPercent, def Fraction, field string) (Fraction, error) {
	if p == nil {
		return def, nil
	}
	var d uint32
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		d = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		d = 10000
	case typev3.FractionalPercent_MILLION:
		d = 1000000
	default:
		return Fraction{}, fmt.Errorf("%s.denominator: unknown value %d", field, int32(p.GetDenominator()))
	}
	return Fraction{Numerator: p.GetNumerator(), Denominator: d}, nil
}

// FromRuntime converts a RuntimeFractionalPercent's default_value; nil (or
// a nil default_value) gives def.
func FromRuntime(p *corev3.RuntimeFractionalPercent, def Fraction, field string) (Fraction, error) {
	if p == nil {
		return def, nil
	}
	return FromProto(p.GetDefaultValue(), def, field+".default_value")
}

// Hit reports whether a request whose random draw is rnd falls in the
// fraction. A numerator at or above the denominator always hits.
func (f Fraction) Hit(rnd uint64) bool {
	if f.Numerator == 0 || f.Denominator == 0 {
		return false
	}
	if f.Numerator >= f.Denominator {
		return true
	}
	return rnd%uint64(f.Denominator) < uint64(f.Numerator)
}

// Capped is f with its numerator lowered to n when n is smaller: how
// Envoy's header-controlled percentages narrow, never widen, the
// configured one.
func (f Fraction) Capped(n uint32) Fraction {
	if n < f.Numerator {
		f.Numerator = n
	}
	return f
}

// Mix turns one random draw into another, independent-looking one
// (SplitMix64's finaliser), so that one draw per request can decide
// several independent percentages.
func Mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
