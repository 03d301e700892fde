package proxy

import (
	"net/http"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A client that opens HTTP/2 streams and resets them at once (rapid
// reset) loses its connection, counted in
// downstream_rq_too_many_premature_resets; a connection whose streams
// complete is kept, however many there are.
func TestHTTP2RapidResetClosesConnection(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fast" {
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	p := startProxy(t, Config{})
	mustApply(t, p, outbound(xCluster("cds_greeting", slow.Addr())).snap(t))
	addr := addrOf(t, p, egressName, 0)

	// Well-behaved: 1000 streams that get their answer.
	good := dialH2(t, addr)
	for i := range 1000 {
		id := uint32(2*i + 1)
		if err := good.request(id, "GET", "greeting.demo.local", true, hpack.HeaderField{Name: ":path", Value: "/fast"}); err != nil {
			t.Fatal(err)
		}
		if st, err := good.response(id); err != nil || st != "200" {
			t.Fatalf("stream %d: %q %v", id, st, err)
		}
	}

	// Rapid reset: HEADERS then RST_STREAM, as fast as the socket takes
	// them, until the proxy closes the connection.
	bad := dialH2(t, addr)
	const pairs = 100_000
	sent := 0
	for ; sent < pairs; sent++ {
		id := uint32(2*sent + 1)
		if err := bad.request(id, "GET", "greeting.demo.local", true); err != nil {
			break
		}
		if err := bad.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
	}
	if sent == pairs {
		t.Fatalf("%d HEADERS+RST_STREAM pairs sent without the connection closing", pairs)
	}
	// Whatever is left to read, the connection ends.
	for {
		if _, err := bad.fr.ReadFrame(); err != nil {
			break
		}
	}
	waitFor(t, "the premature resets to be counted", func() bool {
		return statValue(t, p, "http.egress.downstream_rq_too_many_premature_resets") == 1
	})

	// The well-behaved connection is still served.
	if err := good.request(2001, "GET", "greeting.demo.local", true, hpack.HeaderField{Name: ":path", Value: "/fast"}); err != nil {
		t.Fatal(err)
	}
	if st, err := good.response(2001); err != nil || st != "200" {
		t.Errorf("the well-behaved connection after the attack: %q %v", st, err)
	}
	if n := statValue(t, p, "http.egress.downstream_rq_too_many_premature_resets"); n != 1 {
		t.Errorf("downstream_rq_too_many_premature_resets %d, want 1", n)
	}
}
