package meshdns

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// bigAnswer is a response with n TXT answers of about 70 bytes each, an
// NS record in the authority section and, when edns > 0, an OPT record,
// packed by miekg/dns (compressed, as servers send them).
func bigAnswer(n int, edns uint16) *dns.Msg {
	m := new(dns.Msg).SetReply(new(dns.Msg).SetQuestion("big.example.test.", dns.TypeTXT))
	for i := range n {
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: "big.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{fmt.Sprintf("%02d%s", i, strings.Repeat("x", 60))}})
	}
	m.Ns = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60}, Ns: "ns.example.test."}}
	if edns > 0 {
		m.SetEdns0(edns, true)
	}
	m.Compress = true
	return m
}

func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTruncateKeepsWhatMiekgKept(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		n    int
		edns uint16
		size int
	}{
		{40, 0, 512}, {40, 1232, 1232}, {40, 4096, 1232}, {5, 0, 512}, {40, 0, 100}, {60, 4096, 4096}, {6, 0, 512}, {7, 0, 512},
	} {
		name := fmt.Sprintf("%d answers, EDNS %d, size %d", tt.n, tt.edns, tt.size)
		m := bigAnswer(tt.n, tt.edns)
		in := pack(t, m)
		out := truncate(in, tt.size)
		want := m.Copy()
		want.Truncate(tt.size)
		got := new(dns.Msg)
		if err := got.Unpack(out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(out) > max(tt.size, 512) {
			t.Errorf("%s: %d bytes", name, len(out))
		}
		if len(in) <= max(tt.size, 512) && !bytes.Equal(in, out) {
			t.Errorf("%s: a message that fits was changed", name)
		}
		if got.Truncated != want.Truncated || len(got.Answer) != len(want.Answer) || len(got.Ns) != len(want.Ns) || len(got.Extra) != len(want.Extra) {
			t.Errorf("%s: TC %v, %d/%d/%d records; miekg/dns: TC %v, %d/%d/%d", name,
				got.Truncated, len(got.Answer), len(got.Ns), len(got.Extra), want.Truncated, len(want.Answer), len(want.Ns), len(want.Extra))
		}
		if (got.IsEdns0() != nil) != (tt.edns > 0) || tt.edns > 0 && got.IsEdns0().UDPSize() != tt.edns {
			t.Errorf("%s: OPT %v", name, got.IsEdns0())
		}
		if got.Id != m.Id || got.Question[0] != m.Question[0] {
			t.Errorf("%s: header or question changed: %v", name, got)
		}
		for i, rr := range got.Answer {
			if rr.String() != m.Answer[i].String() {
				t.Errorf("%s: answer %d is %v, was %v", name, i, rr, m.Answer[i])
			}
		}
	}
}

func TestTruncateMovesOPTLastAndLeavesTSIG(t *testing.T) {
	t.Parallel()
	// OPT first in the additional section, then glue: the glue that fits
	// is kept only up to the OPT record, which ends the message.
	m := bigAnswer(6, 0)
	m.Extra = []dns.RR{
		&dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232}},
		&dns.A{Hdr: dns.RR_Header{Name: "ns.example.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)},
	}
	in := pack(t, m)
	if len(in) <= 512 {
		t.Fatalf("test message of %d bytes fits already", len(in))
	}
	out := truncate(in, 512)
	got := new(dns.Msg)
	if err := got.Unpack(out); err != nil {
		t.Fatal(err)
	}
	if !got.Truncated || len(out) > 512 || len(got.Extra) != 1 || got.Extra[0].Header().Rrtype != dns.TypeOPT {
		t.Fatalf("TC %v, %d bytes, additionals %v", got.Truncated, len(out), got.Extra)
	}

	m = bigAnswer(40, 0)
	m.SetTsig("key.", dns.HmacSHA256, 300, 0) // unsigned: only its place matters
	in = pack(t, m)
	if out := truncate(in, 512); !bytes.Equal(in, out) {
		t.Fatal("a message with a TSIG record was truncated")
	}
}

func TestLayout(t *testing.T) {
	t.Parallel()
	m := bigAnswer(3, 1232)
	b := pack(t, m)
	l, err := layout(b)
	if err != nil {
		t.Fatal(err)
	}
	if l.an != 3 || l.ns != 1 || l.ar != 1 || len(l.rrs) != 5 || l.end() != len(b) || l.rrs[4].typ != 41 {
		t.Fatalf("layout %+v of a %d-byte message", l, len(b))
	}
	// Trailing bytes are not the message's.
	if l, err := layout(append(b, 1, 2, 3)); err != nil || l.end() != len(b) {
		t.Fatalf("with trailing bytes: %v, %v", l, err)
	}
	for _, cut := range []int{11, 13, 30, len(b) - 1} {
		if _, err := layout(b[:cut]); err == nil {
			t.Errorf("message cut at %d of %d bytes: no error", cut, len(b))
		}
	}
	// A reserved label prefix.
	bad := append([]byte(nil), b[:headerSize]...)
	bad = append(bad, 0x80, 0, 0, 1, 0, 1)
	if _, err := layout(bad); err == nil {
		t.Error("label prefix 0x80 taken")
	}
}
