package allocstest

import "testing"

var sink []byte

// Fewest counts an allocation made on every call, and none for a call
// that makes none.
func TestFewest(t *testing.T) {
	if n := Fewest(100, func() { sink = make([]byte, 64) }); n != 1 {
		t.Errorf("one allocation per call counted as %v", n)
	}
	if n := Fewest(100, func() {}); n != 0 {
		t.Errorf("no allocation counted as %v", n)
	}
}
