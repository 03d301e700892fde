// Package h2client is the proxy's upstream HTTP/2 codec: a
// stream.Upstream that multiplexes the router's attempts as streams over
// pooled connections to each endpoint, h2c with prior knowledge or h2
// over TLS (the caller's Dial does the handshake and checks ALPN).
//
// Each connection has one reader goroutine, which runs its state machine
// (streams, settings, flow control, GOAWAY), and one writer goroutine,
// which gathers the frames of every stream (request heads, body data
// within the peer's windows, window updates, resets) and sends each
// batch with one write system call, as grpc-go's loopyWriter does. A
// stream has no goroutine of its own, except one that pumps a request
// body into the connection's queue while the body lasts. The frame and
// header encodings come from golang.org/x/net/http2's Framer and hpack
// (response heads and trailers decoded by h2frame.HeaderReader, without
// allocating per block but HPACK's strings); the rest is here because net/http's client spends a goroutine and a
// flush per stream and frame, which is most of a gRPC sidecar's cost.
//
// # Flow control
//
// The proxy advertises a stream window of DefaultStreamWindow (256 KiB)
// and grants it back only as the router reads the response body, so a
// slow downstream slows its own stream only; the connection window
// (DefaultConnWindow, 1 MiB) is granted back as data arrives, because
// the stream windows already bound what is buffered (Envoy's own
// defaults are 256 MiB for both, effectively no backpressure; its edge
// guidance is 64 KiB and 1 MiB). The peer's INITIAL_WINDOW_SIZE,
// MAX_FRAME_SIZE, MAX_CONCURRENT_STREAMS and WINDOW_UPDATEs bound what
// is sent.
//
// # Pool
//
// Connections are pooled by endpoint address. A stream goes on the first
// connection with a free slot under the peer's MAX_CONCURRENT_STREAMS;
// when none has one, another connection is dialled (one dial at a time
// per address, up to MaxConnsPerHost), else the attempt waits for a slot.
// A connection that received GOAWAY takes no new stream; its streams
// above the last stream identifier were not processed and are retried
// on another connection when their request body was not read yet, else
// they fail with an error naming REFUSED_STREAM, which the router's
// retry policy may retry. A connection without streams for
// IdleConnTimeout is closed.
//
// # Responses
//
// A response head is checked as RFC 9113 section 8 asks (one 3-digit
// :status, no other pseudo-header, no connection-specific field,
// content-length agreeing with itself and with the body); one that is
// not is a protocol error that resets the stream, as is a header list
// over MaxResponseHeaderBytes.
package h2client
