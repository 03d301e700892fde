package h2frame

import (
	"net/http"
	"strings"
)

// commonNames are header names frequent enough (HTTP, gRPC, tracing and
// the proxy's own) to map between their canonical and lower-case forms
// without allocating.
var commonNames = []string{
	"Accept", "Accept-Encoding", "Accept-Language", "Accept-Ranges", "Access-Control-Allow-Origin",
	"Age", "Allow", "Authorization", "Cache-Control", "Content-Disposition", "Content-Encoding",
	"Content-Language", "Content-Length", "Content-Location", "Content-Range", "Content-Security-Policy",
	"Content-Type", "Cookie", "Date", "Etag", "Expires", "Grpc-Accept-Encoding", "Grpc-Encoding",
	"Grpc-Message", "Grpc-Status", "Grpc-Status-Details-Bin", "Grpc-Timeout", "Last-Modified", "Link",
	"Location", "Server", "Set-Cookie", "Strict-Transport-Security", "Te", "Trailer", "Traceparent",
	"Tracestate", "User-Agent", "Vary", "Via", "Www-Authenticate", "X-B3-Parentspanid", "X-B3-Sampled",
	"X-B3-Spanid", "X-B3-Traceid", "X-Envoy-Attempt-Count", "X-Envoy-Expected-Rq-Timeout-Ms",
	"X-Envoy-Upstream-Service-Time", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id", "X-Served-By",
}

var toLower, toCanonical = func() (map[string]string, map[string]string) {
	lo, ca := make(map[string]string, len(commonNames)), make(map[string]string, len(commonNames))
	for _, n := range commonNames {
		l := strings.ToLower(n)
		lo[n], ca[l] = l, n
	}
	return lo, ca
}()

// LowerName is a header name in HTTP/2's lower case (RFC 9113 8.2.1).
// It allocates only for an uncommon name with upper-case letters.
func LowerName(k string) string {
	if l, ok := toLower[k]; ok {
		return l
	}
	return strings.ToLower(k) // k itself when it has no upper case
}

// CanonicalName is a field name in net/http's canonical form
// ("content-type" is "Content-Type"). It allocates only for an uncommon
// name not already in that form.
func CanonicalName(n string) string {
	if c, ok := toCanonical[n]; ok {
		return c
	}
	return http.CanonicalHeaderKey(n)
}

// AddValue adds v under the canonical name k to h, a header built from
// one header block: a name's first value goes in vals[n], one backing
// array for the block's values (most names come once), later ones are
// appended. It returns the next free index of vals, which must have room
// for every field of the block.
func AddValue(h http.Header, vals []string, n int, k, v string) int {
	if vv, ok := h[k]; ok {
		h[k] = append(vv, v)
		return n
	}
	vals[n] = v
	h[k] = vals[n : n+1 : n+1]
	return n + 1
}
