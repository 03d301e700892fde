package meshdns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshlens/meshlens/internal/stats"
)

// fakeUpstream is a resolver on loopback that knows example.test (one A
// record) and big.example.test (enough TXT records to need TCP), and
// answers NXDOMAIN for the rest.
func fakeUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Skipf("tcp port of the fake upstream is taken: %v", err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
		r := new(dns.Msg).SetReply(m)
		switch q := m.Question[0]; {
		case q.Name == "example.test." && q.Qtype == dns.TypeA:
			r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 7)})
		case q.Name == "big.example.test.":
			for i := range 40 {
				r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{fmt.Sprintf("%02d%s", i, strings.Repeat("x", 60))}})
			}
		default:
			r.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(r)
	})
	us := &dns.Server{PacketConn: pc, Handler: h}
	ts := &dns.Server{Listener: ln, Handler: h}
	go us.ActivateAndServe()
	go ts.ActivateAndServe()
	t.Cleanup(func() { us.Shutdown(); ts.Shutdown() })
	return pc.LocalAddr().String()
}

// deadAddr is a loopback UDP and TCP address where nothing answers.
func deadAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

func startServer(t *testing.T, cfg Config, names ...string) (*Server, *stats.Store) {
	t.Helper()
	st, err := stats.NewStore(stats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.Stats = st.Scope("dns.")
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetTable(NewTable(names))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, st
}

func exchange(t *testing.T, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, qtype)
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	if r.Id != m.Id {
		t.Fatalf("reply id %d, query id %d", r.Id, m.Id)
	}
	return r
}

func counter(st *stats.Store, name string) uint64 {
	return st.Scope("dns.").Counter(name).Value()
}

func TestMeshNamesAnsweredOthersForwarded(t *testing.T) {
	t.Parallel()
	up := fakeUpstream(t)
	s, st := startServer(t, Config{Upstreams: []string{up}}, "greeting.demo.local", "Colors.Demo.Local.")
	want, _ := s.Table().Lookup("greeting.demo.local")
	if !VIPRange.Contains(want) {
		t.Fatalf("address %s not in %s", want, VIPRange)
	}
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, s.Addr(), "GREETING.demo.local.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.Authoritative {
			t.Fatalf("%s A greeting: %v", network, r)
		}
		a := r.Answer[0].(*dns.A)
		if got, _ := netip.AddrFromSlice(a.A.To4()); got != want || a.Hdr.Ttl != DefaultTTL {
			t.Fatalf("%s A greeting = %s ttl %d, want %s ttl %d", network, a.A, a.Hdr.Ttl, want, DefaultTTL)
		}
		// A mesh name has no AAAA: an empty success, not the upstream's
		// NXDOMAIN.
		if r := exchange(t, network, s.Addr(), "colors.demo.local.", dns.TypeAAAA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
			t.Fatalf("%s AAAA colors: %v", network, r)
		}
		if r := exchange(t, network, s.Addr(), "example.test.", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
			t.Fatalf("%s A example.test (forwarded): %v", network, r)
		}
		if r := exchange(t, network, s.Addr(), "nothing.test.", dns.TypeA); r.Rcode != dns.RcodeNameError {
			t.Fatalf("%s A nothing.test (forwarded NXDOMAIN): %v", network, r)
		}
	}
	if q, l, f := counter(st, "queries"), counter(st, "local_answers"), counter(st, "forwarded"); q != 8 || l != 4 || f != 4 {
		t.Fatalf("queries %d local_answers %d forwarded %d, want 8, 4, 4", q, l, f)
	}

	// A new table: the name that left is forwarded (NXDOMAIN upstream),
	// the one that stayed keeps its address.
	s.SetTable(NewTable([]string{"greeting.demo.local", "new.demo.local"}))
	if r := exchange(t, "udp", s.Addr(), "colors.demo.local.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Fatalf("a name that left the mesh: %v", r)
	}
	if r := exchange(t, "udp", s.Addr(), "greeting.demo.local.", dns.TypeA); r.Answer[0].(*dns.A).A.String() != want.String() {
		t.Fatalf("greeting's address changed with the table: %v", r)
	}
}

func TestLargeForwardedAnswerIsTruncatedOverUDPAndWholeOverTCP(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{Upstreams: []string{fakeUpstream(t)}})
	r := exchange(t, "udp", s.Addr(), "big.example.test.", dns.TypeTXT)
	r.Compress = true // as it came on the wire
	if !r.Truncated || r.Len() > dns.MinMsgSize {
		t.Fatalf("over UDP without EDNS: truncated %v, %d bytes; want truncated within 512", r.Truncated, r.Len())
	}
	if r := exchange(t, "tcp", s.Addr(), "big.example.test.", dns.TypeTXT); r.Truncated || len(r.Answer) != 40 {
		t.Fatalf("over TCP: truncated %v, %d answers; want all 40", r.Truncated, len(r.Answer))
	}
}

func TestUpstreamDownIsServfailWithinTheTimeout(t *testing.T) {
	t.Parallel()
	s, st := startServer(t, Config{Upstreams: []string{deadAddr(t)}, Timeout: 200 * time.Millisecond}, "greeting.demo.local")
	if r := exchange(t, "udp", s.Addr(), "example.test.", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("upstream down: %v", r)
	}
	if counter(st, "upstream_failures") != 1 {
		t.Fatalf("upstream_failures = %d", counter(st, "upstream_failures"))
	}
	// Mesh names do not need the upstream.
	if r := exchange(t, "udp", s.Addr(), "greeting.demo.local.", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("mesh name with the upstream down: %v", r)
	}
}

func TestMalformedQueries(t *testing.T) {
	t.Parallel()
	s, st := startServer(t, Config{Upstreams: []string{deadAddr(t)}}, "greeting.demo.local")
	query := func(m *dns.Msg) []byte { b, _ := m.Pack(); return b }
	two := new(dns.Msg).SetQuestion("a.test.", dns.TypeA)
	two.Question = append(two.Question, dns.Question{Name: "b.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	notify := new(dns.Msg).SetQuestion("greeting.demo.local.", dns.TypeA)
	notify.Opcode = dns.OpcodeNotify
	resp := new(dns.Msg).SetQuestion("greeting.demo.local.", dns.TypeA)
	resp.Response = true
	tests := []struct {
		name  string
		pkt   []byte
		rcode int // -1: no answer
	}{
		{"short", []byte{1, 2, 3}, -1},
		{"a response", query(resp), -1},
		{"two questions", query(two), dns.RcodeFormatError},
		{"notify", query(notify), dns.RcodeNotImplemented},
		{"truncated question", query(new(dns.Msg).SetQuestion("greeting.demo.local.", dns.TypeA))[:20], dns.RcodeFormatError},
		{"too large", append(query(new(dns.Msg).SetQuestion("greeting.demo.local.", dns.TypeA)), make([]byte, MaxQuerySize)...), dns.RcodeFormatError},
	}
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tt := range tests {
		got := s.answer(context.Background(), tt.pkt, "udp")
		if tt.rcode < 0 {
			if got != nil {
				t.Errorf("%s: answered %x, want silence", tt.name, got)
			}
			continue
		}
		r := new(dns.Msg)
		if err := r.Unpack(got); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if r.Rcode != tt.rcode || !r.Response || r.Id != uint16(tt.pkt[0])<<8|uint16(tt.pkt[1]) {
			t.Errorf("%s: %v, want rcode %s", tt.name, r, dns.RcodeToString[tt.rcode])
		}
	}
	if n := counter(st, "malformed"); n != uint64(len(tests)) {
		t.Fatalf("malformed = %d, want %d", n, len(tests))
	}
	// Over the wire as well: a FORMERR comes back on the socket.
	conn.Write(query(two))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil || r.Rcode != dns.RcodeFormatError {
		t.Fatalf("over UDP: %v %v", r, err)
	}
}

func TestTCPConnectionLimitAndIdleTimeout(t *testing.T) {
	t.Parallel()
	s, st := startServer(t, Config{Upstreams: []string{deadAddr(t)}, MaxTCPConns: 1, TCPIdle: 300 * time.Millisecond}, "greeting.demo.local")
	first, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// Wait until the server holds the first connection, then a second is
	// closed at once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		second, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		second.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = second.Read(make([]byte, 1))
		second.Close()
		if err == nil {
			t.Fatal("read data from a connection over the limit")
		}
		if counter(st, "dropped") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second connection never refused")
		}
	}
	// The first one, silent, is closed after TCPIdle.
	first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := first.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Fatalf("idle connection: %v, want closed by the server", err)
	}
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	os.WriteFile(path, []byte("# written by the host\nsearch demo.local\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\nnameserver 10.0.0.5\noptions ndots:2\n"), 0o644)
	got, err := upstreams(Config{ResolvConf: path})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "10.0.0.2:53,10.0.0.3:53,10.0.0.4:53" {
		t.Fatalf("upstreams %v, want the first three nameservers on port 53", got)
	}
	if got, err := upstreams(Config{ResolvConf: filepath.Join(dir, "missing")}); err != nil || len(got) != 0 {
		t.Fatalf("missing resolv.conf: %v, %v; want none and no error", got, err)
	}
	if _, err := upstreams(Config{Upstreams: []string{"10.0.0.2"}}); err == nil {
		t.Fatal("an upstream without a port was taken")
	}
}

func TestParseUpstreams(t *testing.T) {
	t.Parallel()
	got, err := ParseUpstreams(" 10.0.0.2, [fd00::1]:5353 ,,127.0.0.1:53")
	if err != nil || strings.Join(got, ",") != "10.0.0.2:53,[fd00::1]:5353,127.0.0.1:53" {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"resolver.local", "10.0.0.2:0", "10.0.0.2:99999", "dns.google:53"} {
		if _, err := ParseUpstreams(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTableAddressesAreStableAndDistinct(t *testing.T) {
	t.Parallel()
	var names []string
	for i := range 5000 {
		names = append(names, fmt.Sprintf("svc-%d.demo.local", i))
	}
	tab := NewTable(append(names, "not a name..", ""))
	if tab.Len() != 5000 {
		t.Fatalf("%d names, want 5000 (invalid ones skipped)", tab.Len())
	}
	seen := map[netip.Addr]string{}
	for _, n := range tab.Names() {
		a, _ := tab.Lookup(n)
		if !VIPRange.Contains(a) || a == VIPRange.Addr() || a.As4()[3] == 255 && a.As4()[2] == 255 {
			t.Fatalf("%s -> %s: outside the range's host addresses", n, a)
		}
		if prev, ok := seen[a]; ok {
			t.Fatalf("%s and %s share %s", prev, n, a)
		}
		seen[a] = n
	}
	// The same name gets the same address in another table.
	small := NewTable([]string{"svc-42.demo.local"})
	a1, _ := tab.Lookup("svc-42.demo.local")
	a2, _ := small.Lookup("SVC-42.demo.local.")
	if a1 != a2 {
		t.Fatalf("svc-42 is %s in one table and %s in another", a1, a2)
	}
}

func TestEDNSClientGetsItsBufferSize(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{Upstreams: []string{fakeUpstream(t)}})
	m := new(dns.Msg).SetQuestion("big.example.test.", dns.TypeTXT).SetEdns0(1232, false)
	r, _, err := (&dns.Client{Net: "udp", UDPSize: 1232, Timeout: 10 * time.Second}).Exchange(m, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r.Compress = true
	if !r.Truncated || r.Len() > 1232 || len(r.Answer) <= 6 {
		t.Fatalf("EDNS 1232: truncated %v, %d bytes, %d answers; want truncated within 1232 bytes with more answers than 512 hold", r.Truncated, r.Len(), len(r.Answer))
	}
}

// An upstream's UDP answer with another id is ignored, a late answer to
// an earlier query; trailing bytes after a query are not forwarded.
func TestForwardIgnoresOtherIDsAndTrailingBytes(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 4096)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		got <- n
		q := new(dns.Msg)
		if q.Unpack(buf[:n]) != nil {
			return
		}
		r := new(dns.Msg).SetReply(q)
		r.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 9)}}
		r.Id++
		b, _ := r.Pack()
		pc.WriteTo(b, from)
		r.Id--
		r.Answer[0].(*dns.A).A = net.IPv4(192, 0, 2, 7)
		b, _ = r.Pack()
		pc.WriteTo(b, from)
	}()
	s, _ := startServer(t, Config{Upstreams: []string{pc.LocalAddr().String()}})
	q := new(dns.Msg).SetQuestion("example.test.", dns.TypeA)
	b, _ := q.Pack()
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(append(b, 0xde, 0xad))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil || r.Id != q.Id || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Fatalf("answer %v, %v", r, err)
	}
	if n := <-got; n != len(b) {
		t.Fatalf("upstream got %d bytes, want the query's %d", n, len(b))
	}
}

// Shutting down does not wait for the upstream's timeout.
func TestServeReturnsWhileForwarding(t *testing.T) {
	t.Parallel()
	s, err := Listen(Config{Addr: "127.0.0.1:0", Upstreams: []string{deadAddr(t)}, Timeout: time.Minute, Log: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, _ := new(dns.Msg).SetQuestion("example.test.", dns.TypeA).Pack()
	conn.Write(b)
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still waiting for the upstream")
	}
}
