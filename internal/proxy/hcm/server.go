package hcm

import (
	"context"
	"crypto/tls"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/codec/h1guard"
	"github.com/meshlens/meshlens/internal/proxy/codec/h1server"
	"github.com/meshlens/meshlens/internal/proxy/codec/h2server"
	"github.com/meshlens/meshlens/internal/proxy/codec/nethttp"
	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
	"github.com/meshlens/meshlens/internal/proxy/listener"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/sds"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tlsctx"
	"github.com/meshlens/meshlens/internal/proxy/tunnel"
	"github.com/meshlens/meshlens/internal/stats"
	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

// Server serves one HTTP filter chain of one listener: plaintext
// HTTP/1.x connections on their own goroutine (h1server), HTTP/2 ones (h2c
// by prior knowledge, or TLS with ALPN h2) with the proxy's HTTP/2 codec
// (h2server), HTTP/1.x over TLS through a net/http server (codec/nethttp)
// fed with the connections the listener matched to the chain; all hand it
// streams (ServeStream). It
// outlives snapshots while the chain keeps its name and connection
// settings (ServerKey); its route table and clusters are swapped per
// snapshot through cfg.
type Server struct {
	env  *Env
	key  string
	srv  *http.Server
	h1   *h1server.Server // nil when the chain is TLS or HTTP/2 only
	h2   *h2server.Server // nil when the chain is HTTP/1 only
	auto bool             // plaintext HTTP/1.1 or h2c, told by the preface
	ln   *chanListener
	tls  *tls.Config // nil for plaintext
	// localURI is the URI SAN of the chain's own certificate, for
	// x-forwarded-client-cert's By; nil for plaintext.
	localURI func() string
	scheme   string // "http" or "https"
	Config   atomic.Pointer[ChainConfig]
	done     chan struct{} // closed when Serve returns
	// Unusable says why the chain cannot serve (e.g. SDS TLS); its
	// connections are closed.
	Unusable string
	// guard: the chain speaks HTTP/1, so its connections go through the
	// framing guard (h1guard) with the chain's header limit.
	guard  bool
	maxHdr int
	// tunnels are the connections upgraded (WebSocket) from requests.
	tunnels tunnel.Set
}

// Env is what the connection manager needs of the proxy around it,
// shared by every server.
type Env struct {
	Log    *slog.Logger
	ErrLog *log.Logger // net/http's server errors
	// HeaderReadTimeout bounds reading a request's head (and a TLS
	// handshake); StreamIdleTimeout is the stream idle timeout when
	// neither the route nor the connection manager sets one.
	HeaderReadTimeout, StreamIdleTimeout time.Duration
	// Mesh keeps the mesh metrics; nil when the data path has no stats.
	Mesh *meshmetrics.Metrics
	// H2HeaderOverflow is http2.header_overflow; H2 all the HTTP/2
	// codec's http2.* stats.
	H2HeaderOverflow *stats.Counter
	H2               *h2server.Stats
	// Router forwards every routed request (package filters/router).
	Router Forwarder
	// Secrets are the TLS secrets received over SDS.
	Secrets *sds.Store
}

// Forwarder is the last filter of a chain, which forwards a routed
// request upstream and answers it: the router.
type Forwarder interface {
	Forward(s stream.Downstream, ex *Exchange, m *table.HTTPManager, route *table.Route, view *cluster.View)
}

// Clusters finds the runtime view of a cluster a route names (the
// snapshot's state), nil for a cluster CDS did not deliver.
type Clusters interface {
	View(c *table.Cluster) *cluster.View
}

// ChainConfig is what a request reads, once, through Server.Config: the
// filter chain and the snapshot state it belongs to, with the chain's
// stats and access logs.
type ChainConfig struct {
	Chain    *table.FilterChain
	Clusters Clusters
	Dir      table.Direction
	Stats    *Stats
	Logs     []ChainLog
	// ListenerTLS: some chain of the listener terminates TLS, so a
	// client of the mesh is expected to authenticate (mesh metrics).
	ListenerTLS bool
	// Filters is the HTTP filter chain before the router; nil: none.
	Filters *chain.Chain
	// Tracer makes the chain's spans; nil when it does not trace.
	// TraceFormats are the trace headers written upstream, TraceTags the
	// literal custom tags every server span carries.
	Tracer       *tracing.Tracer
	TraceFormats propagation.Formats
	TraceTags    []tracing.Attr
	// TraceHeaderTags are the span attributes read from request headers.
	TraceHeaderTags []table.HeaderTag
}

// ChainLog is one access log of a chain: a compiled format and the
// (shared, non-blocking) writer of its file.
type ChainLog struct {
	Format *accesslog.Format
	Writer *accesslog.Writer
}

// ServerKey identifies the connection-level settings of an HTTP chain: a
// chain whose key changes gets a new server, and the old one drains.
func ServerKey(c *table.FilterChain, idle time.Duration, maxHdr int) string {
	var b strings.Builder
	b.WriteString(c.Name)
	b.WriteByte('|')
	b.WriteByte(byte('0' + c.HTTP.Codec))
	b.WriteByte('|')
	b.WriteString(idle.String())
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(maxHdr))
	if t := c.TLS; t != nil {
		b.WriteString("|tls:")
		b.WriteString(strings.Join([]string{t.CertFile, t.KeyFile, t.CAFile, t.SDSCertName, t.SDSCAName,
			strings.Join(t.MatchSANs, ","), strings.Join(t.ALPN, ",")}, ";"))
		if t.RequireClientCert {
			b.WriteString(";require")
		}
	}
	return b.String()
}

// NewServer starts serving a chain. The caller owns the result and
// stops it with drain or close. It is long because it wires the chain's
// codecs (HTTP/1.x, HTTP/2, TLS) to one handler in one place; each step
// is a few commented lines.
func NewServer(env *Env, key string, c *table.FilterChain, idle time.Duration, maxHdr int) *Server {
	h := &Server{env: env, key: key, scheme: "http", done: make(chan struct{}), guard: c.HTTP.Codec != table.CodecHTTP2, maxHdr: maxHdr}
	protos := new(http.Protocols)
	var next []string
	switch c.HTTP.Codec {
	case table.CodecHTTP1:
		protos.SetHTTP1(true)
		next = []string{"http/1.1"}
	case table.CodecHTTP2:
		protos.SetUnencryptedHTTP2(true)
		protos.SetHTTP2(true)
		next = []string{"h2"}
	default:
		protos.SetHTTP1(true)
		protos.SetUnencryptedHTTP2(true)
		protos.SetHTTP2(true)
		next = []string{"h2", "http/1.1"}
	}
	if c.TLS != nil {
		h.scheme = "https"
		conf, err := tlsctx.DownstreamConfig(c.TLS, next, env.Secrets)
		if err != nil {
			h.Unusable = err.Error()
		}
		h.tls = conf
		h.localURI = tlsctx.LocalURI(c.TLS, conf, env.Secrets)
	}
	srvMaxHdr := maxHdr
	if c.HTTP.Codec != table.CodecHTTP1 {
		// The HTTP/2 codec's header list limit (HPACK's measure: 32
		// bytes more per field, pseudo-header fields included) is set
		// well above the request's, so that the connection manager
		// answers a list of too many or too large headers (431) with
		// the request's route, stats and access log; past the codec's
		// bound the codec answers 431 itself.
		srvMaxHdr = max(maxHdr, h2HeaderListBound)
	}
	h.ln = newChanListener()
	h.srv = &http.Server{
		Handler:           nethttp.Handler(h),
		ReadHeaderTimeout: env.HeaderReadTimeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    srvMaxHdr,
		Protocols:         protos,
		ErrorLog:          env.ErrLog,
		ConnContext:       nethttp.ConnContext(h.ConnContext),
		ConnState:         h.ConnState,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 1024,
			// The HTTP/2 analogue of the header size limit: bound the
			// HPACK table too.
			MaxDecoderHeaderTableSize: 64 << 10,
		},
	}
	if c.HTTP.Codec != table.CodecHTTP1 {
		h.h2 = &h2server.Server{
			Streams: h,
			// The bound net/http's server had here before; Envoy's
			// default (2^31-1) is no bound at all.
			MaxConcurrentStreams: 1024,
			MaxHeaderListSize:    uint32(srvMaxHdr),
			IdleTimeout:          idle,
			PrefaceTimeout:       env.HeaderReadTimeout,
			ConnContext:          h.ConnContext,
			ConnState:            h.ConnState,
			Stats:                env.H2,
			OnIdleTimeout:        h.onIdleTimeout,
			Log:                  env.Log,
		}
	}
	if c.TLS == nil && c.HTTP.Codec != table.CodecHTTP2 {
		h.h1 = &h1server.Server{
			Streams:           h,
			ReadHeaderTimeout: env.HeaderReadTimeout,
			IdleTimeout:       idle,
			MaxHeaderBytes:    maxHdr,
			ConnContext:       h.ConnContext,
			ConnState:         h.ConnState,
			OnRefuse:          h.Refused,
			Log:               env.Log,
		}
		h.auto = c.HTTP.Codec == table.CodecAuto
	}
	go func() {
		defer close(h.done)
		_ = h.srv.Serve(h.ln)
	}()
	return h
}

// h2HeaderListBound is the HTTP/2 header list size (HPACK's measure)
// past which a client that keeps sending CONTINUATION frames loses its
// connection: net/http's default header limit.
const h2HeaderListBound = http.DefaultMaxHeaderBytes

// SetKeepAlives turns keep-alive on or off for the chain's connections.
func (h *Server) SetKeepAlives(on bool) {
	h.srv.SetKeepAlivesEnabled(on)
	if h.h2 != nil {
		h.h2.SetKeepAlivesEnabled(on)
	}
	if h.h1 != nil {
		h.h1.SetKeepAlivesEnabled(on)
	}
}

// Drain stops the server gracefully: idle connections close now, busy
// ones after their response (HTTP/1.1 answers with Connection: close,
// HTTP/2 sends GOAWAY); whatever is left at ctx's end is closed.
func (h *Server) Drain(ctx context.Context) {
	if h.h1 != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = h.h1.Shutdown(ctx)
		}()
		defer func() { <-done }()
	}
	if h.h2 != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = h.h2.Shutdown(ctx)
		}()
		defer func() { <-done }()
	}
	if err := h.srv.Shutdown(ctx); err != nil {
		_ = h.srv.Close()
	}
	<-h.done
	h.tunnels.Drain(ctx)
}

// Serve hands a matched downstream connection to the server, after the
// TLS handshake when the chain terminates TLS.
func (h *Server) Serve(c *Conn) {
	if h.Unusable != "" {
		_ = c.Close()
		return
	}
	var conn net.Conn = c
	if h.tls != nil {
		tc := listener.TerminateTLS(c.Conn, c, h.tls, h.env.HeaderReadTimeout)
		if tc == nil {
			return
		}
		cs := tc.ConnectionState()
		c.tls = &cs
		conn = tc
		if cs.NegotiatedProtocol == "h2" && h.h2 != nil {
			_ = h.h2.ServeConnDetached(conn, c.Hold())
			return
		}
	} else if h.h2 != nil && (h.h1 == nil || h.auto && c.H2Preface(time.Now().Add(h.env.HeaderReadTimeout))) {
		// h2c by prior knowledge, on this goroutine (the listener's,
		// per connection) until the connection has read what the client
		// sent; then on goroutines of its own, so that an idle
		// connection waits on a small stack.
		_ = h.h2.ServeConnDetached(conn, c.Hold())
		return
	}
	if h.guard {
		// A request framed both by Content-Length and Transfer-Encoding
		// (a smuggling attempt) must get a 400, not be re-framed.
		conn = h1guard.NewConn(conn, h1guard.Options{MaxHeaderBytes: h.maxHdr, OnReject: h.onReject})
	}
	if h.h1 != nil {
		// Served on this goroutine (the listener's, per connection)
		// until it waits for a request; then on goroutines of its own,
		// so that an idle connection waits on a small stack.
		_ = h.h1.ServeConnDetached(conn, c.Hold())
		return
	}
	h.ln.push(conn)
}

// onIdleTimeout counts an HTTP/2 connection closed by the idle timeout.
func (h *Server) onIdleTimeout(c net.Conn) {
	if sc := srvConnOf(c); sc != nil && sc.hcm != nil {
		sc.hcm.cxIdleTimeout.Inc()
	}
}

// onReject counts a request the framing guard refused, unless h1server
// serves the connection and so counts the refusal (Refused).
func (h *Server) onReject(c net.Conn, err error) {
	if cc := h.Config.Load(); cc != nil && h.h1 == nil {
		cc.Stats.CxProtocolError.Inc()
	}
	h.env.Log.Debug("request refused: ambiguous framing", "remote", c.RemoteAddr(), "err", err)
}

// Refused counts and logs a request a codec answered itself (status)
// because it could not be read or served: a downstream protocol error,
// as Envoy counts its codec errors (downstream_cx_protocol_error, the
// status class, an access log line with flag DPE). It implements
// stream.Observer.
func (h *Server) Refused(c net.Conn, status int, _ error) {
	cc := h.Config.Load()
	if cc == nil {
		return
	}
	hs := cc.Stats
	hs.CxProtocolError.Inc()
	hs.rqTotal.Inc()
	hs.rqHTTP1Total.Inc()
	hs.codes.Class(status).Inc()
	hs.rqCompleted.Inc()
	if len(cc.Logs) == 0 {
		return
	}
	e := &accesslog.Entry{Start: time.Now(), Protocol: "HTTP/1.1", ResponseCode: status, Flags: accesslog.DownstreamProtocolError}
	if sc := srvConnOf(c); sc != nil {
		ci := sc
		e.DownstreamRemote, e.DownstreamLocal = ci.Info.Remote, ci.Info.Dst
		e.RequestedServerName = ci.Info.ServerName
		e.ConnectionID = ci.Info.ID
	}
	for _, l := range cc.Logs {
		l.Writer.LogEntry(l.Format, e)
	}
}

// srvConnOf finds the listener's connection under the wrappers net/http
// is given (TLS, the framing guard).
func srvConnOf(c net.Conn) *Conn {
	for c != nil {
		switch v := c.(type) {
		case *Conn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

var _ stream.Observer = (*Server)(nil)

// ConnContext notes that a codec took the connection (the rapid reset
// check may close it). It implements stream.Observer.
func (h *Server) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if sc := srvConnOf(c); sc != nil {
		sc.closer = sc
	}
	return ctx
}

// ConnState keeps the connection stats of the chain's connection
// manager. It implements stream.Observer.
func (h *Server) ConnState(c net.Conn, s http.ConnState) {
	sc := srvConnOf(c)
	if sc == nil {
		return
	}
	switch s {
	case http.StateNew:
		hs := h.Config.Load().Stats
		sc.hcm = hs
		hs.cxTotal.Inc()
		hs.cxActive.Inc()
	case http.StateClosed, http.StateHijacked:
		hs := sc.hcm
		if hs == nil {
			return
		}
		hs.cxActive.Dec()
		hs.cxDestroy.Inc()
		hs.cxLength.RecordDuration(time.Since(sc.Opened()))
		switch sc.proto.Load() {
		case 1:
			hs.cxHTTP1Active.Dec()
		case 2:
			hs.cxHTTP2Active.Dec()
		}
	}
}

// chanListener is a net.Listener fed by the proxy's own accept loops,
// after they inspected and matched a connection to a chain.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands c to the server, or closes it when the server is gone.
func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }
