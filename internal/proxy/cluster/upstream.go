package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/h1client"
	"github.com/meshlens/meshlens/internal/proxy/codec/h2client"
	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/sds"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tlsctx"
	"github.com/meshlens/meshlens/internal/stats"
)

// Upstream is the connection-pool side of one cluster. It outlives
// snapshots: a new snapshot whose cluster has the same connection settings
// (Key) keeps the pooled connections and counters; one whose
// settings changed gets a new upstream and the old one's idle connections
// are closed once in-flight requests had time to finish.
type Upstream struct {
	Name string
	Key  Key
	// h1 speaks HTTP/1.1 (h1client, or net/http's Transport for TLS), H2
	// HTTP/2 (h2c, or h2 over TLS; h2client): the upstream codecs, behind
	// the stream interface. Either may be nil when the
	// cluster never speaks that protocol.
	h1, H2 stream.Upstream
	dialer net.Dialer
	// TLSConf originates TLS for tcp_proxy (the transports hold their own
	// copies); nil for plaintext.
	TLSConf *tls.Config
	Stats   *Stats
	log     *slog.Logger

	// Ejected counts the endpoints outlier detection has ejected now
	// (outlier.go); nextSweep is when its sweeper next looks at them,
	// owned by that goroutine.
	Ejected   atomic.Int64
	nextSweep time.Time
	// Breakers are the attempts, retries and TCP sessions in progress,
	// which the circuit breakers bound (breaker.go).
	Breakers Breakers
	limits   atomic.Pointer[Limits] // the latest snapshot's, for the gauges
	// hc runs the cluster's active health checks (healthcheck.go); only
	// the configuration path touches the field. used: the cluster has had
	// a request or session. view is the latest snapshot's view, for the
	// membership gauges.
	hc   *healthChecker
	used atomic.Bool
	view atomic.Pointer[View]

	mu        sync.Mutex
	endpoints map[string]*EndpointStats // by dialed address; pruned by prune
}

// Key is everything about a cluster that shapes its connections.
type Key struct {
	http2, useDownstream bool
	ConnectTimeout       time.Duration
	maxConns             uint32
	TLS                  string // fingerprint of the UpstreamTLS settings; "" = plaintext
	// OrigDst: the cluster connects to each connection's original
	// destination, so its endpoints are not kept (endpoint).
	origDst bool
}

// EndpointStats are one endpoint's counters, shown by /clusters.
type EndpointStats struct {
	CxActive, CxTotal, CxConnectFail                 atomic.Int64
	RqActive, RqTotal, RqSuccess, RqError, RqTimeout atomic.Int64
	Outlier                                          OutlierHost
	HC                                               HealthHost
}

func KeyOf(c *table.Cluster, def time.Duration) Key {
	k := Key{
		http2:          c.HTTP2,
		useDownstream:  c.UseDownstreamProtocol,
		ConnectTimeout: c.ConnectTimeout,
		maxConns:       c.Limits.MaxConnections,
		origDst:        c.Type == table.ClusterOriginalDst,
	}
	if k.ConnectTimeout <= 0 {
		k.ConnectTimeout = def
	}
	if t := c.TLS; t != nil {
		k.TLS = fmt.Sprintf("%q", []any{t.CertFile, t.KeyFile, t.CAFile, t.MatchSANs, t.SNI, t.ALPN, t.SDSCertName, t.SDSCAName})
	}
	return k
}

// PoolOptions are the proxy-wide settings of the upstream connection
// pools (Config's), which a cluster's own limits override.
type PoolOptions struct {
	MaxConnsPerHost, MaxIdleConnsPerHost int
	IdleTimeout                          time.Duration
	// StdlibHTTP1Client makes plaintext HTTP/1.1 go through net/http's
	// Transport instead of the synchronous client (package h1client).
	StdlibHTTP1Client bool
	// Secrets are the TLS secrets received over SDS.
	Secrets *sds.Store
}

// NewUpstream builds the transports of a cluster, with its stats under
// scope (nil when stats are off). TLS material is read here, so a missing
// file refuses the snapshot.
func NewUpstream(c *table.Cluster, key Key, opts PoolOptions, scope *stats.Scope, log *slog.Logger) (*Upstream, error) {
	u := &Upstream{
		Name:      c.Name,
		Key:       key,
		dialer:    net.Dialer{Timeout: key.ConnectTimeout, KeepAlive: 30 * time.Second},
		endpoints: map[string]*EndpointStats{},
		Stats:     NewStats(scope),
		log:       log,
	}
	if c.TLS != nil {
		var err error
		if u.TLSConf, err = tlsctx.UpstreamConfig(c.TLS, opts.Secrets); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
		}
	}
	maxConns := opts.MaxConnsPerHost
	if key.maxConns > 0 {
		maxConns = int(key.maxConns)
	}
	dialH1 := func(ctx context.Context, network, addr string) (net.Conn, error) {
		u.Stats.cxHTTP1Total.Inc()
		return u.Dial(ctx, network, addr)
	}
	switch {
	case c.HTTP2 && !c.UseDownstreamProtocol:
	case u.TLSConf == nil && !opts.StdlibHTTP1Client:
		// Plaintext HTTP/1.1: the synchronous client, which reads and
		// writes on the request's goroutine (no hand-off per request).
		u.h1 = &h1client.Transport{
			Dial:                   dialH1,
			MaxIdleConnsPerHost:    opts.MaxIdleConnsPerHost,
			MaxConnsPerHost:        maxConns,
			IdleConnTimeout:        opts.IdleTimeout,
			MaxResponseHeaderBytes: 1 << 20,
		}
	default:
		t := u.stdTransport(c, maxConns, opts)
		t.DialContext = dialH1
		u.h1 = withHandshake(u, t)
	}
	if c.HTTP2 || c.UseDownstreamProtocol {
		u.H2 = u.h2Transport(c, maxConns, opts)
	}
	return u, nil
}

// h2Transport is the cluster's HTTP/2 codec: h2c with prior knowledge,
// or h2 over TLS, whose handshake must negotiate h2 by ALPN. Dials and
// handshakes go through Dial and Handshake, so the connection and ssl.*
// stats count them.
func (u *Upstream) h2Transport(c *table.Cluster, maxConns int, opts PoolOptions) *h2client.Transport {
	var cfg *tls.Config
	if u.TLSConf != nil {
		cfg = u.TLSConf.Clone()
		cfg.NextProtos = alpnOr(c.TLS.ALPN, "h2")
	}
	return &h2client.Transport{
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			u.Stats.cxHTTP2Total.Inc()
			conn, err := u.Dial(ctx, "tcp", addr)
			if err != nil || cfg == nil {
				return conn, err
			}
			tc, err := u.Handshake(ctx, conn, cfg)
			if err != nil {
				return nil, err
			}
			if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
				_ = tc.Close()
				return nil, &ConnectError{fmt.Errorf("TLS handshake with %s negotiated ALPN %q, not h2", addr, p)}
			}
			return tc, nil
		},
		TLS:                    cfg != nil,
		MaxConnsPerHost:        maxConns,
		IdleConnTimeout:        opts.IdleTimeout,
		MaxResponseHeaderBytes: 1 << 20,
	}
}

// stdTransport is a net/http Transport for the cluster's HTTP/1.1.
func (u *Upstream) stdTransport(c *table.Cluster, maxConns int, opts PoolOptions) *http.Transport {
	tlsConf := u.TLSConf
	t := &http.Transport{
		Proxy:                  nil, // never the environment's HTTP_PROXY
		DialContext:            u.Dial,
		MaxIdleConnsPerHost:    opts.MaxIdleConnsPerHost,
		MaxConnsPerHost:        maxConns,
		IdleConnTimeout:        opts.IdleTimeout,
		TLSHandshakeTimeout:    u.Key.ConnectTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true, // forward bodies as they are
		MaxResponseHeaderBytes: 1 << 20,
		WriteBufferSize:        16 << 10,
		ReadBufferSize:         16 << 10,
		Protocols:              new(http.Protocols),
	}
	t.Protocols.SetHTTP1(true)
	if tlsConf != nil {
		t.TLSClientConfig = tlsConf.Clone()
		t.TLSClientConfig.NextProtos = alpnOr(c.TLS.ALPN, "http/1.1")
	}
	return t
}

// UnservedUpstream stands for a cluster whose TLS cannot be set up (SDS):
// stats and no transports, so its views have no endpoints.
func UnservedUpstream(name string, key Key, scope *stats.Scope, log *slog.Logger) *Upstream {
	return &Upstream{Name: name, Key: key, endpoints: map[string]*EndpointStats{}, Stats: NewStats(scope), log: log}
}

// unserved reports whether u is an unservedUpstream.
func (u *Upstream) unserved() bool { return u.h1 == nil && u.H2 == nil && u.TLSConf == nil }

// Provision makes v the upstream's current view: endpoints that left are
// pruned, the breakers' thresholds, health checks and membership gauges
// follow the new snapshot.
func (u *Upstream) Provision(v *View) {
	u.view.Store(v)
	u.prune(v)
	u.setLimits(v.limits)
	u.syncHealthChecks(v)
	u.Stats.setMembership(v)
	if v.Cluster.Panic {
		u.Stats.lbHealthyPanic.Inc()
	}
}

// KnownEndpoints is how many endpoint addresses the upstream keeps
// counters for; has reports whether addr is one of them.
func (u *Upstream) KnownEndpoints(addr string) (n int, has bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, has = u.endpoints[addr]
	return len(u.endpoints), has
}

// withHandshake makes a TLS transport run its handshakes through
// Upstream.Handshake, for the cluster's ssl.* stats; a plaintext one is
// returned as it is.
func withHandshake(u *Upstream, t *http.Transport) *http.Transport {
	if t.TLSClientConfig == nil {
		return t
	}
	cfg, dial := t.TLSClientConfig, t.DialContext
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return u.Handshake(ctx, conn, cfg)
	}
	return t
}

func alpnOr(alpn []string, def string) []string {
	if len(alpn) > 0 {
		return alpn
	}
	return []string{def}
}

// Transport returns the transport for a request that came in over
// downstream protocol major version downMajor.
func (u *Upstream) Transport(downMajor int) stream.Upstream {
	switch {
	case u.Key.useDownstream && downMajor == 2:
		return u.H2
	case u.Key.useDownstream:
		return u.h1
	case u.Key.http2:
		return u.H2
	}
	return u.h1
}

// CloseIdle closes the pooled connections nobody uses.
func (u *Upstream) CloseIdle() {
	if u.h1 != nil {
		u.h1.CloseIdleConnections()
	}
	if u.H2 != nil {
		u.H2.CloseIdleConnections()
	}
}

// Endpoint returns the counters of an endpoint address, creating them.
// An ORIGINAL_DST cluster's destinations are not kept (they are any
// address its clients reach): each gets counters of its own that /clusters
// does not show.
func (u *Upstream) Endpoint(addr string) *EndpointStats {
	if u.Key.origDst {
		return &EndpointStats{}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.endpoints[addr]
	if st == nil {
		st = &EndpointStats{}
		u.endpoints[addr] = st
	}
	return st
}

// Unusable reports whether picking should pass the endpoint over: it is
// ejected by outlier detection or fails its active health checks.
func (s *EndpointStats) Unusable() bool {
	return s.Outlier.Ejected() || s.HC.Failed.Load()
}

// refreshMembership updates the membership gauges after an endpoint's
// health changed.
func (u *Upstream) refreshMembership() {
	if v := u.view.Load(); v != nil {
		u.Stats.setMembership(v)
	}
}

// MarkUsed notes that the cluster has had traffic (for the health checks'
// interval).
func (u *Upstream) MarkUsed() {
	if !u.used.Load() {
		u.used.Store(true)
	}
}

// Handshake originates TLS on conn with cfg within the cluster's connect
// timeout, and counts the outcome in the cluster's ssl.* stats. A failure
// closes conn and is a connect failure.
func (u *Upstream) Handshake(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, u.Key.ConnectTimeout)
	defer cancel()
	tc := tls.Client(conn, cfg)
	err := tc.HandshakeContext(ctx)
	u.Stats.ssl.Get(u.Stats.scope).Record(err, tc.ConnectionState(), false)
	if err != nil {
		_ = conn.Close()
		return nil, &ConnectError{err}
	}
	return tc, nil
}

// AttemptDone ends an attempt that attempt counted as active.
func (u *Upstream) AttemptDone(ep *EndpointStats) {
	ep.RqActive.Add(-1)
	u.Stats.RqActive.Dec()
	u.requestDone()
}

// prune forgets the counters of addresses that left the cluster (v is
// the new snapshot's view) and have nothing in flight and no ejection
// pending, so that a long-running sidecar whose endpoints come and go
// does not keep every address it ever had.
func (u *Upstream) prune(v *View) {
	in := make(map[*EndpointStats]bool, len(v.Hosts)+1)
	for _, e := range v.Endpoints() {
		in[e.Stats] = true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for addr, s := range u.endpoints {
		if !in[s] && s.CxActive.Load() == 0 && s.RqActive.Load() == 0 && !s.Outlier.Ejected() {
			delete(u.endpoints, addr)
		}
	}
}
