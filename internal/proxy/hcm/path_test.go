package hcm

import (
	"strings"
	"testing"
)

func TestRequestPath(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b?c=d":                "/a/b?c=d",
		"*":                       "*",
		"http://h.example:9080/x": "/x",
		"http://h.example?q=1":    "/?q=1",
		"http://h.example":        "/",
		"https://h/a?b#c":         "/a?b#c",
		"":                        "",
	} {
		if got := requestPath(in); got != want {
			t.Errorf("requestPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzRequestPath(f *testing.F) {
	for _, s := range []string{"/a?b", "http://a/b", "http://a", "*", "h2://x?y", "://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		p := requestPath(target)
		if target != "" && target != "*" && !strings.HasPrefix(target, "/") && strings.Contains(target, "://") && !strings.HasPrefix(p, "/") {
			t.Fatalf("requestPath(%q) = %q: an absolute target must give an origin-form path", target, p)
		}
		if !strings.Contains(target, p) && p != "/" && !strings.HasPrefix(p, "/?") {
			t.Fatalf("requestPath(%q) = %q is not part of the target", target, p)
		}
	})
}
