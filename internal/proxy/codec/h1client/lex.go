package h1client

import "strconv"

// canonicalKey canonicalises a valid field name in place (it is in br's
// buffer and already consumed) and returns it as a string, without
// allocating for common names.
func canonicalKey(name []byte) string {
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

func internTable(ss ...string) map[string]string {
	m := make(map[string]string, len(ss))
	for _, s := range ss {
		m[s] = s
	}
	return m
}

var commonKeys = internTable(
	"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
	"Age", "Alt-Svc", "Cache-Control", "Connection", "Content-Disposition", "Content-Encoding",
	"Content-Language", "Content-Length", "Content-Range", "Content-Security-Policy", "Content-Type",
	"Date", "Etag", "Expires", "Grpc-Message", "Grpc-Status", "Keep-Alive", "Last-Modified", "Link",
	"Location", "Pragma", "Retry-After", "Server", "Set-Cookie", "Strict-Transport-Security",
	"Trailer", "Transfer-Encoding", "Vary", "Via", "Www-Authenticate", "X-Content-Type-Options",
	"X-Envoy-Upstream-Service-Time", "X-Frame-Options", "X-Request-Id", "X-Xss-Protection",
)

var commonValues = internTable(
	"text/plain; charset=utf-8", "text/html; charset=utf-8", "application/json",
	"application/json; charset=utf-8", "application/octet-stream", "application/grpc",
	"text/plain", "text/html", "gzip", "br", "close", "keep-alive", "no-cache", "bytes",
	"nosniff", "Accept-Encoding", "0",
)

var commonStatus = internTable(
	"200 OK", "201 Created", "202 Accepted", "204 No Content", "206 Partial Content",
	"301 Moved Permanently", "302 Found", "304 Not Modified", "400 Bad Request",
	"401 Unauthorized", "403 Forbidden", "404 Not Found", "500 Internal Server Error",
	"502 Bad Gateway", "503 Service Unavailable", "504 Gateway Timeout",
)

// tokenTable marks the tchar bytes of RFC 9110 §5.6.2.
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

func validToken(s string) bool {
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

func validTokenBytes(s []byte) bool {
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

// validValueByte is net/http's rule for field values: visible ASCII, SP,
// HTAB and obs-text; no other control bytes (NUL, CR, LF) and no DEL.
func validValueByte(c byte) bool {
	return c >= 0x20 && c != 0x7f || c == '\t'
}

func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if !validValueByte(s[i]) {
			return false
		}
	}
	return true
}

func validValueBytes(s []byte) bool {
	for _, c := range s {
		if !validValueByte(c) {
			return false
		}
	}
	return true
}

// validTarget rejects what would break the request line: controls, SP
// and DEL.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts the bytes of a reg-name, an IP literal in brackets
// and a port, like net/http's check of the Host header.
func validHost(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '"', '<', '>', '\\', '^', '`', '{', '|', '}', '/', '?', '#':
			return false
		}
	}
	return true
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func trimOWSBytes(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// asciiEqualFold reports whether b equals the lower-case ASCII s,
// ignoring case.
func asciiEqualFold[T string | []byte](b T, s string) bool {
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

// hasToken reports whether a comma-separated field value list contains
// tok (lower case), ignoring case.
func hasToken(vv []string, tok string) bool {
	for _, v := range vv {
		for len(v) > 0 {
			var t string
			if i := indexByte(v, ','); i >= 0 {
				t, v = v[:i], v[i+1:]
			} else {
				t, v = v, ""
			}
			if asciiEqualFold(trimOWS(t), tok) {
				return true
			}
		}
	}
	return false
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func quote(s string) string { return strconv.Quote(s) }
