package h1server

import (
	"bytes"
	"net/http"
	"net/url"

	"github.com/meshlens/meshlens/internal/proxy/codec/h1lex"
)

// A request head is parsed here, from the bytes buffered, when it is the
// common kind: a method and an origin-form target of plain bytes (or an
// absolute-form one, "http://" and a plain authority before it),
// HTTP/1.1 or HTTP/1.0, field lines ending in CRLF with valid names and
// values and no folding, at most one Host field, and no body (neither
// Content-Length nor Transfer-Encoding). Every other head goes to
// http.ReadRequest, which accepts or refuses it as before. For the heads
// taken here the request is the one http.ReadRequest returns
// (FuzzParseHead compares them field by field), built with a third of
// its allocations: one for the request and its URL, one for the target,
// one for the header map and one for its value slices, and one per
// uncommon name or value.

// parsedRequest holds a request and its URL, allocated together.
type parsedRequest struct {
	req http.Request
	url url.URL
}

// maxHeadFields bounds the field lines of a head taken here; a head with
// more goes to http.ReadRequest.
const maxHeadFields = 48

// parseHead parses the request head at the start of b when it is whole
// there and of the common kind. n is its length; host is the Host
// field's value and hosts how many Host fields there were (0 or 1). b
// is not changed.
func parseHead(b []byte) (req *http.Request, n int, host string, hosts int, ok bool) {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		return nil, 0, "", 0, false
	}
	n = end + 4
	i := bytes.Index(b, crlf)

	// The request line: method SP target SP version.
	line := b[:i]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 || !h1lex.ValidTokenBytes(line[:sp1]) {
		return nil, 0, "", 0, false
	}
	method := line[:sp1]
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 < 0 {
		return nil, 0, "", 0, false
	}
	sp2 += sp1 + 1
	target, version := line[sp1+1:sp2], line[sp2+1:]
	var minor int
	switch string(version) {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return nil, 0, "", 0, false
	}
	if string(method) == http.MethodConnect {
		return nil, 0, "", 0, false // the server has its own rules for it
	}
	// The target is in origin form ("/path?query"), or in absolute form
	// with a plain authority ("http://host:port/path?query", what a
	// client sends to a proxy it was told to use, as the sidecar's
	// egress listener is).
	pathStart := 0
	if bytes.HasPrefix(target, httpScheme) {
		slash := bytes.IndexByte(target[len(httpScheme):], '/')
		if slash < 0 || !plainAuthority(target[len(httpScheme):len(httpScheme)+slash]) {
			return nil, 0, "", 0, false
		}
		pathStart = len(httpScheme) + slash
	}
	pathEnd := bytes.IndexByte(target[pathStart:], '?')
	if pathEnd < 0 {
		pathEnd = len(target)
	} else {
		pathEnd += pathStart
	}
	if !h1lex.PlainPath(target[pathStart:pathEnd]) || !plainQuery(target[pathEnd:]) {
		return nil, 0, "", 0, false
	}

	// The field lines, checked and located before anything is
	// allocated: name and value offsets in b.
	type span struct{ at, colon, vs, ve int } // a line's start, its colon and value in b
	var spans [maxHeadFields]span
	fields, hostAt := 0, -1
	for at := i + 2; at < end+2; {
		i := bytes.Index(b[at:], crlf)
		line := b[at : at+i]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, 0, "", 0, false // no name, or a folded line
		}
		name, value := line[:colon], h1lex.TrimOWSBytes(line[colon+1:])
		if !h1lex.ValidTokenBytes(name) || !h1lex.ValidValueBytes(value) {
			return nil, 0, "", 0, false
		}
		vs := at + colon + 1
		for b[vs] == ' ' || b[vs] == '\t' {
			vs++
		}
		sp := span{at, at + colon, vs, vs + len(value)}
		switch {
		case h1lex.EqualFold(name, "host"):
			if hosts++; hosts > 1 {
				return nil, 0, "", 0, false
			}
			hostAt = at
			spans[len(spans)-1] = sp // kept apart: not a header field
		case h1lex.EqualFold(name, "content-length"), h1lex.EqualFold(name, "transfer-encoding"):
			return nil, 0, "", 0, false // a body: net/http frames it
		case colon > 64:
			return nil, 0, "", 0, false // canonicalised in a 64-byte array below
		default:
			if fields == len(spans)-1 {
				return nil, 0, "", 0, false
			}
			spans[fields] = sp
			fields++
		}
		at += i + 2
	}

	// One string holds the target and every value.
	head := string(b[:end])
	if hostAt >= 0 {
		hs := spans[len(spans)-1]
		host = head[hs.vs:hs.ve]
	}
	h := make(http.Header, fields)
	strs := make([]string, fields)
	var scratch [64]byte
	for _, f := range spans[:fields] {
		// Canonicalised in a copy: b stays as it came.
		key := h1lex.CanonicalKey(append(scratch[:0], b[f.at:f.colon]...))
		v := head[f.vs:f.ve]
		if vv, ok := h[key]; ok {
			h[key] = append(vv, v)
		} else {
			vv, strs = strs[:1:1], strs[1:]
			vv[0] = v
			h[key] = vv
		}
	}

	p := &parsedRequest{}
	uri := head[sp1+1 : sp2]
	p.url.Path = uri[pathStart:pathEnd]
	if q := uri[pathEnd:]; q == "?" {
		p.url.ForceQuery = true
	} else if q != "" {
		p.url.RawQuery = q[1:]
	}
	r := &p.req
	r.Method = methodString(method)
	r.URL = &p.url
	r.Proto = "HTTP/1.0"
	if minor == 1 {
		r.Proto = "HTTP/1.1"
	}
	r.ProtoMajor, r.ProtoMinor = 1, minor
	r.Header = h
	r.Host = host
	if pathStart > 0 {
		// As net/http: the target's authority is the request's host,
		// whatever the Host field says (RFC 9112 3.2.2).
		p.url.Scheme = "http"
		p.url.Host = uri[len(httpScheme):pathStart]
		r.Host = p.url.Host
	}
	r.RequestURI = uri
	r.Body = http.NoBody
	// As net/http: Pragma: no-cache stands for Cache-Control: no-cache,
	// and the Connection field says whether the connection ends after
	// the response.
	if pv := h["Pragma"]; len(pv) > 0 && pv[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	conn := h["Connection"]
	r.Close = h1lex.HasToken(conn, "close") || minor == 0 && !h1lex.HasToken(conn, "keep-alive")
	return r, n, host, hosts, true
}

var (
	crlf       = []byte("\r\n")
	crlfcrlf   = []byte("\r\n\r\n")
	httpScheme = []byte("http://")
)

// plainAuthority reports whether a is a host name or IPv4 address of
// letters, digits, dots and hyphens, with an optional port of one to
// five digits: an authority net/url keeps as it is in URL.Host. Other
// authorities (user info, IPv6 literals, escapes) go to net/http.
func plainAuthority(a []byte) bool {
	host, port := a, []byte(nil)
	if i := bytes.IndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i+1:]
		if len(port) == 0 || len(port) > 5 {
			return false
		}
	}
	if len(host) == 0 {
		return false
	}
	for _, c := range host {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// plainQuery reports whether q is empty or a '?' and a query that
// net/url keeps as it is in RawQuery: visible ASCII.
func plainQuery(q []byte) bool {
	for _, c := range q {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// methodString returns the method, without allocating for the common
// ones.
func methodString(m []byte) string {
	if s, ok := commonMethods[string(m)]; ok {
		return s
	}
	return string(m)
}

var commonMethods = h1lex.InternTable(http.MethodGet, http.MethodPost, http.MethodPut,
	http.MethodDelete, http.MethodHead, http.MethodOptions, http.MethodPatch)
