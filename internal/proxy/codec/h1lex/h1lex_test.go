package h1lex

import (
	"net/textproto"
	"net/url"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// FuzzCanonicalKey: a field name valid for net/http is canonicalised as
// net/http does it, and the token and value rules agree with net/http's.
func FuzzCanonicalKey(f *testing.F) {
	for _, s := range []string{"content-type", "X-B3-TRACEID", "host", "a-b-c", "te", "x", "Www-Authenticate", "ünï", "a b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidToken(s), httpguts.ValidHeaderFieldName(s); got != want {
			t.Fatalf("ValidToken(%q) = %v, net/http says %v", s, got, want)
		}
		if got, want := ValidValue(s), httpguts.ValidHeaderFieldValue(s); got != want {
			t.Fatalf("ValidValue(%q) = %v, net/http says %v", s, got, want)
		}
		if !ValidToken(s) {
			return
		}
		if got, want := CanonicalKey([]byte(s)), textproto.CanonicalMIMEHeaderKey(s); got != want {
			t.Fatalf("CanonicalKey(%q) = %q, want %q", s, got, want)
		}
	})
}

// TestCommonNamesDoNotAllocate: the names and values of a typical mesh
// call are interned.
func TestCommonNamesDoNotAllocate(t *testing.T) {
	names := [][]byte{[]byte("host"), []byte("user-agent"), []byte("traceparent"), []byte("x-request-id"), []byte("content-type")}
	value := []byte("application/json")
	allocs := testing.AllocsPerRun(100, func() {
		for _, n := range names {
			_ = CanonicalKey(n)
		}
		_ = Value(value)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations for common names and values, want none", allocs)
	}
}

func TestHasToken(t *testing.T) {
	for _, tc := range []struct {
		vv   []string
		tok  string
		want bool
	}{
		{[]string{"close"}, "close", true},
		{[]string{"keep-alive, Close"}, "close", true},
		{[]string{"x", " upgrade ,close "}, "close", true},
		{[]string{"closed"}, "close", false},
		{nil, "close", false},
	} {
		if got := HasToken(tc.vv, tc.tok); got != tc.want {
			t.Errorf("HasToken(%q, %q) = %v, want %v", tc.vv, tc.tok, got, tc.want)
		}
	}
}

// FuzzPlainPath: a path PlainPath takes as it is is one net/url parses
// to a URL with that Path and nothing else, so skipping the parse changes
// nothing the router or the upstream request sees.
func FuzzPlainPath(f *testing.F) {
	for _, p := range []string{"/", "/svc.Greeter/SayHello", "/a/b?c=d", "/a%20b", "/a b", "/a!b", "/é", "*", "//x/y", "/a:b@c;d=e,f+g$h&i~j"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !PlainPath(p) {
			return
		}
		u, err := url.ParseRequestURI(p)
		if err != nil {
			t.Fatalf("PlainPath(%q), but net/url: %v", p, err)
		}
		if want := (url.URL{Path: p}); *u != want {
			t.Fatalf("PlainPath(%q), but net/url parses %#v", p, *u)
		}
		if got := u.RequestURI(); got != p {
			t.Fatalf("PlainPath(%q) is sent as %q", p, got)
		}
	})
}
