package h1server

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

var (
	fuzzOnce          sync.Once
	fuzzOurs, fuzzRef string
)

// fuzzServers starts, once per process, this server and net/http's with
// the same handler and limits.
func fuzzServers() (string, string) {
	fuzzOnce.Do(func() {
		s := &Server{Handler: http.HandlerFunc(echo), MaxHeaderBytes: 1 << 10}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go s.ServeConn(c)
			}
		}()
		fuzzOurs = ln.Addr().String()
		ref := &http.Server{Handler: http.HandlerFunc(echo), MaxHeaderBytes: 1 << 10}
		rln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		go ref.Serve(rln)
		fuzzRef = rln.Addr().String()
	})
	return fuzzOurs, fuzzRef
}

// FuzzAgainstNetHTTP sends the same bytes to this server and to net/http's
// and requires the same responses: status codes and, for requests the
// handler saw, what it saw.
func FuzzAgainstNetHTTP(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://a.example/x?y HTTP/1.1\r\nHost: b\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("v", 2000) + "\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 8<<10 || strings.Contains(raw, "HTTP/2") || strings.Contains(raw, "PRI") {
			// net/http treats an HTTP/2 preface as an upgrade.
			t.Skip()
		}
		ours, ref := fuzzServers()
		got, want := exchange(t, ours, raw), exchange(t, ref, raw)
		if !sameResponses(got, want) {
			t.Fatalf("input %q\nh1server:\n%s\nnet/http:\n%s", raw, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// sameResponses compares the responses of both servers. A 400 of this
// server may say more than net/http's (the field it refuses): net/http's
// text must be where it starts.
func sameResponses(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] == want[i] {
			continue
		}
		// Whether a refusal's body is cut short by the reset of a
		// connection with unread input is a matter of timing.
		g := strings.TrimSuffix(got[i], " (truncated)")
		w := strings.TrimSuffix(strings.TrimSuffix(want[i], " (truncated)"), `"`)
		if !strings.HasPrefix(w, "400 ") || !strings.HasPrefix(g, w+": ") {
			return false
		}
	}
	return true
}
