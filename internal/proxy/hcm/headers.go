package hcm

import (
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"unsafe"
)

// Request headers as the connection manager edits them before routing:
// hop-by-hop removal, x-forwarded-*, x-request-id, and the read-only
// view route matching uses.

// hopByHop are the headers that describe one connection and must not be
// forwarded (RFC 9110 7.6.1), in canonical form. "TE: trailers" is put
// back on requests: it is end-to-end for gRPC.
var hopByHop = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer", "Te"}

func IsHopByHop(k string) bool {
	for _, h := range hopByHop {
		if k == h {
			return true
		}
	}
	return false
}

// RemoveConnectionTokens deletes the headers a Connection header lists.
func RemoveConnectionTokens(h http.Header, conn []string) {
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
}

// PrepareRequestHeaders edits the downstream request's headers in place
// into the upstream request's (the handler owns them): hop-by-hop headers
// go, x-forwarded-for gains the client address, x-forwarded-proto and
// x-request-id are set when absent, as Envoy does at the edge. Nothing
// else is added: a request without User-Agent goes on without one.
func PrepareRequestHeaders(r *http.Request, scheme string) {
	hdr := r.Header
	if conn, ok := hdr["Connection"]; ok {
		RemoveConnectionTokens(hdr, conn)
	}
	te := hdr["Te"]
	for _, k := range hopByHop {
		delete(hdr, k)
	}
	for _, v := range te {
		if strings.Contains(strings.ToLower(v), "trailers") {
			hdr["Te"] = teTrailers
			break
		}
	}
	// The values added take one allocation between them.
	var add *addedValues
	if ip := remoteIP(r.RemoteAddr); ip != "" {
		add = new(addedValues)
		if prior, ok := hdr["X-Forwarded-For"]; ok && len(prior) > 0 {
			add.xff[0] = strings.Join(prior, ", ") + ", " + ip
		} else {
			add.xff[0] = ip
		}
		hdr["X-Forwarded-For"] = add.xff[:]
	}
	if _, ok := hdr["X-Forwarded-Proto"]; !ok {
		if scheme == "https" {
			hdr["X-Forwarded-Proto"] = schemeHTTPS
		} else {
			hdr["X-Forwarded-Proto"] = schemeHTTP
		}
	}
	if _, ok := hdr["X-Request-Id"]; !ok {
		if add == nil {
			add = new(addedValues)
		}
		add.rid[0] = add.newRequestID()
		hdr["X-Request-Id"] = add.rid[:]
	}
	if _, ok := hdr["User-Agent"]; !ok {
		// Present and empty: net/http's transports (HTTP/1.1 and HTTP/2)
		// then send none of their own (Go-http-client/...).
		hdr["User-Agent"] = nil
	}
}

// remoteIP is the address part of a RemoteAddr, without brackets.
func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return host
}

// addedValues holds the header values PrepareRequestHeaders adds, and
// the bytes of the request id, so that they take one allocation.
type addedValues struct {
	xff, rid [1]string
	id       [36]byte
}

// newRequestID returns a random (version 4) UUID, as Envoy generates for
// x-request-id, in a.id. It uses the runtime's fast per-thread generator:
// request ids need to be unique, not unpredictable.
func (a *addedValues) newRequestID() string {
	const hexd = "0123456789abcdef"
	var u [16]byte
	x, y := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		u[i] = byte(x >> (8 * i))
		u[8+i] = byte(y >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	s := &a.id
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hexd[c>>4], hexd[c&0xf]
		j += 2
	}
	// a.id is written once, here: the string may share its bytes.
	return unsafe.String(&s[0], len(s))
}

// RequestView presents a downstream request to the route table
// (table.Request) without copying it.
type RequestView struct {
	r      *http.Request
	scheme string
	path   string // :path, query included
}

func (v *RequestView) init(r *http.Request, scheme string) {
	v.r = r
	v.scheme = scheme
	if r.URL.Scheme != "" {
		v.scheme = r.URL.Scheme
	}
	v.path = requestPath(r.RequestURI)
}

// requestPath is :path for a request target: origin-form as is, the path
// and query of an absolute-form target ("/" when it has none).
func requestPath(target string) string {
	if target == "" || target[0] == '/' || target == "*" {
		return target
	}
	i := strings.Index(target, "://")
	if i < 0 {
		return target
	}
	rest := target[i+3:]
	j := strings.IndexAny(rest, "/?")
	if j < 0 {
		return "/"
	}
	if rest[j] == '?' {
		return "/" + rest[j:]
	}
	return rest[j:]
}

// Authority implements table.Request.
func (v *RequestView) Authority() string { return v.r.Host }

// Method implements table.Request.
func (v *RequestView) Method() string { return v.r.Method }

// Path implements table.Request: the request's :path, query included.
func (v *RequestView) Path() string { return v.path }

// Scheme implements table.Request.
func (v *RequestView) Scheme() string { return v.scheme }

// Header implements table.Request: name is lower case; pseudo-headers
// and "host" are answered from the request line; several values are
// joined with ",", as Envoy matches them.
func (v *RequestView) Header(name string) (string, bool) {
	switch name {
	case ":authority", "host":
		return v.r.Host, true
	case ":method":
		return v.r.Method, true
	case ":path":
		return v.path, true
	case ":scheme":
		return v.scheme, true
	}
	vv := v.r.Header[canonicalKey(name)]
	switch len(vv) {
	case 0:
		return "", false
	case 1:
		return vv[0], true
	}
	return strings.Join(vv, ","), true
}

// canonicalKeys caches the canonical form of the lower-case header names
// route tables match on, so matching does not allocate.
var canonicalKeys sync.Map

func canonicalKey(name string) string {
	if k, ok := canonicalKeys.Load(name); ok {
		return k.(string)
	}
	k := textproto.CanonicalMIMEHeaderKey(name)
	canonicalKeys.Store(name, k)
	return k
}

var (
	teTrailers  = []string{"trailers"}
	schemeHTTP  = []string{"http"}
	schemeHTTPS = []string{"https"}
)
