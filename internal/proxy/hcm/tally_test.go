package hcm

import "testing"

// The premature reset check closes a connection as Envoy's
// maybeDrainDueToPrematureResets does: at half of 500 premature streams
// before 500 have ended, at half of all streams after.
func TestStreamTally(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		good int // streams that got their answer first
		// then premature, alternating with good ones when alternate
		alternate bool
		tripsAt   int // the stream that closes the connection; 0: none within 5000
	}{
		{name: "all premature", tripsAt: 250},
		{name: "after 300 answered", good: 300, tripsAt: 600},
		{name: "alternating", alternate: true, tripsAt: 500},
		{name: "all answered", good: 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st streamTally
			got := 0
			for i := 1; i <= 5000 && got == 0; i++ {
				premature := i > tc.good && (!tc.alternate || i%2 == 0)
				if st.end(premature) {
					got = i
				}
			}
			if got != tc.tripsAt {
				t.Errorf("closed at stream %d, want %d", got, tc.tripsAt)
			}
			if st.end(true) {
				t.Error("closed twice")
			}
		})
	}
}
