package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// testService answers the interop TestService: echoes, streams, and fails
// on request with a status carried in trailers.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
}

func (testService) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if string(in.GetPayload().GetBody()) == "fail" {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-failure-detail", "asked to"))
		return nil, status.Error(codes.FailedPrecondition, "failing as asked")
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "unary"))
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: in.GetPayload().GetBody()}}, nil
}

func (testService) StreamingOutputCall(in *testgrpc.StreamingOutputCallRequest, s grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	for _, p := range in.GetResponseParameters() {
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	return nil
}

func (testService) FullDuplexCall(s grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	s.SetTrailer(metadata.Pairs("x-trailer", "bidi"))
	for {
		in, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: in.GetPayload()}); err != nil {
			return err
		}
	}
}

func startGRPCUpstream(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, testService{})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func TestGRPCThrough(t *testing.T) {
	t.Parallel()
	r := xRoute("/", to("cds_grpc"))
	r.GetRoute().Timeout = durationpb.New(0) // streams: no route timeout, as App Mesh sets for gRPC streaming
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("grpc", []string{"color.demo.local:8080"}, r)},
		withHTTP2(xCluster("cds_grpc", startGRPCUpstream(t)))).snap(t))

	conn, err := grpc.NewClient("passthrough:///"+addrOf(t, p, egressName, 0),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("color.demo.local:8080"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		var trailer metadata.MD
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hello")}}, grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.GetPayload().GetBody()) != "hello" {
			t.Errorf("payload %q", resp.GetPayload().GetBody())
		}
		if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "unary" {
			t.Errorf("trailers %v", trailer)
		}
	})
	t.Run("error status in trailers", func(t *testing.T) {
		var trailer metadata.MD
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("fail")}}, grpc.Trailer(&trailer))
		if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "failing as asked" {
			t.Errorf("status %v", st)
		}
		if got := trailer.Get("x-failure-detail"); len(got) != 1 {
			t.Errorf("trailers %v", trailer)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		stream, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}, {Size: 100000}, {Size: 3}}})
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(m.GetPayload().GetBody()))
		}
		if len(sizes) != 3 || sizes[0] != 10 || sizes[1] != 100000 || sizes[2] != 3 {
			t.Errorf("sizes %v", sizes)
		}
	})
	t.Run("bidi", func(t *testing.T) {
		stream, err := client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Ping-pong: each reply must arrive before the next message is
		// sent, which a buffering proxy would deadlock on.
		for _, msg := range []string{"one", "two", "three"} {
			if err := stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(msg)}}); err != nil {
				t.Fatal(err)
			}
			m, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if string(m.GetPayload().GetBody()) != msg {
				t.Errorf("echo %q, want %q", m.GetPayload().GetBody(), msg)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("end of stream: %v", err)
		}
		if got := stream.Trailer().Get("x-trailer"); len(got) != 1 || got[0] != "bidi" {
			t.Errorf("trailers %v", stream.Trailer())
		}
	})
}

// BenchmarkGRPCProxy is one hop for gRPC: unary calls of 1 KB from an
// in-process grpc-go client over one h2c connection, through the egress
// listener, to an in-process grpc-go server. Allocations and CPU include
// the client's and the server's; the proxy's share is what a memory or
// CPU profile shows under internal/proxy.
func BenchmarkGRPCProxy(b *testing.B) {
	r := xRoute("/", to("cds_grpc"))
	p := startProxy(b, Config{})
	mustApply(b, p, egressRoutes([]*routev3.VirtualHost{xVHost("grpc", []string{"color.demo.local:8080"}, r)},
		withHTTP2(xCluster("cds_grpc", startGRPCUpstream(b)))).snap(b))
	conn, err := grpc.NewClient("passthrough:///"+addrOf(b, p, egressName, 0),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("color.demo.local:8080"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 1024)}}
	ctx := context.Background()
	if _, err := client.UnaryCall(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(8) // 16 calls in flight on 2 CPUs
	b.ResetTimer()
	cpu := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.UnaryCall(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
