// Package h1lex holds the lexical rules of HTTP/1.1 heads (RFC 9110,
// RFC 9112) that the proxy's HTTP/1.1 client and server codecs share:
// tokens, field values, optional whitespace, and field names
// canonicalised the way net/http does, common names and values
// without allocating.
package h1lex

import "strings"

// CanonicalKey canonicalises a valid field name in place (the caller's
// buffer, whose bytes it no longer needs) as net/http does ("content-type"
// is "Content-Type") and returns it as a string, without allocating for
// common names.
func CanonicalKey(name []byte) string {
	upper := true
	for i, c := range name {
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		name[i] = c
		upper = c == '-'
	}
	if s, ok := commonKeys[string(name)]; ok {
		return s
	}
	return string(name)
}

func InternTable(ss ...string) map[string]string {
	m := make(map[string]string, len(ss))
	for _, s := range ss {
		m[s] = s
	}
	return m
}

var commonKeys = InternTable(
	"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
	"Age", "Alt-Svc", "Cache-Control", "Connection", "Content-Disposition", "Content-Encoding",
	"Content-Language", "Content-Length", "Content-Range", "Content-Security-Policy", "Content-Type",
	"Date", "Etag", "Expires", "Grpc-Message", "Grpc-Status", "Keep-Alive", "Last-Modified", "Link",
	"Location", "Pragma", "Retry-After", "Server", "Set-Cookie", "Strict-Transport-Security",
	"Trailer", "Transfer-Encoding", "Vary", "Via", "Www-Authenticate", "X-Content-Type-Options",
	"X-Envoy-Upstream-Service-Time", "X-Frame-Options", "X-Request-Id", "X-Xss-Protection",
	// Request fields, and the trace context a mesh call carries.
	"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "B3", "Cookie", "Expect",
	"Host", "If-Modified-Since", "If-None-Match", "Origin", "Referer", "Te", "Traceparent",
	"Tracestate", "Upgrade", "User-Agent", "X-Amzn-Trace-Id", "X-B3-Parentspanid",
	"X-B3-Sampled", "X-B3-Spanid", "X-B3-Traceid", "X-Forwarded-For", "X-Forwarded-Proto",
)

var commonValues = InternTable(
	"text/plain; charset=utf-8", "text/html; charset=utf-8", "application/json",
	"application/json; charset=utf-8", "application/octet-stream", "application/grpc",
	"text/plain", "text/html", "gzip", "br", "close", "keep-alive", "no-cache", "bytes",
	"nosniff", "Accept-Encoding", "0",
)

// tokenTable marks the tchar bytes of RFC 9110 §5.6.2.
// Value returns a field value as a string, without allocating for a
// common one.
func Value(v []byte) string {
	if s, ok := commonValues[string(v)]; ok {
		return s
	}
	return string(v)
}

// TokenByte reports whether c is a tchar of RFC 9110 §5.6.2, the bytes
// of a token (a method, a field name).
func TokenByte(c byte) bool { return tokenTable[c] }

// tokenTable marks the tchar bytes.
var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenTable[s[i]] {
			return false
		}
	}
	return true
}

func ValidTokenBytes(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if !tokenTable[c] {
			return false
		}
	}
	return true
}

// ValidValueByte is net/http's rule for field values: visible ASCII, SP,
// HTAB and obs-text; no other control bytes (NUL, CR, LF) and no DEL.
func ValidValueByte(c byte) bool {
	return c >= 0x20 && c != 0x7f || c == '\t'
}

func ValidValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if !ValidValueByte(s[i]) {
			return false
		}
	}
	return true
}

func ValidValueBytes(s []byte) bool {
	for _, c := range s {
		if !ValidValueByte(c) {
			return false
		}
	}
	return true
}

func TrimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func TrimOWSBytes(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// EqualFold reports whether b equals the lower-case ASCII s,
// ignoring case.
func EqualFold[T string | []byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// HasToken reports whether a comma-separated field value list contains
// tok (lower case), ignoring case.
func HasToken(vv []string, tok string) bool {
	for _, v := range vv {
		for len(v) > 0 {
			var t string
			if i := strings.IndexByte(v, ','); i >= 0 {
				t, v = v[:i], v[i+1:]
			} else {
				t, v = v, ""
			}
			if EqualFold(TrimOWS(t), tok) {
				return true
			}
		}
	}
	return false
}

// PlainPath reports whether path is an origin form that
// url.ParseRequestURI would return as it is, in URL.Path alone: it
// starts with '/' and holds only bytes a path never escapes (letters,
// digits, "-._~$&+,/:;=@"), so no query, no escape and no RawPath. Most
// requests' paths are (gRPC's always); both HTTP servers take them
// without parsing. FuzzPlainPath checks the claim against net/url.
func PlainPath[T string | []byte](path T) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	for i := 0; i < len(path); i++ {
		if !plainPathByte[path[i]] {
			return false
		}
	}
	return true
}

// plainPathByte says which bytes url.URL keeps unescaped in a path.
var plainPathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range []byte("-._~$&+,/:;=@") {
		t[c] = true
	}
	return t
}()
