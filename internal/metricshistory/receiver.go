package metricshistory

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultMaxStreams bounds the metrics service streams a Receiver serves
// at once (one per proxy).
const DefaultMaxStreams = 10000

// Receiver is the metrics service (envoy.service.metrics.v3) that feeds a
// Store: each proxy's stream of cumulative metrics becomes deltas in the
// history. It also remembers which nodes reported and when.
type Receiver struct {
	metricsv3.UnimplementedMetricsServiceServer
	store *Store
	now   func() time.Time
	slots chan struct{}

	mu    sync.Mutex
	nodes map[string]NodeReport

	// Authorize, when set, decides whether the stream (its gRPC context)
	// may report as node id; set it before serving. An error ends the
	// stream before anything it sent is kept.
	Authorize func(ctx context.Context, id string) error
}

// NodeReport is what the receiver knows of one reporting proxy.
type NodeReport struct {
	ID, Cluster string
	Connected   bool
	LastReport  time.Time
	// Endpoints is the proxy's latest view of the endpoints it sends to
	// (EndpointHealthMetric).
	Endpoints []EndpointView
}

// EndpointHealthMetric is the family a proxy reports its view of its
// upstream endpoints in: a gauge per endpoint with labels
// destination_mesh, destination_workload, cluster, address,
// health_check (healthy, failed, pending, none), ejected and eds_healthy
// (true or false).
const EndpointHealthMetric = "meshlens_endpoint_health"

// maxEndpointsPerNode bounds what one proxy's report keeps.
const maxEndpointsPerNode = 5000

// EndpointView is one endpoint as one proxy sees it.
type EndpointView struct {
	Mesh, VirtualNode, Cluster, Address string
	HealthCheck                         string
	Ejected, EDSHealthy                 bool
}

func endpointViews(families []*dto.MetricFamily) []EndpointView {
	for _, f := range families {
		if f.GetName() != EndpointHealthMetric {
			continue
		}
		out := make([]EndpointView, 0, min(len(f.GetMetric()), maxEndpointsPerNode))
		for _, m := range f.GetMetric() {
			if len(out) >= maxEndpointsPerNode {
				break
			}
			var e EndpointView
			for _, lp := range m.GetLabel() {
				switch v := lp.GetValue(); lp.GetName() {
				case "destination_mesh":
					e.Mesh = v
				case "destination_workload":
					e.VirtualNode = v
				case "cluster":
					e.Cluster = v
				case "address":
					e.Address = v
				case "health_check":
					e.HealthCheck = v
				case "ejected":
					e.Ejected = v == "true"
				case "eds_healthy":
					e.EDSHealthy = v == "true"
				}
			}
			out = append(out, e)
		}
		return out
	}
	return nil
}

// NewReceiver returns a Receiver feeding store.
func NewReceiver(store *Store) *Receiver {
	return &Receiver{store: store, now: store.opts.Now, slots: make(chan struct{}, DefaultMaxStreams), nodes: map[string]NodeReport{}}
}

// Register adds the metrics service to g.
func (r *Receiver) Register(g *grpc.Server) { metricsv3.RegisterMetricsServiceServer(g, r) }

// StreamMetrics implements the metrics service.
func (r *Receiver) StreamMetrics(stream metricsv3.MetricsService_StreamMetricsServer) error {
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	default:
		return status.Errorf(codes.ResourceExhausted, "metrics service: %d streams already", cap(r.slots))
	}
	st := r.store.NewStream()
	var node string
	defer func() {
		if node != "" {
			r.mu.Lock()
			if n, ok := r.nodes[node]; ok {
				n.Connected = false
				r.nodes[node] = n
			}
			r.mu.Unlock()
		}
	}()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&metricsv3.StreamMetricsResponse{})
		}
		if err != nil {
			return err
		}
		if node == "" {
			n := msg.GetIdentifier().GetNode()
			if n.GetId() == "" {
				return status.Error(codes.InvalidArgument, "identifier.node.id: the first message of a stream names its node")
			}
			if r.Authorize != nil {
				if err := r.Authorize(stream.Context(), n.GetId()); err != nil {
					return err
				}
			}
			node = n.GetId()
			r.mu.Lock()
			if len(r.nodes) >= cap(r.slots) {
				r.forgetDisconnectedLocked()
			}
			r.nodes[node] = NodeReport{ID: node, Cluster: n.GetCluster(), Connected: true}
			r.mu.Unlock()
		}
		now := r.now()
		st.Push(now, msg.GetEnvoyMetrics())
		eps := endpointViews(msg.GetEnvoyMetrics())
		r.mu.Lock()
		n := r.nodes[node]
		n.LastReport, n.Connected = now, true
		n.Endpoints = eps // the latest view replaces the previous one
		r.nodes[node] = n
		r.mu.Unlock()
	}
}

// Nodes lists the proxies that reported, connected or not since the
// process started.
func (r *Receiver) Nodes() []NodeReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]NodeReport, 0, len(r.nodes))
	for _, n := range r.nodes {
		out = append(out, n)
	}
	return out
}

// forgetDisconnectedLocked drops the nodes that are not connected, so
// that proxies coming and going do not grow the map without bound.
func (r *Receiver) forgetDisconnectedLocked() {
	for id, n := range r.nodes {
		if !n.Connected {
			delete(r.nodes, id)
		}
	}
}
