// Package h2server is the proxy's downstream HTTP/2 server: one
// connection's frames are read by one goroutine, which runs the
// connection's state machine (streams, flow control, settings), and
// written by one writer goroutine that gathers the frames of every stream
// and sends each batch with one write system call, as grpc-go's
// loopyWriter and HAProxy's mux_h2 do. Each stream reaches the
// connection manager as a stream.Downstream (Server.Streams; an
// http.Handler also works, Server.Handler); the handler runs on a worker
// goroutine because it blocks (a worker runs one stream after another,
// keeping the stack it grew), but it never touches the connection: its
// writes are queued for the writer, its reads take what the reader
// buffered.
//
// The frame and header encodings come from golang.org/x/net/http2's
// Framer and hpack; header blocks are decoded and checked as the Framer
// checks them by h2frame.HeaderReader, which reuses its fields between
// blocks instead of allocating a dozen times per block (the slice goes
// when the connection waits detached). What is written here is what
// net/http's server does
// not let the proxy choose: the batching of writes, flow control relayed
// to the handler (a stream's window opens only as the handler consumes
// its body, so a slow upstream slows that stream only, within the
// connection window), and protocol enforcement as RFC 9113 asks for it:
// stream errors (RST_STREAM) for malformed requests (connection-specific
// header fields, TE other than "trailers", bad pseudo-header fields, a
// body that disagrees with content-length), a clean close after GOAWAY
// for an invalid connection preface, SETTINGS with repeated identifiers
// accepted, MAX_FRAME_SIZE left at 16384.
//
// Limits: MAX_CONCURRENT_STREAMS (streams over it are refused with
// REFUSED_STREAM, and streams whose handler still runs after a reset
// count against it, so a rapid reset cannot pile up handlers), the
// header list size (a request over it is answered 431 on its stream),
// the HPACK table (4096 bytes), an idle timeout (GOAWAY when no stream
// is open for that long) and a bound on the preface's arrival.
//
// Memory of an idle connection: the write batch with its framer comes
// from a pool while frames are written and goes back when nothing is
// left to write with no stream open, and the writer goroutine runs only
// while there is something to write or a stream is open. Served by
// ServeConnDetached (as the proxy serves it), a connection with at most
// one stream in flight that has read everything the client sent gives
// its read buffer (16 KiB) back and waits for more on a fresh goroutine,
// whose stack is the runtime's smallest, reading into a small array; the
// read framer is renewed then if it read a large payload. So an idle
// connection costs its HPACK decoder's table, its state and a 2 KiB stack
// (TestIdleConnectionMemory). The price: a goroutine started, and one
// more small read, each time such a connection waits for the client; a
// connection with several streams in flight reads as before. Up to 64
// connections per server (workers.Waits) wait instead on the goroutine
// that read their last frames, as a connection served by ServeConn does
// (its buffer given back all the same): the connections an application
// keeps busy save the goroutine, and the stack grown again, per request
// (TestAttachedReaderWaits). A detached wait on a connection that can be
// parked (the proxy's listener connections in h2c, internal/proxy/idlewait)
// holds no goroutine at all: the connection is parked until the client
// sends, and the goroutine starts then (TestParkedConnectionsHoldNoGoroutine,
// TestParkedConnectionMemory; h2spec runs against parked connections
// too). Responses are encoded with no HPACK dynamic table
// (h2frame.NewLiteralHeaderWriter), so an idle connection keeps the
// decoder's table only.
package h2server
