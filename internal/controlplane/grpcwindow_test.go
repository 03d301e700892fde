package controlplane

import (
	"testing"

	"github.com/meshlens/meshlens/internal/grpctarget"
	"github.com/meshlens/meshlens/internal/pingcount"
)

// TestGRPCServerSendsNoBandwidthPings: the control plane's gRPC server
// answers the requests of proxies (xDS ACKs, span exports) with no PING of
// its own; with gRPC's default windows it does. The client dials as a
// proxy does.
func TestGRPCServerSendsNoBandwidthPings(t *testing.T) {
	t.Parallel()
	const calls = 20
	_, dial, err := grpctarget.Dial("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if n := pingcount.Calls(t, pingcount.Server, calls, nil, dial); n == 0 {
		t.Fatalf("with gRPC's default windows, %d calls drew no PING: the test no longer shows what the server's windows turn off", calls)
	}
	if n := pingcount.Calls(t, pingcount.Server, calls, grpcServerOptions(), dial); n != 0 {
		t.Errorf("with the control plane's options, %d calls drew %d PINGs, want 0", calls, n)
	}
}
