package h1guard

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
)

// mark is where a case expects the scanner to turn a ':' into NUL.
const mark = "{:}"

type scanCase struct {
	name string
	in   string // the stream; mark stands for the rejected ':'
	why  error  // the expected rejection, or nil
	// stop: the scanner is expected to give up (or to have rejected) by
	// the end of the stream.
	stop bool
	// reqs, when not zero, is the expected number of requests started,
	// the one expected next included.
	reqs uint64
	// maxHeader is Options.MaxHeaderBytes.
	maxHeader int
}

const (
	get  = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	post = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
	// smuggled is what a bad request hides in a body, quoted as data.
	smuggled = "GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
	bad      = "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding" + mark + " chunked\r\n\r\n0\r\n\r\n"
)

// badPlain is bad where the scanner is expected not to look any more.
var badPlain = strings.Replace(bad, mark, ":", 1)

var scanCases = []scanCase{
	{name: "good GET", in: get, reqs: 2},
	{name: "CL then TE", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding" + mark + " chunked\r\n\r\n0\r\n\r\n",
		why: ErrContentLengthAndTransferEncoding, stop: true},
	{name: "TE then CL", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a\r\nContent-Length" + mark + " 5\r\n\r\n0\r\n\r\n",
		why: ErrContentLengthAndTransferEncoding, stop: true},
	{name: "lower case", in: "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding" + mark + "chunked\r\n\r\n",
		why: ErrContentLengthAndTransferEncoding, stop: true},
	{name: "upper case", in: "POST / HTTP/1.1\r\nHOST: a\r\nTRANSFER-ENCODING: CHUNKED\r\nCONTENT-LENGTH" + mark + "5\r\n\r\n",
		why: ErrContentLengthAndTransferEncoding, stop: true},
	{name: "mixed case", in: "POST / HTTP/1.1\r\nHost: a\r\ncOnTeNt-LeNgTh: 5\r\nTrAnSfEr-EnCoDiNg" + mark + " chunked\r\n\r\n",
		why: ErrContentLengthAndTransferEncoding, stop: true},
	{name: "TE gzip, chunked", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding" + mark + " gzip, chunked\r\n\r\n",
		why: ErrContentLengthAndTransferEncoding, stop: true},
	{name: "TE empty", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length" + mark + " 5\r\n\r\n",
		why: ErrContentLengthAndTransferEncoding, stop: true},
	{name: "TE folded value", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length" + mark + " 5\r\n\r\n",
		why: ErrContentLengthAndTransferEncoding, stop: true},
	{name: "TE hidden in fold", in: "POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n Transfer-Encoding" + mark + " chunked\r\nContent-Length: 5\r\n\r\n",
		why: ErrFoldedFramingField, stop: true},
	{name: "CL hidden in fold", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\t content-length \t" + mark + " 5\r\n\r\n",
		why: ErrFoldedFramingField, stop: true},
	{name: "TE on HTTP/1.0", in: "POST / HTTP/1.0\r\nTransfer-Encoding" + mark + " chunked\r\n\r\n0\r\n\r\n",
		why: ErrTransferEncodingHTTP10, stop: true},
	{name: "HTTP/1.0 keep-alive then bad", in: "POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nokPOST / HTTP/1.0\r\nContent-Length: 1\r\nTransfer-Encoding" + mark + " chunked\r\n\r\n",
		why: ErrTransferEncodingHTTP10, stop: true},
	{name: "pipelined, third bad", in: get + post + bad, why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 3},
	{name: "pipelined good", in: get + post + get + post, reqs: 5},
	{name: "body quoting a bad request", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + itoa(len(smuggled)) + "\r\n\r\n" + smuggled + get, reqs: 3},
	{name: "chunked body quoting a bad request",
		in:   "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + hex(len(smuggled)) + "\r\n" + smuggled + "\r\n0\r\n\r\n" + get,
		reqs: 3},
	{name: "chunk extensions and trailers, then bad",
		in: "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;name=val;q=\"a;b\"\r\nhello\r\n" + "A \t\r\n0123456789\r\n" + "0;last\r\nX-Trailer: 1\r\nContent-Length: 3\r\n\r\n" + bad,
		why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "chunked, trailer with bare LF", in: "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nA: b\n\n" + bad,
		why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "large body then bad", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\n" + strings.Repeat(smuggled[:50], 6000) + bad,
		why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "large chunked body then bad", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"493E0\r\n" + strings.Repeat(smuggled[:50], 6000) + "\r\n0\r\n\r\n" + bad,
		why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "bare LF head", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 2\n\nokGET / HTTP/1.1\nTransfer-Encoding: chunked\nContent-Length" + mark + " 1\n\n",
		why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "Expect 100-continue then bad", in: "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello" + bad,
		why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "CRLF after POST body is skipped", in: post + "\r\n\r\n" + bad, why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "CRLF after GET is an error", in: get + "\r\n" + badPlain, stop: true},
	{name: "five CR/LF after POST", in: post + "\r\n\r\n\n" + badPlain, stop: true},
	{name: "folded CL with leading zeros", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 005\r\n\r\nhello" + bad,
		why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "repeated equal CL", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length:  5 \r\n\r\nhello" + bad,
		why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "repeated different CL", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello" + badPlain,
		stop: true},
	{name: "CL with sign", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello" + badPlain, stop: true},
	{name: "CL too large", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", stop: true},
	{name: "CL max", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n" + smuggled},
	{name: "field names that only look alike", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Lengthy: 5\r\nX-Content-Length: 5\r\nX: Transfer-Encoding: chunked\r\nTransfer-Encodings: x\r\nContent-Length: 0\r\n\r\n" + get, reqs: 3},
	{name: "TE alone", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get, reqs: 3},
	{name: "16 hex digits", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000003\r\nabc\r\n0\r\n\r\n" + get, reqs: 3},
	{name: "17 hex digits", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000003\r\nabc\r\n0\r\n\r\n" + badPlain, stop: true},
	{name: "chunk line with bare LF", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + badPlain, stop: true},
	{name: "h2c prior knowledge", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00" + badPlain, stop: true},
	{name: "WebSocket after upgrade", in: "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
		"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58" + badPlain, stop: true},
	{name: "refused upgrade, then bad", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n" + bad,
		why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "refused CONNECT, then bad", in: "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n" + bad,
		why: ErrContentLengthAndTransferEncoding, stop: true, reqs: 2},
	{name: "TLS after CONNECT", in: "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n\x16\x03\x01\x02\x00\x01" + badPlain, stop: true},
	{name: "garbage", in: "\x00\x01\x02 " + badPlain, stop: true},
	{name: "HTTP/0.9 style", in: "GET /\r\n" + badPlain, stop: true},
	{name: "HTTP/1.2 is HTTP/1.1", in: "POST / HTTP/1.2\r\nTransfer-Encoding: chunked\r\nContent-Length" + mark + " 1\r\n\r\n",
		why: ErrContentLengthAndTransferEncoding, stop: true},
	{name: "leading space before first field", in: "GET / HTTP/1.1\r\n Host: a\r\n\r\n" + badPlain, stop: true},
	{name: "head beyond limit", maxHeader: 1,
		in:   "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + strings.Repeat("c", headSlop) + "\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		stop: true},
	{name: "head just within limit", maxHeader: 1,
		in:  "POST / HTTP/1.1\r\nCookie: " + strings.Repeat("c", headSlop+1-len("POST / HTTP/1.1\r\nCookie: \r\nContent-Length: 1\r\nTransfer-Encoding:")) + "\r\nContent-Length: 1\r\nTransfer-Encoding" + mark,
		why: ErrContentLengthAndTransferEncoding, stop: true},
}

func itoa(n int) string { return strconv.Itoa(n) }
func hex(n int) string  { return strconv.FormatInt(int64(n), 16) }

// expand returns the stream and what the scanner should turn it into.
func (c scanCase) expand() (in, want []byte) {
	in = []byte(strings.Replace(c.in, mark, ":", 1))
	want = []byte(strings.Replace(c.in, mark, "\x00", 1))
	return in, want
}

// feedConn is a net.Conn whose reads return data in the given sizes.
type feedConn struct {
	net.Conn // nil: only Read and RemoteAddr are used
	data     []byte
	sizes    func() int
}

func (f *feedConn) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(f.data), max(1, f.sizes()))
	copy(p, f.data[:n])
	f.data = f.data[n:]
	return n, nil
}

func (f *feedConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1} }

// splits are read sizes a stream is cut into.
var splits = map[string]func(*rand.Rand) func() int{
	"one read": func(*rand.Rand) func() int { return func() int { return 1 << 30 } },
	"1 byte":   func(*rand.Rand) func() int { return func() int { return 1 } },
	"random":   func(r *rand.Rand) func() int { return func() int { return 1 + r.IntN(40) } },
	"4 KiB":    func(*rand.Rand) func() int { return func() int { return 4096 } },
}

// readAll reads c through NewConn with reads of the given sizes and
// returns what the server would have seen.
func readAll(t *testing.T, in []byte, maxHeader int, sizes func() int) ([]byte, *conn, []error) {
	t.Helper()
	var errs []error
	fc := &feedConn{data: in, sizes: sizes}
	c := NewConn(fc, Options{MaxHeaderBytes: maxHeader, OnReject: func(got net.Conn, err error) {
		if got == nil {
			t.Error("OnReject got a nil conn")
		}
		errs = append(errs, err)
	}}).(*conn)
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, c, errs
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestScanner(t *testing.T) {
	t.Parallel()
	for _, tc := range scanCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, want := tc.expand()
			for split, mk := range splits {
				out, c, errs := readAll(t, bytes.Clone(in), tc.maxHeader, mk(rand.New(rand.NewPCG(1, 2))))
				if !bytes.Equal(out, want) {
					t.Errorf("%s: output differs from the expected at byte %d", split, firstDiff(out, want))
				}
				switch {
				case tc.why == nil && len(errs) > 0:
					t.Errorf("%s: rejected: %v", split, errs)
				case tc.why != nil && (len(errs) != 1 || !errors.Is(errs[0], tc.why)):
					t.Errorf("%s: rejections %v, want one %v", split, errs, tc.why)
				}
				if stopped := c.s.st == stDone; stopped != tc.stop {
					t.Errorf("%s: stopped = %v, want %v (state %d)", split, stopped, tc.stop, c.s.st)
				}
				if tc.reqs != 0 && c.s.nreq != tc.reqs {
					t.Errorf("%s: %d requests started, want %d", split, c.s.nreq, tc.reqs)
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestRejectErrorNamesRequest(t *testing.T) {
	t.Parallel()
	in, _ := scanCase{in: get + bad}.expand()
	_, _, errs := readAll(t, in, 0, func() int { return 7 })
	if len(errs) != 1 {
		t.Fatalf("rejections: %v", errs)
	}
	if got := errs[0].Error(); !strings.Contains(got, "request 2 from 192.0.2.1:1") {
		t.Errorf("error %q does not name the request and peer", got)
	}
}

// stubListener hands out one connection.
type stubListener struct {
	net.Listener
	c net.Conn
}

func (l *stubListener) Accept() (net.Conn, error) {
	if l.c == nil {
		return nil, net.ErrClosed
	}
	c := l.c
	l.c = nil
	return c, nil
}

func TestListenWrapsAndPassesErrors(t *testing.T) {
	t.Parallel()
	inner := &feedConn{data: []byte(get), sizes: func() int { return 1 }}
	ln := Listen(&stubListener{c: inner}, Options{})
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	nc, ok := c.(interface{ NetConn() net.Conn })
	if !ok || nc.NetConn() != inner {
		t.Fatalf("accepted %T, want a wrapper of the inner conn", c)
	}
	if _, ok := c.(interface {
		ConnectionState() struct{}
	}); ok {
		t.Error("a plaintext conn must not look like TLS")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept error %v, want the inner one", err)
	}
}
