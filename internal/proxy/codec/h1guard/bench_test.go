package h1guard

import (
	"net"
	"strings"
	"testing"
)

// benchStream is a keep-alive connection's worth of typical requests:
// browser-like GETs, a JSON POST and a chunked upload.
var benchStream = func() []byte {
	getReq := "GET /api/v1/items?page=2 HTTP/1.1\r\nHost: svc.mesh.local\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Encoding: gzip, deflate, br\r\n" +
		"Accept-Language: en-US,en;q=0.9\r\nCookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n" +
		"X-Request-Id: 5f0c6b1e-1d1a-4c4e-9f1e-0a0b0c0d0e0f\r\nConnection: keep-alive\r\n\r\n"
	body := `{"name":"widget","count":3,"tags":["a","b","c"]}`
	postReq := "POST /api/v1/items HTTP/1.1\r\nHost: svc.mesh.local\r\nContent-Type: application/json\r\nContent-Length: " +
		itoa(len(body)) + "\r\nX-Request-Id: 5f0c6b1e-1d1a-4c4e-9f1e-0a0b0c0d0e10\r\n\r\n" + body
	chunkReq := "POST /upload HTTP/1.1\r\nHost: svc.mesh.local\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"400\r\n" + strings.Repeat("x", 0x400) + "\r\n10;ext=1\r\n" + strings.Repeat("y", 16) + "\r\n0\r\n\r\n"
	var b strings.Builder
	for range 8 {
		b.WriteString(getReq)
		b.WriteString(getReq)
		b.WriteString(postReq)
	}
	b.WriteString(chunkReq)
	return []byte(b.String())
}()

// loopConn replays benchStream forever without allocating.
type loopConn struct {
	net.Conn
	off int
}

func (c *loopConn) Read(p []byte) (int, error) {
	n := copy(p, benchStream[c.off:])
	c.off = (c.off + n) % len(benchStream)
	return n, nil
}

// BenchmarkRead measures a 4 KiB Read (net/http's buffer size) through
// the guard, and without it for comparison; bytes/s is request stream
// throughput.
func BenchmarkRead(b *testing.B) {
	for _, bc := range []struct {
		name  string
		guard bool
	}{{"guarded", true}, {"bare", false}} {
		b.Run(bc.name, func(b *testing.B) {
			var c net.Conn = &loopConn{}
			if bc.guard {
				c = NewConn(c, Options{})
			}
			buf := make([]byte, 4096)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			if g, ok := c.(*conn); ok && g.s.st == stDone {
				b.Fatal("the scanner gave up on the benchmark stream")
			}
		})
	}
}

// BenchmarkScanRequest is the per-request cost of the scanner on a
// typical GET head, read whole.
func BenchmarkScanRequest(b *testing.B) {
	head := benchStream[:strings.Index(string(benchStream), "\r\n\r\n")+4]
	var s scanner
	s.init(1 << 20)
	buf := append([]byte(nil), head...)
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		s.scan(buf)
	}
	if s.st != stRequest {
		b.Fatal("unexpected state", s.st)
	}
}
