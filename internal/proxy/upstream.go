package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/h1client"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// upstream is the connection-pool side of one cluster. It outlives
// snapshots: a new snapshot whose cluster has the same connection settings
// (upstreamKey) keeps the pooled connections and counters; one whose
// settings changed gets a new upstream and the old one's idle connections
// are closed once in-flight requests had time to finish.
type upstream struct {
	name string
	key  upstreamKey
	// h1 speaks HTTP/1.1, h2 HTTP/2 (h2c, or h2 over TLS); either may be
	// nil when the cluster never speaks that protocol.
	h1, h2 roundTripper
	dialer net.Dialer
	// tlsConf originates TLS for tcp_proxy (the transports hold their own
	// copies); nil for plaintext.
	tlsConf *tls.Config
	stats   *clusterStats
	log     *slog.Logger

	// ejected counts the endpoints outlier detection has ejected now
	// (outlier.go); nextSweep is when its sweeper next looks at them,
	// owned by that goroutine.
	ejected   atomic.Int64
	nextSweep time.Time
	// breakers are the attempts, retries and TCP sessions in progress,
	// which the circuit breakers bound (breaker.go).
	breakers breakerCounts
	limits   atomic.Pointer[breakerLimits] // the latest snapshot's, for the gauges
	// hc runs the cluster's active health checks (healthcheck.go); only
	// the configuration path touches the field. used: the cluster has had
	// a request or session. view is the latest snapshot's view, for the
	// membership gauges.
	hc   *healthChecker
	used atomic.Bool
	view atomic.Pointer[clusterView]

	mu        sync.Mutex
	endpoints map[string]*endpointStats // by dialed address; pruned by prune
}

// roundTripper is an upstream connection pool: net/http's Transport, or
// the synchronous HTTP/1.1 client.
type roundTripper interface {
	RoundTrip(*http.Request) (*http.Response, error)
	CloseIdleConnections()
}

// upstreamKey is everything about a cluster that shapes its connections.
type upstreamKey struct {
	http2, useDownstream bool
	connectTimeout       time.Duration
	maxConns             uint32
	tls                  string // fingerprint of the UpstreamTLS settings; "" = plaintext
	// origDst: the cluster connects to each connection's original
	// destination, so its endpoints are not kept (endpoint).
	origDst bool
}

// endpointStats are one endpoint's counters, shown by /clusters.
type endpointStats struct {
	cxActive, cxTotal, cxConnectFail                 atomic.Int64
	rqActive, rqTotal, rqSuccess, rqError, rqTimeout atomic.Int64
	outlier                                          outlierHost
	hc                                               hcHost
}

func keyOf(c *table.Cluster, def time.Duration) upstreamKey {
	k := upstreamKey{
		http2:          c.HTTP2,
		useDownstream:  c.UseDownstreamProtocol,
		connectTimeout: c.ConnectTimeout,
		maxConns:       c.Limits.MaxConnections,
		origDst:        c.Type == table.ClusterOriginalDst,
	}
	if k.connectTimeout <= 0 {
		k.connectTimeout = def
	}
	if t := c.TLS; t != nil {
		k.tls = fmt.Sprintf("%q", []any{t.CertFile, t.KeyFile, t.CAFile, t.MatchSANs, t.SNI, t.ALPN, t.SDSCertName, t.SDSCAName})
	}
	return k
}

// newUpstream builds the transports of a cluster. TLS material is read
// here, so a missing file refuses the snapshot.
func (p *Proxy) newUpstream(c *table.Cluster, key upstreamKey) (*upstream, error) {
	u := &upstream{
		name:      c.Name,
		key:       key,
		dialer:    net.Dialer{Timeout: key.connectTimeout, KeepAlive: 30 * time.Second},
		endpoints: map[string]*endpointStats{},
		stats:     newClusterStats(p.clusterScope(c.Name)),
		log:       p.log,
	}
	var tlsConf *tls.Config
	if c.TLS != nil {
		var err error
		if tlsConf, err = upstreamTLSConfig(c.TLS); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
		}
		u.tlsConf = tlsConf
	}
	maxConns := p.cfg.MaxConnsPerHost
	if key.maxConns > 0 {
		maxConns = int(key.maxConns)
	}
	mk := func(h2 bool) *http.Transport {
		t := &http.Transport{
			Proxy:                  nil, // never the environment's HTTP_PROXY
			DialContext:            u.dial,
			MaxIdleConnsPerHost:    p.cfg.MaxIdleConnsPerHost,
			MaxConnsPerHost:        maxConns,
			IdleConnTimeout:        p.cfg.UpstreamIdleTimeout,
			TLSHandshakeTimeout:    key.connectTimeout,
			ExpectContinueTimeout:  time.Second,
			DisableCompression:     true, // forward bodies as they are
			MaxResponseHeaderBytes: 1 << 20,
			WriteBufferSize:        16 << 10,
			ReadBufferSize:         16 << 10,
			Protocols:              new(http.Protocols),
		}
		if tlsConf != nil {
			t.TLSClientConfig = tlsConf.Clone()
		}
		switch {
		case h2 && tlsConf != nil:
			t.Protocols.SetHTTP2(true)
			t.TLSClientConfig.NextProtos = alpnOr(c.TLS.ALPN, "h2")
		case h2:
			t.Protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge
		default:
			t.Protocols.SetHTTP1(true)
			if tlsConf != nil {
				t.TLSClientConfig.NextProtos = alpnOr(c.TLS.ALPN, "http/1.1")
			}
		}
		return t
	}
	dialH1 := func(ctx context.Context, network, addr string) (net.Conn, error) {
		u.stats.cxHTTP1Total.Inc()
		return u.dial(ctx, network, addr)
	}
	switch {
	case c.HTTP2 && !c.UseDownstreamProtocol:
	case tlsConf == nil && !p.cfg.StdlibHTTP1Client:
		// Plaintext HTTP/1.1: the synchronous client, which reads and
		// writes on the request's goroutine (no hand-off per request).
		u.h1 = &h1client.Transport{
			Dial:                   dialH1,
			MaxIdleConnsPerHost:    p.cfg.MaxIdleConnsPerHost,
			MaxConnsPerHost:        maxConns,
			IdleConnTimeout:        p.cfg.UpstreamIdleTimeout,
			MaxResponseHeaderBytes: 1 << 20,
		}
	default:
		t := mk(false)
		t.DialContext = dialH1
		u.h1 = withHandshake(u, t)
	}
	if c.HTTP2 || c.UseDownstreamProtocol {
		t := mk(true)
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			u.stats.cxHTTP2Total.Inc()
			return u.dial(ctx, network, addr)
		}
		u.h2 = withHandshake(u, t)
	}
	return u, nil
}

// withHandshake makes a TLS transport run its handshakes through
// upstream.handshake, for the cluster's ssl.* stats; a plaintext one is
// returned as it is.
func withHandshake(u *upstream, t *http.Transport) *http.Transport {
	if t.TLSClientConfig == nil {
		return t
	}
	cfg, dial := t.TLSClientConfig, t.DialContext
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return u.handshake(ctx, conn, cfg)
	}
	return t
}

func alpnOr(alpn []string, def string) []string {
	if len(alpn) > 0 {
		return alpn
	}
	return []string{def}
}

// transport returns the transport for a request that came in over
// downstream protocol major version downMajor.
func (u *upstream) transport(downMajor int) roundTripper {
	switch {
	case u.key.useDownstream && downMajor == 2:
		return u.h2
	case u.key.useDownstream:
		return u.h1
	case u.key.http2:
		return u.h2
	}
	return u.h1
}

// closeIdle closes the pooled connections nobody uses.
func (u *upstream) closeIdle() {
	if u.h1 != nil {
		u.h1.CloseIdleConnections()
	}
	if u.h2 != nil {
		u.h2.CloseIdleConnections()
	}
}

// endpoint returns the counters of an endpoint address, creating them.
// An ORIGINAL_DST cluster's destinations are not kept (they are any
// address its clients reach): each gets counters of its own that /clusters
// does not show.
func (u *upstream) endpoint(addr string) *endpointStats {
	if u.key.origDst {
		return &endpointStats{}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.endpoints[addr]
	if st == nil {
		st = &endpointStats{}
		u.endpoints[addr] = st
	}
	return st
}

// unusable reports whether picking should pass the endpoint over: it is
// ejected by outlier detection or fails its active health checks.
func (s *endpointStats) unusable() bool {
	return s.outlier.ejected() || s.hc.failed.Load()
}

// refreshMembership updates the membership gauges after an endpoint's
// health changed.
func (u *upstream) refreshMembership() {
	if v := u.view.Load(); v != nil {
		u.stats.setMembership(v)
	}
}

// markUsed notes that the cluster has had traffic (for the health checks'
// interval).
func (u *upstream) markUsed() {
	if !u.used.Load() {
		u.used.Store(true)
	}
}

// handshake originates TLS on conn with cfg within the cluster's connect
// timeout, and counts the outcome in the cluster's ssl.* stats. A failure
// closes conn and is a connect failure.
func (u *upstream) handshake(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, u.key.connectTimeout)
	defer cancel()
	tc := tls.Client(conn, cfg)
	err := tc.HandshakeContext(ctx)
	u.stats.ssl.get(u.stats.scope).record(err, tc.ConnectionState(), false)
	if err != nil {
		_ = conn.Close()
		return nil, &connectError{err}
	}
	return tc, nil
}

// attemptDone ends an attempt that attempt counted as active.
func (u *upstream) attemptDone(ep *endpointStats) {
	ep.rqActive.Add(-1)
	u.stats.rqActive.Dec()
	u.requestDone()
}

// prune forgets the counters of addresses that left the cluster (v is
// the new snapshot's view) and have nothing in flight and no ejection
// pending, so that a long-running sidecar whose endpoints come and go
// does not keep every address it ever had.
func (u *upstream) prune(v *clusterView) {
	in := make(map[*endpointStats]bool, len(v.eps)+1)
	for _, e := range v.endpoints() {
		in[e.stats] = true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for addr, s := range u.endpoints {
		if !in[s] && s.cxActive.Load() == 0 && s.rqActive.Load() == 0 && !s.outlier.ejected() {
			delete(u.endpoints, addr)
		}
	}
}

// connectError marks a failed upstream dial, so that the handler answers
// Envoy's "connection failure" rather than a reset.
type connectError struct{ err error }

func (e *connectError) Error() string { return "upstream connect: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// dial opens an upstream connection and keeps the connection counters.
func (u *upstream) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	st := u.endpoint(addr)
	start := time.Now()
	c, err := u.dialer.DialContext(ctx, network, addr)
	if err != nil {
		st.cxConnectFail.Add(1)
		u.stats.cxConnectFail.Inc()
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			u.stats.cxConnectTimeout.Inc()
		}
		return nil, &connectError{err}
	}
	now := time.Now()
	u.stats.cxConnectMs.RecordDuration(now.Sub(start))
	st.cxTotal.Add(1)
	st.cxActive.Add(1)
	u.stats.cxTotal.Inc()
	u.stats.cxActive.Inc()
	u.stats.noteConnections(u.stats.cxActive.Value())
	return &countedConn{Conn: c, ep: st, cl: u.stats, opened: now}, nil
}

// countedConn keeps a pooled upstream connection's stats: bytes both
// ways, and the active gauges and lifetime once when it closes.
type countedConn struct {
	net.Conn
	ep     *endpointStats
	cl     *clusterStats
	opened time.Time
	closed atomic.Bool
}

// NetConn returns the connection under the counters, for looks at the
// socket (internal/proxy/sockpeek); I/O goes through c.
func (c *countedConn) NetConn() net.Conn { return c.Conn }

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.cl.cxRxBytes.Add(uint64(n))
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.cl.cxTxBytes.Add(uint64(n))
	return n, err
}

// ReadFrom sends a request body, counting it, through the connection's
// own ReadFrom (splice, or a pooled buffer) rather than the 32 KiB buffer
// io.Copy would allocate for a connection that hides it.
func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.Conn}, r)
	}
	c.cl.cxTxBytes.Add(uint64(n))
	return n, err
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.ep.cxActive.Add(-1)
		c.cl.cxActive.Dec()
		c.cl.noteConnections(c.cl.cxActive.Value())
		c.cl.cxDestroy.Inc()
		c.cl.cxLength.RecordDuration(time.Since(c.opened))
	}
	return c.Conn.Close()
}

// CloseWrite lets tcp_proxy half-close upstream connections.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("upstream connection cannot half-close")
}

// clusterView is a cluster as one snapshot sees it: its endpoints with
// their counters, indexed as table.Cluster.Endpoints, on top of the
// cluster's upstream.
type clusterView struct {
	c   *table.Cluster
	up  *upstream
	eps []*endpointRT
	// override replaces every endpoint (Config.App).
	override *endpointRT
	// origDst: the cluster is ORIGINAL_DST; the endpoint is the
	// connection's original destination.
	origDst bool
	// load reports an endpoint's active requests to least-request
	// picking, skip passes over ejected endpoints (nil without outlier
	// detection); bound once here so that picking does not allocate.
	load func(i int) int64
	skip func(i int) bool
	// od are the cluster's outlier-detection stats when it has outlier
	// detection.
	od *outlierStats
	// limits are the cluster's circuit-breaker thresholds.
	limits breakerLimits
	// edges are the calling side's mesh-metric edges, by the virtual
	// service a route reached this cluster for.
	edges map[string]*meshmetrics.Edge
}

// endpointRT is one endpoint with what the request path needs
// precomputed.
type endpointRT struct {
	addr     string // host:port, dialed and used as the request URL's host
	hostname string // DNS name without port, for auto_host_rewrite
	ep       table.Endpoint
	stats    *endpointStats
}

// newClusterView prepares c's endpoints. override, when set, replaces them
// with one endpoint (Config.App).
func newClusterView(c *table.Cluster, u *upstream, override string) *clusterView {
	v := &clusterView{c: c, up: u, origDst: c.Type == table.ClusterOriginalDst, limits: limitsOf(c.Limits)}
	v.load = func(i int) int64 { return v.eps[i].stats.rqActive.Load() }
	if c.Outlier != nil && override == "" && !v.origDst {
		v.od = u.stats.outlier()
	}
	if (c.Outlier != nil || c.HealthCheck != nil) && override == "" && !v.origDst {
		v.skip = func(i int) bool { return v.eps[i].stats.unusable() }
	}
	if override != "" {
		v.override = &endpointRT{addr: override, ep: table.Endpoint{Healthy: true, Weight: 1}, stats: u.endpoint(override)}
	}
	for _, ep := range c.Endpoints {
		e := &endpointRT{ep: ep}
		switch {
		case ep.Address.IsValid():
			e.addr = ep.Address.String()
		default:
			e.addr = ep.Hostname
		}
		if ep.Hostname != "" {
			e.hostname = ep.Hostname
			if h, _, err := net.SplitHostPort(ep.Hostname); err == nil {
				e.hostname = h
			}
		}
		e.stats = u.endpoint(e.addr)
		v.eps = append(v.eps, e)
	}
	return v
}

// endpoints lists what /clusters shows: the override, or the endpoints.
func (v *clusterView) endpoints() []*endpointRT {
	if v.override != nil {
		return []*endpointRT{v.override}
	}
	return v.eps
}

// pick returns the endpoint for a new request or connection by the
// cluster's policy (package table), or nil when the cluster has none to
// offer (Envoy's "no healthy upstream").
func (v *clusterView) pick() *endpointRT {
	if v.override != nil {
		return v.override
	}
	i, ok := v.c.PickIndex(rand.Uint64(), v.skip, v.load)
	if !ok || i < 0 || i >= len(v.eps) {
		return nil
	}
	return v.eps[i]
}

// origDstEndpoint is the endpoint of an ORIGINAL_DST cluster for one
// connection: its original destination when it was redirected; for HTTP
// through a non-intercepted (HTTP_PROXY-style) listener, the request's
// authority, port 80 by default. ok is false when there is nowhere to go.
func (v *clusterView) origDstEndpoint(ci *connInfo, authority string) (*endpointRT, bool) {
	var addr string
	switch {
	case ci != nil && ci.redirected:
		addr = ci.dst.String()
	case authority != "":
		addr = authority
		if _, _, err := net.SplitHostPort(authority); err != nil {
			addr = net.JoinHostPort(authority, "80")
		}
	default:
		return nil, false
	}
	if ci != nil && loopsBack(addr, ci.local) {
		return nil, false
	}
	return &endpointRT{addr: addr, stats: v.up.endpoint(addr), ep: table.Endpoint{Healthy: true, Weight: 1}}, true
}

// loopsBack reports whether addr names the listener a connection came in
// on, so that forwarding there would loop: the listener's own address, or
// its port on localhost, a loopback or the unspecified address.
func loopsBack(addr string, local netip.AddrPort) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != strconv.Itoa(int(local.Port())) {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && (ip.Unmap() == local.Addr().Unmap() || ip.IsLoopback() || ip.IsUnspecified())
}

// runtimeState is a snapshot with its per-cluster views: what one
// request or connection reads through a single atomic load.
type runtimeState struct {
	snap      *table.Snapshot
	appliedAt time.Time
	views     map[*table.Cluster]*clusterView
	byName    map[string]*clusterView

	// scopes and logWriters are what the snapshot acquired for its
	// listeners and chains; released when it is replaced.
	scopes     scopes
	logWriters []*accesslog.Writer
	released   atomic.Bool
}

// release gives back the snapshot's stats scopes and access-log writers
// (once). Requests still running on it may keep using them: released
// handles and closed writers drop updates.
func (rs *runtimeState) release() {
	if !rs.released.CompareAndSwap(false, true) {
		return
	}
	rs.scopes.release()
	for _, w := range rs.logWriters {
		_ = w.Close()
	}
}

// view returns the runtime view of a cluster a route or TCP proxy named;
// nil for a cluster CDS did not deliver.
func (rs *runtimeState) view(c *table.Cluster) *clusterView {
	if c == nil {
		return nil
	}
	if v := rs.views[c]; v != nil {
		return v
	}
	return rs.byName[c.Name]
}
