// Package h1client is a synchronous HTTP/1.1 client for the proxy's
// upstream requests: an [http.RoundTripper] whose RoundTrip writes the
// request and reads the response head on the calling goroutine, over a
// pooled connection, and whose response body reads straight from that
// connection's buffered reader.
//
// # Why not net/http's Transport
//
// http.Transport gives every connection a read loop and a write loop
// goroutine. Each request is handed to the write loop and its response is
// handed back from the read loop: two goroutine hand-offs per request,
// which profiling of the proxy showed as a fifth of its CPU in the
// scheduler, plus the allocations of the channels, the request wrappers and
// the body signalling. No maintained library offers a blocking HTTP/1.1
// client with net/http's types, so this package implements the subset of
// HTTP/1.1 the proxy uses, by hand.
//
// # Concurrency
//
// A connection is owned by one request at a time. A request without a body
// (the common GET) is written and its response head read on the caller's
// goroutine; nothing else runs. A request with a body starts one goroutine
// per request that copies the body to the connection while the caller reads
// the response, so an upstream that answers before it has read the upload
// (413, 401, an early 200) cannot deadlock the exchange. The body goroutine
// ends when the body is sent, when a write fails or when the request body's
// Read returns; it always closes the request body.
//
// The connection goes back to the idle pool when the response body has
// been read to EOF (or drained on Close) with no error, neither side asked
// for Connection: close and the request body was sent completely.
//
// Cancellation uses [context.AfterFunc]: when the request's context is done
// the connection is closed, which unblocks whatever read or write is in
// progress, and the error returned is the context's.
//
// # Differences from http.Transport
//
//   - Only plain HTTP/1.1 to req.URL.Host; no TLS, proxies, HTTP/2,
//     CONNECT, alternative protocols or Accept-Encoding/gzip handling. No
//     User-Agent is added.
//   - Request headers are written as given (map order; values of one key in
//     order), without sorting. Host, Content-Length, Transfer-Encoding and
//     Trailer in req.Header are ignored: framing comes from ContentLength.
//   - req.ContentLength 0 means an empty body even when req.Body is not nil
//     (net/http would treat that as unknown length and probe the body).
//     Content-Length: 0 is sent for POST, PUT and PATCH, as net/http does.
//     A body longer than a positive ContentLength is truncated to it, not
//     reported as an error.
//   - Expect: 100-continue is forwarded but not waited on: the body is
//     sent right away (RFC 9110 §10.1.1 permits this). Interim 1xx
//     responses are skipped (at most 5); 101 is returned with a Body that
//     is the connection (an io.ReadWriteCloser), as net/http does.
//   - There is no background reader on idle connections. An upstream that
//     closed an idle connection is noticed when it is used: a request
//     without a body is then retried once on a fresh connection. Before a
//     request with a body is written to a reused connection, a
//     non-blocking MSG_PEEK on the socket checks that the upstream has not
//     closed it (for connections that are sockets, on Unix).
//   - The response parser is stricter than net/http's: it accepts only
//     HTTP/1.0 and HTTP/1.1 status lines with a single space and a
//     three-digit code from 100, and rejects obs-fold continuation lines,
//     whitespace before a field's colon, empty field names, Content-Length
//     together with Transfer-Encoding, Transfer-Encoding on an HTTP/1.0
//     response, and chunk sizes beyond int64. net/http accepts (and
//     repairs) these; for a proxy they signal a broken or hostile upstream.
//   - Errors after the connection was obtained and before a response head
//     was read wrap [ErrNoResponse]; unparsable responses wrap
//     [ErrMalformedResponse]. Dial errors are returned as Dial returned them.
package h1client
