package tunnel

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/cluster"
	"github.com/meshlens/meshlens/internal/proxy/meshmetrics"
	"github.com/meshlens/meshlens/internal/stats"
)

// Stats are a tcp_proxy's tcp.<stat_prefix>.* stats.
type Stats struct {
	CxTotal, CxNoRoute, RxBytes, TxBytes, IdleTimeout *stats.Counter
}

// NewStats resolves the stats under sc; with a nil sc every handle is a
// no-op.
func NewStats(sc *stats.Scope) *Stats {
	if sc == nil {
		return &Stats{}
	}
	return &Stats{
		CxTotal:     sc.Counter("downstream_cx_total"),
		CxNoRoute:   sc.Counter("downstream_cx_no_route"),
		RxBytes:     sc.Counter("downstream_cx_rx_bytes_total"),
		TxBytes:     sc.Counter("downstream_cx_tx_bytes_total"),
		IdleTimeout: sc.Counter("idle_timeout"),
	}
}

// Log is one access log of a tcp_proxy chain.
type Log struct {
	Format *accesslog.Format
	Writer *accesslog.Writer
}

// TCP is one tcp_proxy session to run: the downstream connection (after
// the listener terminated TLS when the chain asks for it) and what the
// listener and the chain decided for it.
type TCP struct {
	Down net.Conn
	// Start is when the listener handed the connection over, the start
	// of the session's duration.
	Start time.Time
	// Remote, Dst, ID and ServerName describe the downstream connection
	// for the access log.
	Remote, Dst netip.AddrPort
	ID          uint64
	ServerName  string

	// View is the cluster the chain picked, nil when CDS did not deliver
	// it (counted as downstream_cx_no_route). For an ORIGINAL_DST
	// cluster, OrigDst is the connection's destination, nil when there is
	// nowhere to go.
	View    *cluster.View
	OrigDst *cluster.Endpoint
	// Edge is the mesh-metric edge the session is counted on once
	// connected, nil when it is not counted.
	Edge        *meshmetrics.Edge
	IdleTimeout time.Duration
	Stats       *Stats
	Logs        []Log

	Listener string
	Log      *slog.Logger
}

// Run proxies the session until both directions end, either side fails,
// or it is idle for IdleTimeout; sessions tracks it for the listener's
// drain. The outcome of the connect feeds outlier detection, as Envoy's
// tcp_proxy reports it.
func (t *TCP) Run(sessions *Set) {
	s := NewPair(t.Down, nil)
	if !sessions.Add(s) {
		_ = t.Down.Close()
		return
	}
	defer func() {
		s.Close()
		sessions.Remove(s)
	}()
	var o outcome
	defer t.finish(&o)
	up, admitted := t.connect(&o)
	if admitted {
		defer t.View.Up.Breakers.Sessions.Add(-1)
	}
	if up == nil {
		return
	}
	o.started = true
	sessions.SetUp(s, up)
	var idled bool
	o.tx, o.rx, idled = PipeBoth(t.Down, up, t.IdleTimeout)
	if idled {
		t.Stats.IdleTimeout.Inc()
	}
}

// outcome is what a session did, for the access log and the mesh
// metrics.
type outcome struct {
	ep      *cluster.Endpoint
	flags   accesslog.ResponseFlags
	rx, tx  int64
	started bool
}

// connect picks the endpoint, admits the session past the circuit
// breakers and connects (with TLS when the cluster originates it). It
// returns nil, with o's flags saying why, when there is no upstream;
// admitted says the session holds a place under the breakers, which the
// caller gives back when the session ends.
func (t *TCP) connect(o *outcome) (up net.Conn, admitted bool) {
	view := t.View
	if view == nil {
		t.Stats.CxNoRoute.Inc()
		o.flags |= accesslog.NoClusterFound
		return nil, false
	}
	if view.OrigDst {
		if o.ep = t.OrigDst; o.ep == nil {
			o.flags |= accesslog.NoHealthyUpstream
			return nil, false
		}
	} else if o.ep = view.Pick(); o.ep == nil {
		o.flags |= accesslog.NoHealthyUpstream
		return nil, false
	}
	ep := o.ep
	view.Up.MarkUsed()
	if !view.AdmitSession() {
		o.flags |= accesslog.UpstreamOverflow
		o.ep = nil
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), view.Up.Key.ConnectTimeout)
	up, err := view.Up.Dial(ctx, "tcp", ep.Addr)
	cancel()
	if err != nil {
		t.Log.Debug("tcp proxy: upstream connect failed", "listener", t.Listener, "cluster", view.Cluster.Name, "endpoint", ep.Addr, "err", err)
		o.flags |= accesslog.UpstreamConnectionFailure
		view.Outcome(ep, true)
		return nil, true
	}
	if view.Up.TLSConf != nil {
		tlsc, err := view.Up.Handshake(context.Background(), up, view.Up.TLSConf)
		if err != nil {
			o.flags |= accesslog.UpstreamConnectionFailure
			view.Outcome(ep, true)
			return nil, true
		}
		up = tlsc
	}
	// A TCP session is judged by its connect, as Envoy's tcp_proxy
	// reports to outlier detection.
	view.Outcome(ep, false)
	return up, true
}

// finish counts the session on its mesh-metric edge and writes its
// access logs.
func (t *TCP) finish(o *outcome) {
	d := time.Since(t.Start)
	if o.started {
		t.Edge.Record(meshmetrics.TCP, 0, d, uint64(o.rx), uint64(o.tx))
	}
	if len(t.Logs) == 0 {
		return
	}
	e := &accesslog.Entry{
		Start: t.Start, Duration: d, Flags: o.flags,
		BytesReceived: uint64(o.rx), BytesSent: uint64(o.tx),
		DownstreamRemote: t.Remote, DownstreamLocal: t.Dst,
		ConnectionID: t.ID, RequestedServerName: t.ServerName,
	}
	if t.View != nil {
		e.UpstreamCluster = t.View.Cluster.Name
	}
	if o.ep != nil {
		e.UpstreamHost = o.ep.Addr
	}
	for _, l := range t.Logs {
		l.Writer.LogEntry(l.Format, e)
	}
}
