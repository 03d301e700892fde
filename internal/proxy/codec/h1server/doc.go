// Package h1server serves HTTP/1.x connections with a stream.Handler (the
// connection manager: each request's response is its stream.Downstream)
// or an http.Handler, run on the connection's own goroutine.
//
// It exists for the sidecar's plaintext HTTP/1.1 listeners. net/http's
// server starts a background read for every request (a goroutine that
// watches the connection for a client hang-up, parked and woken through
// read deadlines and a condition variable when the handler ends) and
// derives a cancellable context per request. For a proxy that forwards
// each request synchronously (internal/proxy/codec/h1client) those hand-offs
// are most of its CPU at moderate rates: every one is a wake-up of another
// thread. Here one goroutine reads a request, runs the handler, writes the
// response and reads the next, as Envoy's and HAProxy's event loops do.
//
// A head of the common kind (no body framing, a plain target in origin
// form or, as a client sends to a proxy, in absolute form, valid field
// lines; head.go) is parsed from the buffer by the codec into the request
// http.ReadRequest would return (FuzzParseHead compares the two); any
// other head is parsed by http.ReadRequest. Then come the checks
// net/http's server adds (Host present, single and valid; header names
// and values valid; Expect), so both servers accept and refuse the same
// requests with the same status codes (FuzzAgainstNetHTTP): 400, 431 for
// a header section over the limit, 501 for an unsupported
// Transfer-Encoding, 417 for an unknown expectation.
//
// A connection holds its read and write buffers (4 KiB each, from a
// pool) and its response header map only while it reads or answers a
// request. Waiting for the next
// request it reads the first byte into the connection itself, with the
// buffers back in the pool, so an idle keep-alive connection costs its
// goroutine's stack and its socket (TestIdleConnectionHoldsNoBuffers), as
// HAProxy releases its buffers between requests. The price is one more
// small read per request. Served by ServeConnDetached (as the proxy
// serves it), that wait runs on a fresh goroutine, whose stack is the
// runtime's smallest (2 KiB), not on the one that served the last
// request, whose stack grew to 8 KiB or more along the request path
// and is not shrunk while it waits (TestIdleConnectionWaitsOnSmallStack);
// that costs a goroutine started per request, and a hand-off to a worker
// when the request comes. Up to 64 connections per server (workers.Waits)
// wait instead on the worker that served their last request, as a
// connection served by ServeConn does: the connections an application
// keeps busy save both (TestAttachedWaitServesOnItsWorker), for a
// worker's stack each while they wait (TestAttachedWaitsAreBounded).
// A detached wait on a connection that can be parked (the proxy's
// listener connections in plaintext, internal/proxy/idlewait) holds no
// goroutine at all: the connection is parked until its next bytes, its
// idle deadline, its Close or a new read deadline, and the goroutine
// starts then (TestParkedConnectionsHoldNoGoroutine,
// TestParkedConnectionIdleTimeout, TestShutdownEndsParkedConnections).
//
// Differences from net/http's server:
//   - A client that hangs up while its request is being handled is
//     noticed by a look at the socket (internal/proxy/sockpeek) that one
//     goroutine per server makes every HangupCheck (1 s) at the
//     connections whose request has waited that long, which then cancels
//     the request's context; or when the response is written. net/http
//     notices at once, through a read it starts for every request.
//   - HTTP/2 upgrades and Server-level TLS are not offered; callers hand
//     h2c connections to h2server, TLS ones to h2server (ALPN h2) or
//     net/http. Hijack is offered (for
//     WebSocket and other HTTP/1.1 upgrades): the hijacked connection
//     leaves the server, which Shutdown then does not wait for.
//   - A refused request whose client sent more than the server read is
//     answered, then the connection is half-closed and held 500 ms
//     before it closes, as net/http does only after a 431: closing with
//     input unread resets the connection, which can destroy the answer
//     before the client reads it (TestRefusalWithUnreadInputEndsCleanly).
//     net/http's larger first read usually leaves nothing unread.
//   - Header keys are written in map order, not sorted.
//   - A 400 says which field or line it refuses, after net/http's text.
package h1server
