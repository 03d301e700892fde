package hcm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/proxy/tunnel"
)

// HTTP/1.1 upgrades (WebSocket), as Envoy's upgrade_configs: a request
// with "Connection: upgrade" and an Upgrade type the connection manager
// allows is routed like any other, sent to the chosen endpoint on a
// connection of its own with its Upgrade and Connection headers, and when
// the endpoint answers 101 the proxy relays the 101 and then copies bytes
// both ways until either side closes, as a TCP proxy does (half-closes
// passed on, the stream idle timeout, the drain). Any other answer is
// relayed as a plain response. An upgrade type the connection manager
// does not allow gets 403, as Envoy answers.

// upgradeType is the protocol an HTTP/1.x request asks to switch to, or
// "" when it is not an upgrade request.
func upgradeType(r *http.Request) string {
	if r.ProtoMajor != 1 {
		return ""
	}
	up := r.Header["Upgrade"]
	if len(up) == 0 || !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") {
		return ""
	}
	typ, _, _ := strings.Cut(up[0], ",")
	typ, _, _ = strings.Cut(typ, "/") // "websocket", "h2c", "foo/2"
	typ = strings.TrimSpace(typ)
	if strings.EqualFold(typ, "h2c") {
		// HTTP/2's cleartext upgrade (curl --http2 asks for it): as
		// Envoy does, the request goes on as HTTP/1.1, its hop-by-hop
		// Upgrade dropped.
		return ""
	}
	return typ
}

// tunnelAttempt is the endpoint a tunnel (upgrade or CONNECT) goes to,
// counted as an attempt on it until done is called.
type tunnelAttempt struct {
	view  *cluster.View
	ep    *cluster.Endpoint
	start time.Time
}

// done ends the attempt's accounting.
func (a *tunnelAttempt) done() {
	a.view.Up.AttemptDone(a.ep.Stats)
	a.view.Up.Stats.RqTime.RecordDuration(time.Since(a.start))
}

// beginTunnel picks the endpoint for a tunnel to authority's route
// cluster and admits it past the circuit breakers; when it cannot, it
// answers as a request would be answered and returns nil.
func (h *Server) beginTunnel(s stream.Downstream, ex *Exchange, view *cluster.View, authority string) *tunnelAttempt {
	var ep *cluster.Endpoint
	if view.OrigDst {
		ep, _ = OrigDstEndpoint(view, ex.conn.ListenerInfo(), authority)
	} else {
		ep = view.Pick()
	}
	if ep == nil {
		view.Up.Stats.CxNoneHealthy.Inc()
		ex.Reply(http.StatusServiceUnavailable, BodyNoHealthyUpstream, accesslog.NoHealthyUpstream)
		return nil
	}
	view.Up.MarkUsed()
	if !view.AdmitRequest(false) {
		s.Header()["X-Envoy-Overflow"] = []string{"true"}
		ex.Reply(http.StatusServiceUnavailable, BodyOverflow, accesslog.UpstreamOverflow)
		return nil
	}
	ex.Endpoint = ep
	ex.Attempts = 1
	cs := view.Up.Stats
	ep.Stats.RqTotal.Add(1)
	cs.RqTotal.Inc()
	ep.Stats.RqActive.Add(1)
	cs.RqActive.Inc()
	return &tunnelAttempt{view: view, ep: ep, start: time.Now()}
}

// failTunnel answers a tunnel whose upstream side failed, as a request's
// failure is answered, and tells outlier detection.
func (h *Server) failTunnel(r *http.Request, ex *Exchange, a *tunnelAttempt, err error) {
	if r.Context().Err() == nil {
		a.view.Outcome(a.ep, true)
	}
	a.ep.Stats.RqError.Add(1)
	cs := a.view.Up.Stats
	var ce *cluster.ConnectError
	switch {
	case r.Context().Err() != nil:
		ex.Flags |= accesslog.DownstreamConnectionTermination
	case errors.As(err, &ce):
		ex.Reply(http.StatusServiceUnavailable, BodyConnectFailure, accesslog.UpstreamConnectionFailure)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		cs.RqTimeout.Inc()
		ex.Reply(http.StatusGatewayTimeout, BodyTimeout, accesslog.UpstreamRequestTimeout)
	default:
		cs.RqRxReset.Inc()
		ex.Reply(http.StatusServiceUnavailable, BodyReset, accesslog.UpstreamConnectionTermination)
	}
}

// streamIdle is the stream idle timeout of a route: its own, else the
// connection manager's, else the proxy's default.
func (h *Server) streamIdle(hcm *table.HTTPManager, route *table.Route) time.Duration {
	idle := hcm.StreamIdleTimeout
	if route.IdleTimeout > 0 {
		idle = route.IdleTimeout
	}
	if idle <= 0 {
		idle = h.env.StreamIdleTimeout
	}
	return idle
}

// relay takes the downstream connection over, writes head to it (the
// 101 or 200 that opens the tunnel) with what the upstream sent early
// (upEarly, may be nil), passes on what the client sent early, and then
// copies both ways until the tunnel ends. It counts the tunnel in the
// connection manager's upgrade stats and the bytes in ex.
func (h *Server) relay(s stream.Downstream, ex *Exchange, up net.Conn, upEarly *bufio.Reader, head func(*bufio.Writer), idle time.Duration) {
	down, err := hijack(s)
	if err != nil {
		h.env.Log.Warn("cannot take the downstream connection over for a tunnel", "err", err)
		ex.Flags |= accesslog.DownstreamConnectionTermination
		return
	}
	sess := tunnel.NewPair(down.Conn, up)
	defer sess.Close()
	if !h.tunnels.Add(sess) {
		return // draining
	}
	defer h.tunnels.Remove(sess)
	hs := ex.Stats
	hs.cxUpgradesTotal.Inc()
	hs.cxUpgradesActive.Inc()
	defer hs.cxUpgradesActive.Dec()

	bw := down.rw.Writer
	head(bw)
	if upEarly != nil {
		if n := upEarly.Buffered(); n > 0 {
			b, _ := upEarly.Peek(n)
			_, _ = bw.Write(b)
			ex.Sent += uint64(n)
		}
	}
	if err := bw.Flush(); err != nil {
		return
	}
	if n := down.rw.Reader.Buffered(); n > 0 {
		b, _ := down.rw.Reader.Peek(n)
		if _, err := up.Write(b); err != nil {
			return
		}
		ex.received += uint64(n)
	}
	toDown, toUp, idled := tunnel.PipeBoth(down.Conn, up, idle)
	ex.Sent += uint64(toDown)
	ex.received += uint64(toUp)
	if idled {
		hs.RqIdleTimeout.Inc()
		ex.Flags |= accesslog.StreamIdleTimeout
	}
}

// upgrade forwards an upgrade request to the route's cluster and, when
// the endpoint switches protocols, tunnels the two connections.
func (h *Server) upgrade(s stream.Downstream, r *http.Request, ex *Exchange, hcm *table.HTTPManager, route *table.Route, view *cluster.View) {
	a := h.beginTunnel(s, ex, view, r.Host)
	if a == nil {
		return
	}
	defer a.done()
	ep := a.ep

	// The head to send: the request's, with its hop-by-hop fields gone
	// but for the two that ask for the upgrade.
	upgrade := r.Header["Upgrade"]
	PrepareRequestHeaders(r, h.scheme)
	r.Header["Connection"] = []string{"Upgrade"}
	r.Header["Upgrade"] = upgrade
	target := ex.Req.path
	if route.HasPathRewrite() {
		if _, set := r.Header["X-Envoy-Original-Path"]; !set {
			r.Header["X-Envoy-Original-Path"] = []string{ex.Req.path}
		}
		target = route.RewritePath(ex.Req.path)
	}
	if u, err := url.Parse(target); err == nil && u.IsAbs() {
		target = u.RequestURI() // absolute-form, as sent to a forward proxy
	}
	host := r.Host
	if route.HostRewrite != "" {
		host = route.HostRewrite
	} else if route.AutoHostRewrite && ep.Hostname != "" {
		host = ep.Hostname
	}

	timeout := route.Timeout
	if timeout <= 0 {
		timeout = defaultRouteTimeout
	}
	up, resp, br, err := h.openUpgrade(r.Context(), view, ep, r.Method, target, host, r.Header, time.Now().Add(timeout))
	if err != nil {
		h.failTunnel(r, ex, a, err)
		return
	}
	defer up.Close()
	ex.FirstByte = time.Now()
	view.Up.Stats.CountResponse(ep.Stats, resp.StatusCode)
	view.Outcome(ep, resp.StatusCode >= 500)
	ex.Status = resp.StatusCode

	hdr := s.Header()
	for k, vv := range resp.Header {
		if IsHopByHop(k) && k != "Connection" && k != "Upgrade" {
			continue
		}
		hdr[k] = vv
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Not upgraded: an ordinary response, on a connection nobody
		// else will use.
		delete(hdr, "Connection")
		delete(hdr, "Upgrade")
		s.WriteHeader(resp.StatusCode)
		n, _ := io.Copy(s, resp.Body)
		ex.Sent = uint64(n)
		_ = resp.Body.Close()
		return
	}
	h.relay(s, ex, up, br, func(bw *bufio.Writer) {
		bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
		_ = hdr.Write(bw)
		bw.WriteString("\r\n")
	}, h.streamIdle(hcm, route))
}

// connect opens a CONNECT tunnel from the egress: the authority is
// routed as a GET of "/" to it would be, and the tunnel goes to the
// chosen endpoint (for the mesh's passthrough cluster, the authority
// itself) over the cluster's transport, TLS included.
func (h *Server) connect(s stream.Downstream, r *http.Request, ex *Exchange, cc *ChainConfig) {
	authority := r.Host
	if _, port, err := net.SplitHostPort(authority); err != nil || port == "" {
		ex.Reply(http.StatusBadRequest, "CONNECT: the authority must be host:port", 0)
		return
	}
	ex.Req.path = "/"
	route, view, ans := routeTo(ex, cc)
	if view == nil {
		ex.Reply(ans.status, ans.body, ans.flags)
		return
	}
	if e := view.Edges[meshmetrics.EdgeKey{Service: route.Meta.VirtualService, Route: route.Name}]; e != nil {
		ex.edge = e
	}
	a := h.beginTunnel(s, ex, view, authority)
	if a == nil {
		return
	}
	defer a.done()
	up, err := h.dialTunnel(r.Context(), view, a.ep)
	if err != nil {
		h.failTunnel(r, ex, a, err)
		return
	}
	defer up.Close()
	view.Outcome(a.ep, false)
	ex.FirstByte = time.Now()
	view.Up.Stats.CountResponse(a.ep.Stats, http.StatusOK)
	ex.Status = http.StatusOK
	h.relay(s, ex, up, nil, func(bw *bufio.Writer) {
		bw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
	}, h.streamIdle(cc.Chain.HTTP, route))
}

// maxUpgradeResponseHead bounds the status line and headers an endpoint
// answers an upgrade with (as MaxResponseHeaderBytes does for requests).
const maxUpgradeResponseHead = 1 << 20

// defaultRouteTimeout bounds the wait for the upgrade answer when the
// route has no timeout (Envoy's route timeout default).
const defaultRouteTimeout = 15 * time.Second

// dialTunnel connects to ep, originating TLS when the cluster does, within
// the cluster's connect timeout.
func (h *Server) dialTunnel(ctx context.Context, view *cluster.View, ep *cluster.Endpoint) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, view.Up.Key.ConnectTimeout)
	defer cancel()
	conn, err := view.Up.Dial(dctx, "tcp", ep.Addr)
	if err != nil {
		return nil, err
	}
	if cfg := view.Up.TLSConf; cfg != nil {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		return view.Up.Handshake(ctx, conn, cfg)
	}
	return conn, nil
}

// openUpgrade connects to ep, sends the request head and reads the
// response head, the last two before deadline. On success the caller
// owns conn; br holds what the endpoint sent after its head.
func (h *Server) openUpgrade(ctx context.Context, view *cluster.View, ep *cluster.Endpoint, method, target, host string, hdr http.Header, deadline time.Time) (_ net.Conn, resp *http.Response, br *bufio.Reader, err error) {
	conn, err := h.dialTunnel(ctx, view, ep)
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = conn.Close() // conn, not the result, which the failing return sets to nil
		}
	}()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	bw := bufio.NewWriterSize(conn, 4<<10)
	bw.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n")
	if err := hdr.Write(bw); err != nil {
		return nil, nil, nil, err
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return nil, nil, nil, err
	}
	// A 101 has no body (net/http gives it http.NoBody), so after it br
	// holds only what the endpoint sent in the new protocol. The head is
	// bounded as the transports bound a response head.
	lr := &io.LimitedReader{R: conn, N: maxUpgradeResponseHead}
	br = bufio.NewReaderSize(lr, 4<<10)
	resp, err = http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		if lr.N <= 0 {
			err = fmt.Errorf("upgrade response head over %d bytes: %w", maxUpgradeResponseHead, err)
		}
		return nil, nil, nil, err
	}
	lr.N = math.MaxInt64 // the body of a refused upgrade reads on
	_ = conn.SetDeadline(time.Time{})
	return conn, resp, br, nil
}

// hijacked is a downstream connection taken over for a tunnel.
type hijacked struct {
	net.Conn
	rw *bufio.ReadWriter
}

// hijack takes the downstream connection over; the HTTP/1.1 framing guard
// stops reading it as requests.
func hijack(s stream.Downstream) (*hijacked, error) {
	c, rw, err := s.Hijack()
	if err != nil {
		return nil, err
	}
	if g, ok := c.(interface{ StopScanning() }); ok {
		g.StopScanning()
	}
	_ = c.SetDeadline(time.Time{})
	return &hijacked{Conn: c, rw: rw}, nil
}

// isTimeout reports a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
