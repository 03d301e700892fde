package meshdns

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswer feeds arbitrary packets to the server's decoder and answer
// path (mesh names only; no upstream is configured, so a forward fails
// at once): it must never panic, and whatever it answers must be a
// well-formed response to the packet's id.
func FuzzAnswer(f *testing.F) {
	for _, m := range []*dns.Msg{
		new(dns.Msg).SetQuestion("greeting.demo.local.", dns.TypeA),
		new(dns.Msg).SetQuestion("greeting.demo.local.", dns.TypeAAAA),
		new(dns.Msg).SetQuestion("example.test.", dns.TypeTXT),
		new(dns.Msg).SetQuestion("greeting.demo.local.", dns.TypeANY).SetEdns0(4096, true),
	} {
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0x80})
	s := &Server{cfg: Config{TTL: DefaultTTL}, log: discardLogger()}
	s.SetTable(NewTable([]string{"greeting.demo.local"}))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		out := s.answer(context.Background(), pkt, "udp")
		if out == nil {
			return
		}
		r := new(dns.Msg)
		if err := r.Unpack(out); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
		if !r.Response || r.Id != uint16(pkt[0])<<8|uint16(pkt[1]) {
			t.Fatalf("answer %v to packet id %x", r, pkt[:2])
		}
		if len(out) > maxUDPResponse {
			t.Fatalf("UDP answer of %d bytes", len(out))
		}
	})
}

// FuzzParseUpstreams: whatever --dns-upstream holds, the parser returns
// an error or HOST:PORT entries with an IP host.
func FuzzParseUpstreams(f *testing.F) {
	f.Add("10.0.0.2, [fd00::1]:5353")
	f.Add("dns.google:53,,:53")
	f.Fuzz(func(t *testing.T, s string) {
		ups, err := ParseUpstreams(s)
		if err != nil {
			return
		}
		for _, u := range ups {
			host, _, err := net.SplitHostPort(u)
			if err != nil || net.ParseIP(host) == nil {
				t.Fatalf("%q -> %q", s, u)
			}
		}
	})
}
