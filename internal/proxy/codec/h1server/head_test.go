package h1server

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"testing"
)

// headSeeds are request heads of the common kind and near misses.
var headSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /svc/x?y=1&z=%20 HTTP/1.1\r\nHost: a:80\r\nUser-Agent: ua\r\nAccept: */*\r\nX-B3-TraceId: 0123\r\ntraceparent: 00-x\r\n\r\n",
	"GET /p? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /p??q HTTP/1.1\r\nhost: a\r\n\r\n",
	"HEAD /p?a#f HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"DELETE /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, close\r\nPragma: no-cache\r\n\r\n",
	"OPTIONS /x HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nCache-Control: max-age=1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nx: 2\r\nX-Empty:\r\nX-Ws: \t v \t\r\n\r\n",
	"GET http://svc.mesh.local:8080/1k?x=1 HTTP/1.1\r\nHost: other\r\nUser-Agent: ua\r\n\r\n",
	"GET http://a/ HTTP/1.0\r\n\r\n",
	"GET http://A-1.b:1/p? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
	"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"GET /a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a:/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a:123456/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a:8x/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://u@a/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://[::1]:80/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http:///b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET HTTP://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET https://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a/b%2F HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
	"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
	"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
}

// FuzzParseHead: a head parseHead takes is one http.ReadRequest takes
// too, with the same request (method, URL, version, header, host,
// length, close) and the same length: the shortcut changes nothing
// the router or the upstream sees.
func FuzzParseHead(f *testing.F) {
	for _, s := range headSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		got, n, host, hosts, ok := parseHead(b)
		if !bytes.Equal(b, orig) {
			t.Fatalf("parseHead changed its input %q to %q", orig, b)
		}
		if !ok {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:n])))
		if err != nil {
			t.Fatalf("parseHead took %q, http.ReadRequest refuses it: %v", b[:n], err)
		}
		if got.Method != want.Method || *got.URL != *want.URL || got.Proto != want.Proto ||
			got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor ||
			got.Host != want.Host || got.RequestURI != want.RequestURI ||
			got.ContentLength != want.ContentLength || got.Close != want.Close ||
			got.Body != want.Body || want.TransferEncoding != nil || want.Trailer != nil {
			t.Fatalf("%q:\nparseHead     %s %#v %s host %q uri %q len %d close %v body %T\nhttp.ReadRequest %s %#v %s host %q uri %q len %d close %v body %T",
				b[:n], got.Method, *got.URL, got.Proto, got.Host, got.RequestURI, got.ContentLength, got.Close, got.Body,
				want.Method, *want.URL, want.Proto, want.Host, want.RequestURI, want.ContentLength, want.Close, want.Body)
		}
		if !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("%q: header %v, http.ReadRequest's %v", b[:n], got.Header, want.Header)
		}
		// The Host fields http.ReadRequest drops, as the server counts them.
		if wantHosts, wantHost := hostFields(b[:n]); hosts != wantHosts || host != string(wantHost) {
			t.Fatalf("%q: %d Host fields (%q), hostFields says %d (%q)", b[:n], hosts, host, wantHosts, wantHost)
		}
	})
}

// TestParseHeadTakesCommonHeads: the heads a mesh sends most are taken
// by the shortcut; the others are left to net/http.
func TestParseHeadTakesCommonHeads(t *testing.T) {
	for i, s := range headSeeds {
		_, _, _, _, ok := parseHead([]byte(s))
		want := i < 12
		if ok != want {
			t.Errorf("parseHead(%q) took it: %v, want %v", s, ok, want)
		}
	}
}

// TestParseHeadAllocations: a typical mesh call's head costs a handful
// of allocations (http.ReadRequest: about twenty).
func TestParseHeadAllocations(t *testing.T) {
	head := []byte("GET /api/items?page=2 HTTP/1.1\r\nHost: items.local:8080\r\nUser-Agent: client/1.0\r\nAccept: application/json\r\n" +
		"X-Request-Id: 7d2c3f0e-1111-2222-3333-444455556666\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n" +
		"X-Forwarded-For: 10.0.0.1\r\n\r\n")
	allocs := testing.AllocsPerRun(200, func() {
		if _, _, _, _, ok := parseHead(head); !ok {
			t.Fatal("not taken")
		}
	})
	if allocs > 8 {
		t.Errorf("%.0f allocations for a mesh call's head, want at most 8", allocs)
	}
	t.Logf("%.0f allocations", allocs)
}
