package listener

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

func FuzzParseSockaddr(f *testing.F) {
	in4 := make([]byte, 16)
	binary.LittleEndian.PutUint16(in4, afInet)
	binary.BigEndian.PutUint16(in4[2:], 9080)
	copy(in4[4:], []byte{10, 0, 0, 7})
	in6 := make([]byte, 28)
	binary.LittleEndian.PutUint16(in6, afInet6)
	binary.BigEndian.PutUint16(in6[2:], 443)
	in6[23] = 1
	f.Add(in4)
	f.Add(in6)
	f.Add([]byte{})
	f.Add([]byte{2, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ap, err := parseSockaddr(b)
		if err != nil {
			return
		}
		if !ap.IsValid() {
			t.Fatalf("no error but invalid address from %x", b)
		}
		if binary.BigEndian.Uint16(b[2:4]) != ap.Port() {
			t.Fatalf("port %d from %x", ap.Port(), b)
		}
	})
}

func TestParseSockaddr(t *testing.T) {
	in4 := []byte{2, 0, 0x23, 0x78, 10, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0}
	if ap, err := parseSockaddr(in4); err != nil || ap.String() != "10.0.0.7:9080" {
		t.Errorf("sockaddr_in: %v %v", ap, err)
	}
	in6 := make([]byte, 28)
	in6[0] = 10
	in6[2], in6[3] = 0x01, 0xbb
	copy(in6[8:24], []byte{0x20, 0x01, 0x0d, 0xb8, 15: 1})
	if ap, err := parseSockaddr(in6); err != nil || ap.String() != "[2001:db8::1]:443" {
		t.Errorf("sockaddr_in6: %v %v", ap, err)
	}
	mapped := make([]byte, 28)
	mapped[0] = 10
	copy(mapped[8:24], []byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 1})
	if ap, err := parseSockaddr(mapped); err != nil || ap.Addr().String() != "192.0.2.1" {
		t.Errorf("v4-mapped sockaddr_in6: %v %v", ap, err)
	}
	for _, bad := range [][]byte{nil, {2}, {2, 0, 1, 2}, {10, 0, 1, 2, 3}, {99, 0, 1, 2, 3, 4, 5, 6}} {
		if _, err := parseSockaddr(bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

func TestClassifyHTTP(t *testing.T) {
	for _, tc := range []struct {
		in    string
		proto string
		more  bool
	}{
		{"", "", true},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2c", false},
		{"PRI * HTTP/2.0\r\n", "", true},
		{"GET / HTTP/1.1\r\nHost: a\r\n", "http/1.1", false},
		{"GET /x HTTP/1.0\r\n", "http/1.0", false},
		{"POST http://a.b/c?d HTTP/1.1\n", "http/1.1", false},
		{"GET / HTTP/1.", "", true},
		{"GET /", "", true},
		{"GET", "", true},
		{"GET / HTTP/2.0\r\n", "", false},
		{"\x16\x03\x01\x02\x00", "", false},
		{"SSH-2.0-OpenSSH_9.6\r\n", "", false},
		{"GET  / HTTP/1.1\r\n", "", false},
		{" GET / HTTP/1.1\r\n", "", false},
		{"GET / HTTP/1.1x\r\n", "", false},
	} {
		proto, more := classifyHTTP([]byte(tc.in))
		if proto != tc.proto || more != tc.more {
			t.Errorf("classifyHTTP(%q) = %q, %v; want %q, %v", tc.in, proto, more, tc.proto, tc.more)
		}
	}
}

func FuzzClassifyHTTP(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\n", h2Preface, "PRI * HTTP/2", "\x16\x03\x01", "OPTIONS * HTTP/1.0\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		proto, more := classifyHTTP(b)
		if more && proto != "" {
			t.Fatalf("%q: both a verdict %q and a request for more", b, proto)
		}
		switch proto {
		case "", "http/1.1", "http/1.0":
		case "h2c":
			if !bytes.HasPrefix(b, []byte(h2Preface)) {
				t.Fatalf("%q: h2c without the preface", b)
			}
		default:
			t.Fatalf("%q: unknown verdict %q", b, proto)
		}
		if proto != "" {
			// A verdict never changes with more bytes.
			if p2, m2 := classifyHTTP(append(append([]byte(nil), b...), "trailing"...)); p2 != proto || m2 {
				t.Fatalf("%q: verdict %q changed to %q,%v with more bytes", b, proto, p2, m2)
			}
		}
	})
}

// TestOriginalDstNotRedirected: on a connection iptables did not touch,
// SO_ORIGINAL_DST yields an error or the local address, both read as
// "not redirected" by the listener.
func TestOriginalDstNotRedirected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dst, err := originalDst(s.(*net.TCPConn))
	if err == nil && dst != s.LocalAddr().(*net.TCPAddr).AddrPort() {
		t.Errorf("original destination %s of a direct connection to %s", dst, s.LocalAddr())
	}
}
