package h2frame

import (
	"net/http"
	"strings"
	"testing"
)

// The names map both ways as net/http and strings would, common or not,
// and a common name costs no allocation either way.
func TestNames(t *testing.T) {
	for _, n := range append(commonNames, "X-Custom-Thing", "x-custom-thing", "X-CUSTOM", "a", "") {
		if got, want := LowerName(n), strings.ToLower(n); got != want {
			t.Errorf("LowerName(%q) = %q, want %q", n, got, want)
		}
		if got, want := CanonicalName(strings.ToLower(n)), http.CanonicalHeaderKey(strings.ToLower(n)); got != want {
			t.Errorf("CanonicalName(%q) = %q, want %q", strings.ToLower(n), got, want)
		}
	}
	var sink string
	if a := testing.AllocsPerRun(100, func() {
		sink = LowerName("Grpc-Timeout")
		sink = CanonicalName("grpc-timeout")
		sink = LowerName("x-already-lower")
	}); a != 0 {
		t.Errorf("%v allocations for common or lower-case names", a)
	}
	_ = sink
}

// AddValue keeps a name's values in order, the first ones on the shared
// array, and never lets an append to one name's values overwrite
// another's.
func TestAddValue(t *testing.T) {
	h := http.Header{}
	vals, n := make([]string, 4), 0
	for _, kv := range [][2]string{{"A", "1"}, {"B", "2"}, {"A", "3"}, {"C", "4"}} {
		n = AddValue(h, vals, n, kv[0], kv[1])
	}
	if n != 3 || len(h) != 3 || strings.Join(h["A"], ",") != "1,3" || h.Get("B") != "2" || h.Get("C") != "4" {
		t.Fatalf("n %d, header %v", n, h)
	}
}
