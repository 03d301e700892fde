package grpctarget

import (
	"testing"

	"github.com/meshlens/meshlens/internal/pingcount"
)

// TestDialSendsNoBandwidthPings shows that a proxy's control-plane
// connection answers data with no PING of its own: with gRPC's default
// windows the same calls do.
func TestDialSendsNoBandwidthPings(t *testing.T) {
	t.Parallel()
	const calls = 20
	if n := pingcount.Calls(t, pingcount.Client, calls, nil, nil); n == 0 {
		t.Fatalf("with gRPC's default windows, %d calls sent no PING: the test no longer shows what Dial's windows turn off", calls)
	}
	_, opts, err := Dial("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if n := pingcount.Calls(t, pingcount.Client, calls, nil, opts); n != 0 {
		t.Errorf("with Dial's options, %d calls sent %d PINGs, want 0", calls, n)
	}
}
