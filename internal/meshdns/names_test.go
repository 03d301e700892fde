package meshdns

import (
	"testing"

	"github.com/miekg/dns"
	"golang.org/x/net/dns/dnsmessage"
)

// The Table reads names as miekg/dns read them when the server used it.
func TestNamesAsMiekg(t *testing.T) {
	t.Parallel()
	long63 := "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"
	for _, n := range []string{
		"", ".", "a", "a.", "A.B.c", "Greeting.Demo.Local.", "a..b", ".a", "..", "a.b..",
		"a\\.b.", "a\\.", "a\\\\.", "a\\\\\\.", "a\\", "\\065bc.", "a\\0", "a\\01.", "a b.c", "café.local", "_svc._tcp.x",
		long63 + ".x", long63 + "4.x",
		long63 + "." + long63 + "." + long63 + "." + "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghi.",  // 253 + root: 254 wire bytes
		long63 + "." + long63 + "." + long63 + "." + "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij.", // 255 wire bytes
	} {
		if got, want := canonicalName(n), dns.CanonicalName(n); got != want {
			t.Errorf("canonicalName(%q) = %q, miekg/dns %q", n, got, want)
		}
		if got, want := isFqdn(n), dns.IsFqdn(n); got != want {
			t.Errorf("isFqdn(%q) = %v, miekg/dns %v", n, got, want)
		}
		fq := canonicalName(n)
		if _, want := dns.IsDomainName(fq); isDomainName(fq) != want {
			t.Errorf("isDomainName(%q) = %v, miekg/dns %v", fq, !want, want)
		}
	}
}

func TestPresentationAsMiekg(t *testing.T) {
	t.Parallel()
	for _, wire := range [][]byte{
		{0},
		{1, 'a', 0},
		{3, 'A', 'b', 'C', 4, 't', 'e', 's', 't', 0},
		{5, 'a', ' ', '"', ';', '\\', 3, '@', '(', ')', 0},
		{3, 0, 0x7f, 0xff, 2, '\'', '~', 0},
	} {
		checkPresentation(t, wire)
	}
}

// checkPresentation compares presentation with miekg/dns's reading of
// the wire name at the start of wire, when dnsmessage decodes it.
func checkPresentation(t *testing.T, wire []byte) {
	t.Helper()
	// A question naming the name, so that dnsmessage decodes it.
	msg := append(make([]byte, headerSize), wire...)
	msg[5] = 1
	msg = append(msg, 0, 1, 0, 1)
	var p dnsmessage.Parser
	if _, err := p.Start(msg); err != nil {
		t.Fatal(err)
	}
	q, err := p.Question()
	if err != nil {
		return
	}
	want, _, err := dns.UnpackDomainName(msg, headerSize)
	if err != nil {
		t.Fatalf("%x: dnsmessage decodes %q, miekg/dns: %v", wire, q.Name, err)
	}
	if got := presentation(q.Name); got != want {
		t.Fatalf("%x: presentation %q, miekg/dns %q", wire, got, want)
	}
}
