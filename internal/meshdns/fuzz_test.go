package meshdns

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"unicode"

	"github.com/miekg/dns"
	"golang.org/x/net/dns/dnsmessage"
)

// FuzzAnswer feeds arbitrary packets to the server's decoder
// (decodeQuery, layout) and answer path (mesh names only; no upstream is
// configured, so a forward fails at once): it must never panic, whatever
// it answers must be a well-formed response to the packet's id, and what
// it answers other than FORMERR or NOTIMP must answer a query miekg/dns
// decodes, with its question.
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
		if r.Rcode == dns.RcodeFormatError || r.Rcode == dns.RcodeNotImplemented {
			return
		}
		// An answer: to a query miekg/dns reads the same. dnsmessage
		// checks the data of the record types it knows, miekg/dns of
		// more (a DNSKEY's fixed fields, say); a query whose records
		// only miekg/dns refuses is forwarded as it is, for the upstream
		// to judge, so its question alone is compared.
		m := new(dns.Msg)
		if err := m.Unpack(pkt); err != nil {
			l, lerr := layout(pkt)
			if lerr != nil {
				t.Fatalf("answered rcode %d to a packet without a layout: %v", r.Rcode, lerr)
			}
			head := append([]byte(nil), pkt[:l.qEnd]...)
			clear(head[6:headerSize])
			if qerr := m.Unpack(head); qerr != nil {
				t.Fatalf("answered rcode %d to a query whose question miekg/dns refuses: %v (whole packet: %v)", r.Rcode, qerr, err)
			}
		}
		if len(m.Question) != 1 || len(r.Question) != 1 || r.Question[0] != m.Question[0] || r.Opcode != dns.OpcodeQuery || r.RecursionDesired != m.RecursionDesired {
			t.Fatalf("answer %v to query %v", r, m)
		}
	})
}

// FuzzTruncate feeds arbitrary messages to layout and, when they decode,
// to truncate: the result must decode, keep the id, and fit the size
// unless it is the message unchanged (a TSIG record) or holds no record
// but its questions and OPT.
func FuzzTruncate(f *testing.F) {
	for _, m := range []*dns.Msg{
		new(dns.Msg).SetQuestion("greeting.demo.local.", dns.TypeA).SetEdns0(1232, false),
		bigAnswer(40, 0),
		bigAnswer(12, 4096),
	} {
		b, _ := m.Pack()
		f.Add(b, uint16(512))
	}
	f.Add([]byte{0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 10, 1, 2, 3, 4}, uint16(0))
	f.Fuzz(func(t *testing.T, msg []byte, size uint16) {
		l, err := layout(msg)
		if err == nil && (l.end() > len(msg) || len(l.rrs) != l.an+l.ns+l.ar) {
			t.Fatalf("layout %+v of %d bytes", l, len(msg))
		}
		if !parses(msg) {
			return
		}
		out := truncate(msg, int(size))
		if !parses(out) {
			t.Fatalf("truncate(%x, %d) = %x does not decode", msg, size, out)
		}
		if out[0] != msg[0] || out[1] != msg[1] || out[2]&^0x02 != msg[2]&^0x02 || out[3] != msg[3] {
			t.Fatalf("header %x became %x", msg[:4], out[:4])
		}
		if limit := max(int(size), minUDPSize); len(out) > limit && !bytes.Equal(out, msg) {
			lo, _ := layout(out)
			for _, r := range lo.rrs {
				if r.typ != dnsmessage.TypeOPT {
					t.Fatalf("%d bytes for %d with records kept", len(out), limit)
				}
			}
		}
	})
}

// FuzzParseResolvConf: whatever resolv.conf holds, the reader returns
// fields of its nameserver lines: non-empty, without white space.
func FuzzParseResolvConf(f *testing.F) {
	f.Add("# host\nsearch a.b\nnameserver 10.0.0.2\nnameserver fd00::1 x\noptions ndots:2\n")
	f.Add("nameserver\tfe80::1%eth0\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseResolvConf(strings.NewReader(s))
		if err != nil {
			return // a line over the scanner's limit
		}
		if len(got) > strings.Count(s, "nameserver") {
			t.Fatalf("%q: %d nameservers", s, len(got))
		}
		for _, n := range got {
			if n == "" || strings.ContainsFunc(n, unicode.IsSpace) || !strings.Contains(s, n) {
				t.Fatalf("%q: nameserver %q", s, n)
			}
		}
	})
}

// FuzzPresentation: a wire name dnsmessage decodes reads as miekg/dns
// reads it, so that the Table is looked up with the same string.
func FuzzPresentation(f *testing.F) {
	f.Add([]byte{3, 'A', 'b', 'C', 4, 't', 'e', 's', 't', 0})
	f.Add([]byte{5, 'a', ' ', '"', ';', '\\', 3, 0, 0x7f, 0xff, 0})
	f.Fuzz(func(t *testing.T, wire []byte) {
		checkPresentation(t, wire)
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
