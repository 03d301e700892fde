// Package hcm is the HTTP connection manager of the data plane, as
// Envoy's: it takes the connections a listener matched to an HTTP filter
// chain and serves their streams.
//
//   - server.go: one Server per chain (kept across snapshots while the
//     chain's connection settings stay): TLS termination, the framing
//     guard, and the codec (codec/h1server for plaintext HTTP/1.x,
//     net/http's server through codec/nethttp for TLS and HTTP/2), which
//     hands the Server its streams (stream.Handler) and reports its
//     connections (stream.Observer); conn.go is a connection as the
//     connection manager sees it. A downstream codec plugs in here: Serve
//     hands it each matched connection (after TLS; an HTTP/2 one by its
//     ALPN or its preface), and the codec is built with the Server as its
//     stream.Handler and stream.Observer, as h1server is (Streams,
//     ConnContext, ConnState, OnRefuse).
//   - hcm.go: one stream (ServeStream, over a stream.Downstream only):
//     counting, x-meshlens-source, route match, and at the end the stats,
//     mesh metrics and access log (finish). reply.go holds the exchange
//     (the stream's pooled state) and the local replies, which go
//     through the response phase of the HTTP filters that ran.
//     headers.go edits the request headers; stream.go keeps the route
//     and stream idle timeouts; rapidreset.go guards against HTTP/2
//     rapid reset.
//   - filters.go: the HTTP filters before the router (package
//     filters/chain), run once the route is known, also when routing
//     decided a local reply (no route, a direct response, a missing
//     cluster).
//   - The chain's last filter, the router, is package filters/router,
//     which the connection manager calls through Forwarder (Env.Router).
//   - upgrade.go: upgrades and CONNECT, handed to package tunnel once
//     switched.
//
// Endpoint picking, pools and the policies that keep endpoint state live
// in package cluster.
package hcm
