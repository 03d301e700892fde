package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/stats"
)

// Active health checking, as Envoy's: the calling side checks every
// endpoint of a cluster that has health_checks (what App Mesh's listener
// healthCheck becomes on the clusters of the node's clients), and picking
// passes over the endpoints that fail.
//
//   - A check is an HTTP GET of the path (HTTP/1.1, or HTTP/2 when the
//     check says so; over TLS when the cluster originates TLS) that must
//     answer 200, a gRPC Health/Check that must answer SERVING, or a TCP
//     connect. Each has the check's timeout. HTTP and gRPC checks keep
//     their connection between checks.
//   - An endpoint starts failing, with a check pending; its first
//     successful check makes it healthy (Envoy: "during startup, only a
//     single successful health check is required"). After that,
//     unhealthy_threshold failures in a row take it out and
//     healthy_threshold successes in a row bring it back.
//   - Checks run every interval once the cluster has had a request or a
//     TCP session, and every noTrafficInterval before (Envoy's
//     no_traffic_interval), so an idle sidecar does not load every
//     instance it might call; the first request brings the normal pace
//     within an interval.
//   - When every endpoint fails, picking uses them all, as Envoy's panic
//     mode.
//
// The checker belongs to the cluster's upstream, so a configuration update
// that keeps the cluster's connection settings and health check keeps the
// endpoints' health. Each checked endpoint has a timer, and a goroutine
// only while its check runs.

// NoTrafficInterval is Envoy's no_traffic_interval default.
const NoTrafficInterval = 60 * time.Second

// HealthCheckUserAgent is the User-Agent of HTTP checks, Envoy's.
const HealthCheckUserAgent = "Envoy/HC"

// IsHealthCheck reports whether a request is an active health check
// from a proxy: Envoy's User-Agent, which ours sends too.
func IsHealthCheck(r *http.Request) bool {
	ua := r.Header["User-Agent"]
	return len(ua) == 1 && ua[0] == HealthCheckUserAgent
}

// HealthHost is one endpoint's active health.
type HealthHost struct {
	// Failed: the endpoint fails its checks, or has not passed one yet.
	Failed atomic.Bool
	// Pending: no check has completed since checking began.
	Pending atomic.Bool
}

// HealthStats are a cluster's cluster.<name>.health_check.* stats.
type HealthStats struct {
	Attempt, Success, Failure, NetworkFailure *stats.Counter
	Healthy                                   *stats.Gauge
}

// healthChecker runs one cluster's active health checks.
type healthChecker struct {
	u     *Upstream
	cfg   table.HealthCheck
	stats *HealthStats
	ctx   context.Context
	stop  context.CancelFunc

	mu       sync.Mutex
	sessions map[*EndpointStats]*hcSession
}

// hcSession checks one endpoint on a timer: no goroutine waits between
// checks, so a sidecar that checks thousands of endpoints (a large mesh
// that allows all egress) holds only a timer and a prober for each.
type hcSession struct {
	c      *healthChecker
	s      *EndpointStats
	addr   string
	ctx    context.Context
	cancel context.CancelFunc
	every  time.Duration

	mu      sync.Mutex // a check, and stop, run alone
	timer   *time.Timer
	p       prober
	stopped bool
	checked bool          // a check has run
	idle    time.Duration // since the last check, while the cluster had no traffic
	okRun   uint32
	failRun uint32
}

// Health returns the cluster's health-check stats, creating them on first
// use (when a snapshot is applied).
func (c *Stats) Health() *HealthStats {
	if h := c.hc.Load(); h != nil {
		return h
	}
	h := &HealthStats{}
	if sc := c.scope; sc != nil {
		h = &HealthStats{
			Attempt:        sc.Counter("health_check.attempt"),
			Success:        sc.Counter("health_check.success"),
			Failure:        sc.Counter("health_check.failure"),
			NetworkFailure: sc.Counter("health_check.network_failure"),
			Healthy:        sc.Gauge("health_check.healthy"),
		}
	}
	if c.hc.CompareAndSwap(nil, h) {
		return h
	}
	return c.hc.Load()
}

// syncHealthChecks makes the upstream check exactly the view's endpoints
// by the view's health check: a new or changed check starts afresh, an
// endpoint that left stops being checked, and a cluster without a check
// (or whose endpoint is the local app or the original destination) has
// every endpoint in.
func (u *Upstream) syncHealthChecks(v *View) {
	hc := v.Cluster.HealthCheck
	if hc == nil || v.override != nil || v.OrigDst || len(v.Hosts) == 0 {
		u.StopHealthChecks()
		return
	}
	if u.hc != nil && u.hc.cfg != *hc {
		u.StopHealthChecks()
	}
	if u.hc == nil {
		ctx, cancel := context.WithCancel(context.Background())
		u.hc = &healthChecker{u: u, cfg: *hc, stats: u.Stats.Health(), ctx: ctx, stop: cancel, sessions: map[*EndpointStats]*hcSession{}}
	}
	u.hc.sync(v)
}

// StopHealthChecks ends the upstream's checks and puts every endpoint
// back in; it waits for the check goroutines.
func (u *Upstream) StopHealthChecks() {
	c := u.hc
	if c == nil {
		return
	}
	u.hc = nil
	c.stop()
	c.mu.Lock()
	sessions := c.sessions
	c.sessions = nil
	c.mu.Unlock()
	for s, sess := range sessions {
		sess.stop()
		s.HC.Failed.Store(false)
		s.HC.Pending.Store(false)
	}
	c.stats.Healthy.Set(0)
	u.refreshMembership()
}

// sync starts sessions for the view's new endpoints and stops those of
// endpoints that left.
func (c *healthChecker) sync(v *View) {
	in := make(map[*EndpointStats]*Endpoint, len(v.Hosts))
	for _, e := range v.Hosts {
		in[e.Stats] = e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for s, sess := range c.sessions {
		if in[s] == nil {
			sess.stop()
			delete(c.sessions, s)
			if !s.HC.Failed.Load() {
				c.stats.Healthy.Dec()
			}
			s.HC.Failed.Store(false)
			s.HC.Pending.Store(false)
		}
	}
	for s, e := range in {
		if c.sessions[s] != nil {
			continue
		}
		s.HC.Failed.Store(true)
		s.HC.Pending.Store(true)
		c.sessions[s] = c.start(s, checkAddr(e))
	}
}

// checkAddr is where an endpoint is checked: its address, on its
// health_check_config port when EDS gave one.
func checkAddr(e *Endpoint) string {
	if e.Spec.HealthCheckPort == 0 {
		return e.Addr
	}
	host, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return e.Addr
	}
	return net.JoinHostPort(host, strconv.Itoa(int(e.Spec.HealthCheckPort)))
}

// start begins checking one endpoint: the first check at once, with a
// little jitter that spreads the checks of many endpoints.
func (c *healthChecker) start(s *EndpointStats, addr string) *hcSession {
	ctx, cancel := context.WithCancel(c.ctx)
	sess := &hcSession{c: c, s: s, addr: addr, ctx: ctx, cancel: cancel,
		every: max(c.cfg.Interval, time.Millisecond), p: c.newProber(addr)}
	sess.mu.Lock()
	sess.timer = time.AfterFunc(rand.N(max(sess.every/10, time.Millisecond)), sess.tick)
	sess.mu.Unlock()
	return sess
}

// stop ends the session: an in-flight check is cancelled and waited for.
func (h *hcSession) stop() {
	h.cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.timer.Stop()
	h.p.close()
}

// tick runs one check, when one is due, and arms the next.
func (h *hcSession) tick() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	defer h.timer.Reset(h.every)
	c := h.c
	if h.checked && !c.u.used.Load() && h.idle+h.every < NoTrafficInterval {
		// No traffic yet: check every noTrafficInterval, but look every
		// interval so that the first request brings the normal pace.
		h.idle += h.every
		return
	}
	h.checked, h.idle = true, 0
	c.stats.Attempt.Inc()
	cctx, cancel := context.WithTimeout(h.ctx, c.cfg.Timeout)
	err, network := h.p.probe(cctx)
	cancel()
	if h.ctx.Err() != nil {
		return
	}
	st := &h.s.HC
	pending := st.Pending.Swap(false)
	if err == nil {
		c.stats.Success.Inc()
		h.okRun, h.failRun = h.okRun+1, 0
		if st.Failed.Load() && (pending || h.okRun >= max(c.cfg.HealthyThreshold, 1)) {
			st.Failed.Store(false)
			c.stats.Healthy.Inc()
			c.u.refreshMembership()
			c.u.log.Info("health check passed; endpoint healthy", "cluster", c.u.Name, "endpoint", h.addr)
		}
		return
	}
	c.stats.Failure.Inc()
	if network {
		c.stats.NetworkFailure.Inc()
	}
	h.okRun, h.failRun = 0, h.failRun+1
	switch {
	case !st.Failed.Load() && h.failRun >= max(c.cfg.UnhealthyThreshold, 1):
		st.Failed.Store(true)
		c.stats.Healthy.Dec()
		c.u.refreshMembership()
		c.u.log.Warn("health check failed; endpoint unhealthy", "cluster", c.u.Name, "endpoint", h.addr, "err", err)
	case pending:
		c.u.log.Info("first health check failed", "cluster", c.u.Name, "endpoint", h.addr, "err", err)
	}
}

// prober performs one kind of check against one address.
type prober interface {
	// probe runs one check; network says a failure was a connection
	// failure or timeout rather than a bad answer.
	probe(ctx context.Context) (err error, network bool)
	close()
}

func (c *healthChecker) newProber(addr string) prober {
	host := c.cfg.HTTPHost
	if host == "" {
		host = c.u.Name // Envoy's default: the cluster name
	}
	switch {
	case c.cfg.GRPC:
		return &grpcProber{addr: addr, authority: host, service: c.cfg.GRPCService, tls: c.u.TLSConf}
	case c.cfg.HTTPPath != "":
		return newHTTPProber(addr, host, c.cfg.HTTPPath, c.cfg.HTTP2, c.u.TLSConf)
	default:
		return &tcpProber{addr: addr}
	}
}

// tcpProber connects and closes.
type tcpProber struct{ addr string }

func (p *tcpProber) probe(ctx context.Context) (error, bool) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return err, true
	}
	_ = conn.Close()
	return nil, false
}

func (p *tcpProber) close() {}

// httpProber GETs a path on a connection kept between checks.
type httpProber struct {
	client *http.Client
	tr     *http.Transport
	url    string
	host   string
}

// newHTTPProber checks path on addr. A path without its leading "/"
// ("health", as App Mesh accepted it) gets one: appended as it is to the
// address it would name another port ("10.0.0.1:8080health") and fail
// every check. The control plane sends the path normalised; this covers
// any other xDS server.
func newHTTPProber(addr, host, path string, h2 bool, tlsConf *tls.Config) *httpProber {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	tr := &http.Transport{
		Proxy:                  nil,
		MaxIdleConnsPerHost:    1,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
		Protocols:              new(http.Protocols),
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
		tr.TLSClientConfig = tlsConf.Clone()
	}
	switch {
	case h2 && tlsConf != nil:
		tr.Protocols.SetHTTP2(true)
		tr.TLSClientConfig.NextProtos = []string{"h2"}
	case h2:
		tr.Protocols.SetUnencryptedHTTP2(true)
	default:
		tr.Protocols.SetHTTP1(true)
		if tlsConf != nil {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
	}
	return &httpProber{
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		tr:     tr,
		url:    scheme + "://" + addr + path,
		host:   host,
	}
}

func (p *httpProber) probe(ctx context.Context) (error, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err, false
	}
	req.Host = p.host
	req.Header.Set("User-Agent", HealthCheckUserAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		return err, true
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d, want 200", resp.StatusCode), false
	}
	return nil, false
}

func (p *httpProber) close() { p.tr.CloseIdleConnections() }

// grpcProber calls grpc.health.v1.Health/Check on a connection kept
// between checks.
type grpcProber struct {
	addr, authority, service string
	tls                      *tls.Config
	conn                     *grpc.ClientConn
}

func (p *grpcProber) probe(ctx context.Context) (error, bool) {
	if p.conn == nil {
		creds := insecure.NewCredentials()
		if p.tls != nil {
			creds = credentials.NewTLS(p.tls.Clone())
		}
		conn, err := grpc.NewClient("passthrough:///"+p.addr, grpc.WithTransportCredentials(creds), grpc.WithAuthority(p.authority),
			grpc.WithUserAgent(HealthCheckUserAgent))
		if err != nil {
			return err, true
		}
		p.conn = conn
	}
	resp, err := healthpb.NewHealthClient(p.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.service})
	if err != nil {
		c := status.Code(err)
		return err, c == codes.Unavailable || c == codes.DeadlineExceeded
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("status %s, want SERVING", st), false
	}
	return nil, false
}

func (p *grpcProber) close() {
	if p.conn != nil {
		_ = p.conn.Close()
	}
}
