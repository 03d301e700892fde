// Package sockpeek tells, without blocking and without consuming
// anything, whether a TCP connection has bytes waiting, has been closed by
// its peer, or is open and quiet. The HTTP/1 client asks it before reusing
// an idle connection; the HTTP/1 server asks it to notice a client that
// hung up while its request waits for the upstream.
package sockpeek

import "net"

// State is what a look at a socket found.
type State int

// States.
const (
	Unknown State = iota // not a socket, or the look failed
	Quiet                // open, nothing to read
	Data                 // bytes are waiting
	Closed               // the peer closed (EOF) or reset the connection
)

// Look returns the state of nc's socket, looking through wrappers that
// expose the connection they wrap with NetConn (crypto/tls and the
// proxy's own do).
func Look(nc net.Conn) State {
	for {
		w, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		inner := w.NetConn()
		if inner == nil || inner == nc {
			break
		}
		nc = inner
	}
	return look(nc)
}
