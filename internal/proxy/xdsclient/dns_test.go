package xdsclient

import (
	"net"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"golang.org/x/net/dns/dnsmessage"
)

// serveDNS answers A queries for name with addrs, and anything else with
// no record, on a loopback UDP port of its own; it returns that address.
func serveDNS(t *testing.T, name string, addrs ...[4]byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if q.Type == dnsmessage.TypeA && strings.EqualFold(q.Name.String(), name+".") {
				for _, a := range addrs {
					_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}, dnsmessage.AResource{A: a})
				}
			}
			msg, err := b.Finish()
			if err != nil {
				continue
			}
			_, _ = pc.WriteTo(msg, from)
		}
	}()
	return pc.LocalAddr().String()
}

// TestFailsOverAcrossADNSNamesAddresses: --xds-addr given as one name
// whose DNS answer holds two replicas' addresses (gRPC's DNS resolver,
// pointed here at a DNS server of the test's own through the target's
// authority, as a bare name:port uses the system's): the client holds
// one stream on one of them, and when that replica dies it resubscribes
// on the other with the versions it accepted.
func TestFailsOverAcrossADNSNamesAddresses(t *testing.T) {
	a := newControlPlane(t) // 127.0.0.1:P
	_, port, _ := net.SplitHostPort(a.addr)
	b := &controlPlane{cache: a.cache}
	b.start(t, "127.0.0.2:"+port) // the same port on another address
	dns := serveDNS(t, "cp.mesh.test", [4]byte{127, 0, 0, 1}, [4]byte{127, 0, 0, 2})
	a.set(t, goodView("1", 80, 20))
	h := startClient(t, "dns://"+dns+"/cp.mesh.test:"+port, nil)
	h.next(t)
	on := func(cp *controlPlane) bool { return len(cp.requests(acked(resourcev3.RouteType, "1"))) > 0 }
	eventually(t, "ACKs of version 1", func() bool { return on(a) || on(b) })
	first, second := a, b
	if on(b) {
		first, second = b, a
	}
	if on(second) {
		t.Fatal("the client holds streams on both replicas")
	}
	first.stop()
	got := map[string]string{}
	eventually(t, "the other address of the name to see the resubscriptions", func() bool {
		for _, r := range second.requests(func(s seen) bool { return s.req.GetResponseNonce() == "" }) {
			got[r.req.GetTypeUrl()] = r.req.GetVersionInfo()
		}
		return len(got) == len(subscribed)
	})
	for typ, v := range got {
		if v != "1" {
			t.Errorf("resubscription to %s on the other replica at version %q, want the accepted 1", typ, v)
		}
	}
	a.set(t, goodView("2", 30, 70))
	s := h.next(t)
	if x, y := weights(t, s); s.Versions[resourcev3.RouteType] != "2" || x != 30 || y != 70 {
		t.Fatalf("after failing over: version %s weights %d/%d, want 2 and 30/70", s.Versions[resourcev3.RouteType], x, y)
	}
}
