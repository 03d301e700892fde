// Package metricsservice is the stats sink Envoy's metrics_service speaks:
// it streams the proxy's metrics as Prometheus metric families
// (io.prometheus.client.MetricFamily) over
// envoy.service.metrics.v3.MetricsService/StreamMetrics, every interval,
// to a gRPC address (by default the control plane's, which keeps the mesh
// metrics' history for the console).
//
// It runs on its own goroutine, not in the stats Flusher: a control plane
// that is away costs a reconnect with backoff, never a stalled flush.
// Counters and histograms are sent cumulative, as Envoy sends them by
// default; the first message of every stream carries the node identifier.
package metricsservice

import (
	"github.com/meshlens/meshlens/internal/grpctarget"

	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"time"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	metricsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/service/metrics/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshlens/meshlens/internal/stats"
	"github.com/meshlens/meshlens/internal/xdsproto"
)

// Defaults of Options.
const (
	DefaultInterval   = 10 * time.Second
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// DefaultSendTimeout bounds one message's send: a peer that stops
	// reading costs one stream, not the sink.
	DefaultSendTimeout = 10 * time.Second
)

// Options configure a Sink.
type Options struct {
	// Addr is the metrics service's host:port (plaintext gRPC).
	Addr string
	// Node identifies the proxy in the first message of every stream.
	Node *corev3.Node
	// Stores are the stats sent: the mesh metrics' store, and the
	// proxy's own store when all stats are sent.
	Stores []*stats.Store
	// Extra adds metric families computed at each send (the proxy's view
	// of its endpoints' health).
	Extra func() []*dto.MetricFamily
	// Interval between messages (default 10s).
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnects
	// (defaults 500ms and 30s), doubled after each failure, with jitter.
	MinBackoff, MaxBackoff time.Duration
	SendTimeout            time.Duration
	Log                    *slog.Logger
	// DialOptions are added to the connection's (tests).
	DialOptions []grpc.DialOption
}

// Sink streams metrics to a metrics service until its context ends.
type Sink struct {
	opts Options
	conn *grpc.ClientConn
}

// New returns a sink for opts; the connection is made lazily, so a
// control plane that is not up yet is not an error.
func New(opts Options) (*Sink, error) {
	if opts.Addr == "" {
		return nil, errors.New("metrics service address: is empty")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = DefaultSendTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts.DialOptions...)
	target, topts, err := grpctarget.Dial(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("metrics service: %w", err)
	}
	conn, err := grpc.NewClient(target, append(topts, dial...)...)
	if err != nil {
		return nil, fmt.Errorf("metrics service %s: %w", opts.Addr, err)
	}
	return &Sink{opts: opts, conn: conn}, nil
}

// Run streams until ctx ends, reconnecting with backoff, and closes the
// connection. It returns ctx's error.
func (s *Sink) Run(ctx context.Context) error {
	defer s.conn.Close()
	backoff := s.opts.MinBackoff
	var lastErr string
	for {
		start := time.Now()
		err := s.stream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && err.Error() != lastErr {
			s.opts.Log.Warn("metrics service stream failed; reconnecting", "addr", s.opts.Addr, "err", err)
			lastErr = err.Error()
		}
		if time.Since(start) > s.opts.MaxBackoff {
			backoff = s.opts.MinBackoff // the stream was up a while
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, s.opts.MaxBackoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// stream sends one message at once and then one every interval, until
// a send fails or ctx ends.
func (s *Sink) stream(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cl, err := xdsproto.NewStream[metricsv3.StreamMetricsMessage, metricsv3.StreamMetricsResponse](sctx, s.conn, xdsproto.MethodStreamMetrics, false, grpc.WaitForReady(false))
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	first := true
	for {
		msg := &metricsv3.StreamMetricsMessage{}
		if first {
			msg.Identifier = &metricsv3.StreamMetricsMessage_Identifier{Node: s.opts.Node}
		}
		if msg.EnvoyMetrics, err = Families(s.opts.Stores...); err != nil {
			return err
		}
		if s.opts.Extra != nil {
			msg.EnvoyMetrics = append(msg.EnvoyMetrics, s.opts.Extra()...)
		}
		if err := s.send(sctx, cancel, cl, msg); err != nil {
			return err
		}
		first = false
		select {
		case <-ctx.Done():
			_, _ = cl.CloseAndRecv()
			return nil
		case <-t.C:
		}
	}
}

// send sends msg, cancelling the stream if it takes longer than
// SendTimeout (a peer that does not read fills the window and blocks).
func (s *Sink) send(ctx context.Context, cancel context.CancelFunc, cl *xdsproto.ClientStream[metricsv3.StreamMetricsMessage, metricsv3.StreamMetricsResponse], msg *metricsv3.StreamMetricsMessage) error {
	timer := time.AfterFunc(s.opts.SendTimeout, cancel)
	defer timer.Stop()
	if err := cl.Send(msg); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("send: no progress in %s", s.opts.SendTimeout)
		}
		_, rerr := cl.CloseAndRecv() // the stream's real status
		if rerr != nil {
			return fmt.Errorf("send: %w", rerr)
		}
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// Families renders stores as Prometheus metric families, exactly as
// /stats/prometheus exposes them (histograms merged first, so the latest
// samples are in), families sorted by name.
func Families(stores ...*stats.Store) ([]*dto.MetricFamily, error) {
	var out []*dto.MetricFamily
	for _, st := range stores {
		if st == nil {
			continue
		}
		st.MergeHistograms()
		var b bytes.Buffer
		if err := st.WritePrometheus(&b, nil, true); err != nil {
			return nil, err
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(&b)
		if err != nil {
			return nil, fmt.Errorf("parse own exposition: %w", err)
		}
		for _, f := range fams {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, nil
}
