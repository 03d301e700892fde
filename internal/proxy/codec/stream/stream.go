// Package stream is the interface between the proxy's HTTP codecs and the
// rest of the request path: a downstream codec hands the HTTP connection
// manager (package hcm) each request as a Downstream, and the router
// (package filters/router) sends each upstream attempt through an
// Upstream. The connection manager, the HTTP filters and the router use
// only these interfaces, so a codec (h1server, h1client, net/http's
// HTTP/2 through package nethttp, or an HTTP/2 codec of the proxy's own)
// is replaced without touching them.
//
// # Heads and bodies
//
// A head is carried in net/http's plain data types, not in its server or
// client machinery: a request head is an *http.Request (Method, URL,
// Host, Header, Proto, ContentLength, TLS, RemoteAddr, Body), a response
// head an *http.Response or a status and an http.Header, trailers an
// http.Header. Every codec of the proxy already builds these values, the
// filters and the route table read them, and so no head is converted (or
// allocated twice) between a codec and the filters. Header names are in
// canonical form (textproto.CanonicalMIMEHeaderKey); HTTP/2 pseudo-headers
// are not in Header: :method, :path, :authority and :scheme are Method,
// RequestURI (the target as received; URL is its parse), Host and the
// URL's scheme (empty: the connection's). A downstream request also has
// ProtoMajor/ProtoMinor (1.0, 1.1 or 2.0), ContentLength (-1: unknown,
// the body streams), TLS (the handshake's state when the codec itself
// terminated TLS, else nil), RemoteAddr (the peer) and a Body that is
// never nil (http.NoBody when there is none).
//
// # A downstream stream, call by call
//
// The codec reads a request head, makes the Downstream and calls
// Handler.ServeStream on a goroutine that it owns for the stream (its
// connection's for HTTP/1, one per stream for HTTP/2). The handler:
//
//  1. reads the head, Request(), and the connection it came on, Conn();
//  2. reads the body, Request().Body, possibly from another goroutine
//     (the upstream codec sending it) and possibly after it started the
//     response (EnableFullDuplex for HTTP/1);
//  3. answers: sets Header(), calls WriteHeader once (1xx other than 101
//     may come before, as interim responses), Write any number of times,
//     Flush when the bytes must leave now (a streamed response), and
//     WriteTrailers at most once, after the body;
//  4. returns from ServeStream, which ends the stream normally: the codec
//     writes what is left (the head if WriteHeader was not called: 200;
//     the end of a chunked body with the trailers; END_STREAM), or
//  5. calls Reset before returning, which ends it abnormally: HTTP/1
//     closes the connection without completing the response (a chunked
//     body without its last chunk reads as truncated), HTTP/2 sends
//     RST_STREAM with the code (net/http's server: INTERNAL_ERROR whatever
//     the code). After Reset, Write fails and WriteTrailers does nothing.
//
// A handler must not panic to abort a stream (net/http's
// http.ErrAbortHandler); Reset says it. A panic is a bug, which the codec
// logs and turns into a reset.
//
// # Concurrency
//
// Every method but SetReadDeadline is called from the goroutine that runs
// ServeStream, and not after it returned. SetReadDeadline may be called
// from any goroutine while ServeStream runs (the stream idle timer uses it
// to unblock a read of a silent client). The request body may be read by
// one goroutine at a time, any one, also after ServeStream returned; such
// a read then fails (the codec has taken the connection back, or the
// stream is closed). Request().Context() is done when the client reset
// the stream or went away, or the connection closed; a codec may also end
// it when ServeStream returns (net/http does), or keep it for the
// connection's next stream (h1server's is the connection's): the handler
// derives its own for what must end with the stream.
//
// # Ownership of buffers
//
// The codec owns the Downstream, its request and its header maps; it may
// reuse them for the connection's next request once ServeStream returned
// (h1server does), so nothing may keep them past that. The handler may
// edit Request().Header in place (the connection manager and the filters
// do). Write does not keep p after it returns. The header maps given to
// WriteTrailers and the values put in Header() are the handler's and must
// not change until ServeStream returns: the codec reads them when it
// writes the head or the trailers, not copies them.
//
// # Trailers
//
// Trailers are sent with WriteTrailers after the body, and only when the
// protocol can carry them: HTTP/2 always (a HEADERS frame with
// END_STREAM), HTTP/1.1 when the body is chunked (the response had no
// Content-Length); otherwise they are dropped. A trailers-only gRPC
// response is a head with grpc-status and no body.
//
// # What a codec counts
//
// The connection manager counts streams (downstream_rq_*), the bytes of
// the bodies it reads and writes, local replies and resets it decides.
// The codec tells it what only the codec sees, through Observer: each
// connection's state changes (new, closed, taken over: downstream_cx_*)
// and each request it answered itself without a stream because it could
// not be read (a malformed head, a head over the size limit:
// downstream_cx_protocol_error with its access log line). HTTP/2 codecs
// also count the frames they refuse; a stream the client reset before
// the handler answered is seen by the handler as Request().Context()
// done with no response written (the rapid reset check counts those).
package stream

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Handler serves the streams of downstream connections: the HTTP
// connection manager.
type Handler interface {
	// ServeStream serves one stream; it returns when the stream is
	// answered or reset.
	ServeStream(s Downstream)
}

// Downstream is one request stream of a downstream connection, as a
// codec hands it to the connection manager.
type Downstream interface {
	// Request is the request's head and body. Its Context is the
	// stream's (done when the client went away or the stream ended),
	// descended from the connection's (see Observer.ConnContext).
	Request() *http.Request
	// Conn is the connection the stream came on: the net.Conn the
	// connection manager handed to the codec (the listener's, maybe
	// under TLS or the framing guard), from which it reads what the
	// listener learnt (peer, original destination, server name, TLS
	// state).
	Conn() net.Conn

	// Header is the response head's header map, sent by WriteHeader.
	Header() http.Header
	// WriteHeader sends the response head with status; an
	// informational status (1xx but 101) is sent as an interim response
	// and WriteHeader may be called again. Later calls are ignored.
	WriteHeader(status int)
	// Write sends response body bytes, writing the head (200) first if
	// needed. It fails once the client is gone or the stream was reset.
	Write(p []byte) (int, error)
	// Flush sends what is buffered now: the head and the body so far.
	// A failure shows on the next Write.
	Flush()
	// WriteTrailers sets the trailers sent when the stream ends, after
	// the body; call it at most once, after the last Write. Trailers the
	// protocol cannot carry are dropped.
	WriteTrailers(t http.Header)
	// Reset ends the stream abnormally when ServeStream returns (see
	// the package doc); the handler returns soon after calling it.
	Reset(code ResetCode)

	// EnableFullDuplex lets the handler read the request body after it
	// started writing the response (HTTP/1; HTTP/2 always allows it).
	EnableFullDuplex() error
	// SetReadDeadline bounds reading the request body; a read blocked
	// past it fails. Safe for concurrent use (package doc).
	SetReadDeadline(t time.Time) error
	// Hijack takes the connection over for a tunnel (an HTTP/1.1
	// upgrade or CONNECT): the codec forgets it, and what it buffered
	// comes back in the ReadWriter. HTTP/2 streams return
	// ErrNotHijackable.
	Hijack() (net.Conn, *bufio.ReadWriter, error)
}

// ResetCode says why a stream is reset: HTTP/2's error codes (RFC 9113
// section 7), which an HTTP/2 codec sends in RST_STREAM. HTTP/1 has no
// codes: every reset closes the connection.
type ResetCode uint32

// The reset codes the proxy uses.
const (
	// ResetProtocolError: the client broke the protocol (a malformed or
	// short request body).
	ResetProtocolError ResetCode = 0x1
	// ResetInternalError: the proxy cannot go on (the upstream failed
	// mid-response; the response is incomplete).
	ResetInternalError ResetCode = 0x2
	// ResetRefusedStream: the stream was refused before any processing.
	ResetRefusedStream ResetCode = 0x7
	// ResetCancel: nobody wants the stream any more (the client left).
	ResetCancel ResetCode = 0x8
)

// Observer is what a downstream codec tells the connection manager
// outside any stream (see "What a codec counts" in the package doc).
type Observer interface {
	// ConnContext gives a connection its base context, before its
	// first stream; every stream's context descends from it.
	ConnContext(ctx context.Context, c net.Conn) context.Context
	// ConnState reports a connection's state changes, as net/http's
	// Server.ConnState: StateNew when the codec takes it, StateHijacked
	// or StateClosed at its end, exactly once each; StateActive and
	// StateIdle around requests if the codec tells them (the
	// connection manager ignores them).
	ConnState(c net.Conn, state http.ConnState)
	// Refused reports a request the codec answered itself with status
	// because it could not be read or served (err says why); the
	// connection closes after it.
	Refused(c net.Conn, status int, err error)
}

// CancelNotifier is a downstream stream that tells one listener when its
// request is cancelled (the client went away, the server closed the
// connection): the same moment its request's context is cancelled, told
// without the allocations of deriving a context from it or of
// context.AfterFunc on it for every request. h1server's and h2server's
// streams implement it.
type CancelNotifier interface {
	// NotifyCancel registers l for the stream's request, replacing any
	// listener before it; it reports false, registering nothing, when
	// the request is cancelled already. The codec calls
	// l.DownstreamCancelled at most once, after the request's context is
	// cancelled.
	NotifyCancel(l CancelListener) bool
	// StopNotify forgets the listener; a call under way may still run.
	StopNotify()
}

// CancelListener is what a CancelNotifier tells.
type CancelListener interface {
	DownstreamCancelled()
}

// Upstream is an upstream codec: the pool of connections to one
// cluster's endpoints through which the router makes its attempts.
// net/http's Transport and h1client's Transport are Upstreams as they
// are.
//
// One attempt is one RoundTrip: the request head is req (URL.Host is the
// endpoint's address, Host the authority to send, URL's path and query
// the target); its body, req.Body (nil: none; ContentLength -1: of
// unknown length, streamed), is read by the codec, possibly on a
// goroutine of its own and after RoundTrip returned, and closed by it.
// RoundTrip returns once the response head is read: the final one (1xx
// interim responses are skipped; a 101's Body is the connection, an
// io.ReadWriteCloser). The response body is read from resp.Body by one
// goroutine; its trailers are in resp.Trailer once Body returned io.EOF.
//
// Reset: req.Context() ending aborts the attempt, whatever its state (the
// HTTP/1 connection is closed, the HTTP/2 stream reset with CANCEL), and
// RoundTrip or the body's Read returns the context's error. Closing
// resp.Body before io.EOF resets it too (an HTTP/1 codec may instead
// drain a short rest to keep the connection). An error from RoundTrip
// wraps the dial's error for a connection that could not be made (the
// router answers it as a connect failure), and the request body's error
// when reading it failed (the router answers 400: the client's fault).
//
// Counting: the cluster's stats (upstream_rq_*, upstream_cx_*) are
// counted by the router and the cluster's dialer around RoundTrip, not by
// the codec.
type Upstream interface {
	RoundTrip(req *http.Request) (*http.Response, error)
	// CloseIdleConnections closes the pooled connections no attempt
	// uses.
	CloseIdleConnections()
}

// ErrRefusedStream is what an Upstream's error matches (errors.Is) when
// the upstream refused the attempt before processing it (HTTP/2
// REFUSED_STREAM, or a stream above a GOAWAY's last stream identifier)
// and the codec could not send it again itself: the router's
// refused-stream retry condition.
var ErrRefusedStream = errors.New("stream: refused by the upstream before processing")

// ErrNotHijackable is Downstream.Hijack's error on a stream whose
// connection cannot be taken over (HTTP/2).
var ErrNotHijackable = errors.New("stream: the connection cannot be taken over")

// ReadyReader is a request body that can hand over what has already
// arrived without waiting for more. An upstream codec reads a body that
// is complete when the attempt starts (a unary gRPC call, a small POST)
// on the caller's goroutine and sends it with the head in one write,
// instead of pumping it from a goroutine of its own. h2server's request
// bodies and the connection manager's stream (package hcm) implement it.
type ReadyReader interface {
	// ReadReady reads into p what is available now, never waiting. It
	// returns n > 0 and a nil error for bytes read, 0 and io.EOF at the
	// end of the body (its trailers are then in the request's Trailer,
	// as after Read), 0 and nil when nothing has arrived yet, and any
	// other error as Read would.
	ReadReady(p []byte) (int, error)
}
