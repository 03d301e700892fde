package accesslog

import (
	"crypto/tls"
	"net/http"
	"net/netip"
	"time"
)

// Entry is what the formatter knows about one request (or, for a TCP
// proxy, one connection). The proxy fills it as the exchange goes, then
// formats it once at the end; it may pool Entries and reset them with
// *e = Entry{}. The zero value of every field means "unknown", which
// prints as Envoy prints an unset value ("-", or null in JSON), except
// where a field's comment says otherwise.
//
// Header blocks are reached through the Headers interface, not copied,
// so filling an Entry from the proxy's request and response costs no
// allocation.
type Entry struct {
	// Start is when the first byte of the request (TCP: the connection)
	// was received; %START_TIME% prints it in UTC.
	Start time.Time

	// The request's pseudo-headers, answered for %REQ(:METHOD)%,
	// %REQ(:PATH)%, %REQ(:AUTHORITY)% and %REQ(:SCHEME)%. Path is :path as
	// the client sent it, query included, before any rewrite (the
	// rewritten path is what the upstream saw; Envoy logs the original
	// through x-envoy-original-path, which the proxy sets on rewrite).
	Method, Path, Authority, Scheme string

	// Protocol is the downstream protocol as Envoy spells it: "HTTP/1.0",
	// "HTTP/1.1", "HTTP/2" or "HTTP/3" (see ProtocolName); empty for TCP.
	Protocol string
	// UpstreamProtocol is the same for the upstream request.
	UpstreamProtocol string

	// Request and Response are the header blocks; Trailers the response
	// trailers. Any may be nil (no such block: TCP, no response yet).
	Request, Response, Trailers Headers

	// ResponseCode is the status sent downstream; 0 (printed "0", as
	// Envoy does) means no response was started.
	ResponseCode int
	// ResponseCodeDetails says who set the code and why ("via_upstream",
	// "route_not_found", ...), as Envoy's response code details do.
	ResponseCodeDetails string
	// Flags are Envoy's response flags.
	Flags ResponseFlags

	// Body bytes received from and sent to the downstream (TCP: all bytes
	// of the connection). Always printed, 0 included.
	BytesReceived, BytesSent uint64

	// Duration is from Start to the last byte sent downstream; always
	// printed (milliseconds, truncated).
	Duration time.Duration
	// The optional timings, printed in milliseconds; zero means the event
	// did not happen and prints "-" (a measurement that truly came out as
	// zero should be recorded as 1ns). As in Envoy:
	//
	// RequestDuration: from Start to the last byte of the request
	// received from downstream.
	// RequestTxDuration: from Start to the last byte of the request sent
	// upstream.
	// ResponseDuration: from Start to the first byte of the response
	// received from upstream.
	// ResponseTxDuration: from that first upstream byte (not from Start)
	// to the last byte sent downstream.
	RequestDuration, RequestTxDuration, ResponseDuration, ResponseTxDuration time.Duration

	// UpstreamHost is the address the request was sent to, "ip:port" (or
	// "host:port" for a DNS endpoint), as the proxy dialled it.
	UpstreamHost string
	// UpstreamCluster is the cluster's observability name.
	UpstreamCluster string
	// UpstreamLocal is the local address of the upstream connection.
	UpstreamLocal netip.AddrPort
	// UpstreamTransportFailureReason is why the upstream connection
	// failed in its transport (a TLS handshake error); spaces print as
	// "_", as in Envoy.
	UpstreamTransportFailureReason string
	// AttemptCount is how many times the request was tried upstream; 0
	// means never. Always printed.
	AttemptCount uint32

	// DownstreamRemote is the client's address as the proxy believes it;
	// DownstreamDirectRemote the peer of the socket, which differs only
	// when the remote address was inferred (PROXY protocol, XFF); when it
	// is zero, DownstreamRemote is used. DownstreamLocal is the address
	// the client connected to (the original destination when iptables
	// redirected it).
	DownstreamRemote, DownstreamLocal, DownstreamDirectRemote netip.AddrPort

	// RequestedServerName is the TLS SNI of the downstream connection.
	RequestedServerName string
	// RouteName is the name of the matched route.
	RouteName string
	// ConnectionID identifies the downstream connection; always printed.
	ConnectionID uint64
	// DownstreamTLSVersion is "TLSv1.2" or "TLSv1.3" (see TLSVersionName);
	// empty for a plaintext connection.
	DownstreamTLSVersion string
	// DownstreamPeerURISAN is the URI SAN of the client's certificate
	// (its SPIFFE id under the mesh CA); empty without one.
	DownstreamPeerURISAN string

	// TraceID is the request's trace id and SpanID the id of this hop's
	// server span (sampled or not: the ids the request propagated), for
	// %TRACE_ID% and %SPAN_ID% in 32 and 16 lower-case hex digits. Zero
	// means no trace, printed "-" (null in JSON).
	TraceID [16]byte
	SpanID  [8]byte
}

// Headers is a read-only view of one header block, implemented by the
// proxy's request and response wrappers (or HTTPHeader). It is an
// interface, not a map, so the formatter never copies headers and the
// proxy decides how names are looked up.
type Headers interface {
	// Lookup returns the first value of the named header and whether the
	// header is present. Pseudo-headers of the request are answered from
	// the Entry and never asked for, except unusual ones (":protocol").
	Lookup(name HeaderName) (value string, ok bool)
}

// HeaderName is a header name from a format string in the two spellings
// lookups need, both computed once by Parse: Lower as Envoy and HTTP/2
// spell it, Canonical as net/http keys its Header map. Having both ready
// is what makes a lookup allocation-free.
type HeaderName struct {
	Lower     string
	Canonical string
}

// HTTPHeader adapts net/http's header map to Headers. Converting an
// http.Header to HTTPHeader and storing it in an Entry does not allocate.
type HTTPHeader http.Header

// Lookup implements Headers.
func (h HTTPHeader) Lookup(name HeaderName) (string, bool) {
	v := h[name.Canonical]
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// ProtocolName returns Envoy's spelling of an HTTP version (http.Request's
// ProtoMajor and ProtoMinor): net/http says "HTTP/2.0" where Envoy logs
// "HTTP/2". It returns "" for a version Envoy has no name for.
func ProtocolName(major, minor int) string {
	switch {
	case major == 1 && minor == 0:
		return "HTTP/1.0"
	case major == 1 && minor == 1:
		return "HTTP/1.1"
	case major == 2:
		return "HTTP/2"
	case major == 3:
		return "HTTP/3"
	}
	return ""
}

// TLSVersionName returns OpenSSL's name of a TLS version
// (tls.ConnectionState.Version), which is what Envoy logs for
// %DOWNSTREAM_TLS_VERSION%, or "" for an unknown version.
func TLSVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return ""
}
