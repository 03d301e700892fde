// Package h1guard makes net/http's HTTP/1.1 server refuse requests whose
// body framing is ambiguous, the classic request-smuggling signal: a
// header block that carries both Content-Length and Transfer-Encoding, a
// Transfer-Encoding on an HTTP/1.0 request, or either field hidden in an
// obs-fold continuation line.
//
// net/http follows RFC 9112 §6.3 for such a request: it drops
// Content-Length, decodes the chunked body and serves the request. It also
// deletes Content-Length from the header map before any handler runs, so
// the conflict cannot be seen from a handler. An intermediary in front of
// the proxy may have framed the same bytes by Content-Length; the two then
// disagree about where the next request starts. We answer such a request
// with 400 Bad Request and close the connection instead.
//
// # How
//
// [Listen] wraps a net.Listener (and [NewConn] a single net.Conn) so that
// every Read runs an incremental HTTP/1.1 framing scanner over the bytes
// the server is about to parse. The scanner follows the request line, the
// field lines, the body framing the way net/http will apply it
// (Content-Length, chunked with extensions and trailers, or none), skips
// the body and continues with the next pipelined request. When it finds a
// conflict it overwrites the ':' of the offending field line with a NUL
// byte in the caller's buffer; net/http's header parser rejects that line
// and answers 400 before any handler runs, then closes the connection.
// From then on the scanner is idle.
//
// The scanner works in place on the buffer Read fills: it never delays,
// buffers or reorders bytes and it keeps a few dozen bytes of state per
// connection (a byte-level state machine rather than a line buffer, so a
// header block may be split across any number of reads). It allocates
// nothing per request.
//
// # What it mirrors, and where it gives up
//
// Only inputs net/http accepts need exact framing: whenever net/http
// rejects a request (bad Content-Length, unsupported Transfer-Encoding,
// malformed chunk line, oversized header block) it closes the connection
// after the error response, so nothing the scanner does afterwards can
// reach a handler. The scanner therefore copies net/http's accept rules
// where they decide framing (bare LF line ends in the head, CRLF-only chunk
// lines, at most 16 hex digits per chunk size, the CR/LF bytes net/http
// skips after a POST, equal repeated Content-Length values) and stops
// inspecting, passing the rest of the stream through unchanged, when it
// sees something net/http will refuse or that is not HTTP/1.x at all: an
// HTTP/2 prior-knowledge preface, a TLS record, WebSocket frames, a head
// larger than the server's limit.
//
// After a CONNECT or an Upgrade request the scanner keeps reading the
// following bytes as HTTP/1.1 for as long as they parse as requests. A
// scanner that stopped at such a request could be switched off by any
// client: the proxy answers CONNECT with 405 and most upstreams ignore an
// Upgrade, after which the connection carries ordinary requests again. A
// tunnel that did open carries binary data (WebSocket frames, TLS), whose
// first byte is not a method character, so the scanner stops there.
//
// # TLS
//
// net/http drives the TLS handshake and HTTP/2 only on a *tls.Conn it can
// see. [NewConn] therefore returns a *tls.Conn unchanged until its
// handshake is complete, and also when ALPN selected h2. Terminate TLS
// first (as the proxy's listeners do) and wrap the handshaken connection;
// the wrapper then reports the TLS state through ConnectionState, so
// Request.TLS is still set.
//
// Why not a library: no maintained Go package inspects HTTP/1.1 framing
// below net/http, and net/http offers no hook between parsing and
// handling.
package h1guard
