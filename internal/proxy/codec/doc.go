// Package codec groups the proxy's own HTTP codecs, each a package:
//
//   - h1server: the downstream HTTP/1.x server for plaintext connections,
//     which serves each request on the connection's goroutine.
//   - h1client: the upstream HTTP/1.1 client for plaintext clusters, which
//     makes each request synchronously on the caller's goroutine.
//   - h1guard: the framing guard in front of every downstream HTTP/1.x
//     connection (request smuggling, header limits).
//   - h2server: the downstream HTTP/2 server (h2c and TLS with ALPN h2):
//     one reader and one batching writer per connection.
//   - h2client: the upstream HTTP/2 client (h2c and h2 over TLS), built
//     the same way: streams multiplexed on pooled connections, one
//     reader and one batching writer per connection.
//   - h2frame: what h2server and h2client share (header blocks split
//     into frames, half-close).
//   - stream: the interface every codec plugs in behind (Downstream,
//     Observer, Upstream), with its contract.
//   - nethttp: net/http's server (HTTP/1.x over TLS) and Transport
//     (upstream HTTP/1.1 over TLS) behind that interface.
//
// The connection manager, the HTTP filters and the router code against
// package stream only.
package codec
