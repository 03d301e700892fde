package xdsproto

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
)

// Methods of the gRPC services the proxy calls.
const (
	MethodStreamAggregatedResources = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	MethodStreamSecrets             = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"
	MethodStreamMetrics             = "/envoy.service.metrics.v3.MetricsService/StreamMetrics"
)

// ClientStream is a gRPC stream that sends *Req and receives *Resp,
// both mirror messages.
type ClientStream[Req, Resp any] struct {
	grpc.ClientStream
}

// Send sends one request.
func (s *ClientStream[Req, Resp]) Send(m *Req) error { return s.SendMsg(m) }

// Recv waits for one response.
func (s *ClientStream[Req, Resp]) Recv() (*Resp, error) {
	m := new(Resp)
	if err := s.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

// CloseAndRecv ends the client's half of a client-streaming call and waits
// for its one response.
func (s *ClientStream[Req, Resp]) CloseAndRecv() (*Resp, error) {
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	return s.Recv()
}

// NewStream opens a stream of method on conn, its messages encoded by
// Codec. serverStreams is false for a client-streaming call.
func NewStream[Req, Resp any](ctx context.Context, conn grpc.ClientConnInterface, method string, serverStreams bool, opts ...grpc.CallOption) (*ClientStream[Req, Resp], error) {
	if _, ok := any(new(Req)).(Message); !ok {
		return nil, fmt.Errorf("xdsproto: %T is not a mirror message", new(Req))
	}
	if _, ok := any(new(Resp)).(Message); !ok {
		return nil, fmt.Errorf("xdsproto: %T is not a mirror message", new(Resp))
	}
	desc := &grpc.StreamDesc{ClientStreams: true, ServerStreams: serverStreams}
	cs, err := conn.NewStream(ctx, desc, method, append(opts, grpc.ForceCodecV2(Codec{}))...)
	if err != nil {
		return nil, err
	}
	return &ClientStream[Req, Resp]{cs}, nil
}
