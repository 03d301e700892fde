package hcm

import (
	"crypto/tls"
	"io"
	"sync/atomic"

	"github.com/meshlens/meshlens/internal/proxy/listener"
)

// Conn is a downstream connection as the HTTP connection manager
// sees it: the listener's connection (package listener) and what the
// connection manager keeps for it. Its HTTP servers find it under their
// wrappers (srvConnOf), and requests reach it through their context
// (connContext).
type Conn struct {
	*listener.Conn
	// tls is the connection's TLS state once an HTTP chain terminated
	// TLS (the mesh metrics read the client certificate from it); set
	// before the connection is served.
	tls *tls.ConnectionState
	// hcm is the connection manager stats the connection is counted in
	// (set when net/http takes it); proto its HTTP major version once the
	// first request told it.
	hcm   *Stats
	proto atomic.Int32
	// closer closes the connection (set when net/http takes it);
	// streams counts its HTTP/2 streams for the rapid reset check
	// (rapidreset.go).
	closer  io.Closer
	streams streamTally
}

// noteProto counts the connection as HTTP/1 or HTTP/2 on its first
// request.
func (ci *Conn) noteProto(major int) {
	if ci.proto.Load() != 0 || !ci.proto.CompareAndSwap(0, int32(major)) {
		return
	}
	if major == 2 {
		ci.hcm.cxHTTP2Total.Inc()
		ci.hcm.cxHTTP2Active.Inc()
	} else {
		ci.hcm.cxHTTP1Total.Inc()
		ci.hcm.cxHTTP1Active.Inc()
	}
}

// ListenerInfo is what the listener learnt about the connection; nil for a nil
// connection (a request that did not come through a listener).
func (ci *Conn) ListenerInfo() *listener.Info {
	if ci == nil {
		return nil
	}
	return &ci.Info
}
