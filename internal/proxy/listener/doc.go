// Package listener is the first stage of the data plane, as Envoy's
// listener: bound sockets and their accept loops (socket.go), the
// listener filters that read a connection's first bytes (TLS inspector,
// HTTP inspector: inspect.go) and its original destination (origdst*.go),
// the filter-chain match (runtime.go), the downstream connection with its
// listener.<address>.* stats (conn.go, stats.go), and the TLS handshake
// of chains that terminate TLS (tls.go).
//
// A matched connection goes to the chain's next stage through
// Config.Serve: the HTTP connection manager or the TCP proxy (package
// tunnel). Which sockets a snapshot's listeners want (BindSpec) is the
// proxy's Apply's to decide.
package listener
