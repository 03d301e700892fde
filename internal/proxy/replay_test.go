package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/filters/router"
	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// flakyService fails every odd-numbered unary call with UNAVAILABLE.
type flakyService struct {
	testService
	calls atomic.Int64
}

func (s *flakyService) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if s.calls.Add(1)%2 == 1 {
		return nil, status.Error(codes.Unavailable, "first attempt fails")
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: in.GetPayload().GetBody()}}, nil
}

// A gRPC call has no content-length; its body is kept as it streams, so
// App Mesh's gRPC retry events apply: a unary call whose first attempt
// fails with UNAVAILABLE succeeds on the retry, with its message whole.
// A streaming call on a route with the same policy is not held back
// waiting for its whole body.
func TestGRPCUnaryRetried(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &flakyService{}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, svc)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)

	r := withRetry(xRoute("/", to("cds_grpc")), "unavailable", 2, 0)
	r.GetRoute().Timeout = durationpb.New(0)
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("grpc", []string{"color.demo.local:8080"}, r)},
		withHTTP2(xCluster("cds_grpc", ln.Addr().String()))).snap(t))
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

	for _, size := range []int{5, 40 << 10} {
		payload := strings.Repeat("x", size)
		before := svc.calls.Load()
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte(payload)}})
		if err != nil {
			t.Fatalf("unary call of %d bytes: %v", size, err)
		}
		if string(resp.GetPayload().GetBody()) != payload {
			t.Errorf("unary call of %d bytes: payload of %d bytes back", size, len(resp.GetPayload().GetBody()))
		}
		if n := svc.calls.Load() - before; n != 2 {
			t.Errorf("unary call of %d bytes: %d attempts, want 2", size, n)
		}
	}
	if got := statValue(t, p, "cluster.cds_grpc.upstream_rq_retry"); got != 2 {
		t.Errorf("upstream_rq_retry = %d, want 2", got)
	}

	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
	_ = stream.CloseSend()
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
}

// A chunked HTTP/1.1 upload (no Content-Length) is retried with its body
// replayed whole while it fits the retry buffer; one that outgrows it is
// streamed and tried once.
func TestChunkedBodyRetried(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	var calls atomic.Int64
	up := startUpstream(t, "app", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		if calls.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	p := startProxy(t, Config{})
	mustApply(t, p, egressRoutes([]*routev3.VirtualHost{xVHost("v", []string{"*"},
		withRetry(xRoute("/", to("cds_app")), "5xx", 2, 0))}, xCluster("cds_app", up.Addr())).snap(t))
	base := "http://" + addrOf(t, p, egressName, 0)
	c := testClient()

	for _, tc := range []struct {
		size       int
		want       int
		wantBodies int
	}{
		{10, 200, 2},
		{router.MaxRetryBody, 200, 2},
		{router.MaxRetryBody + 1, 503, 1},
		{1 << 20, 503, 1},
	} {
		mu.Lock()
		bodies = nil
		mu.Unlock()
		calls.Store(0)
		payload := strings.Repeat("b", tc.size)
		// A reader of unknown length: the client sends the body chunked.
		req, _ := http.NewRequest(http.MethodPost, base+"/upload", io.NopCloser(iotest.HalfReader(strings.NewReader(payload))))
		req.ContentLength = -1
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mu.Lock()
		got := append([]string(nil), bodies...)
		mu.Unlock()
		if resp.StatusCode != tc.want || len(got) != tc.wantBodies {
			t.Errorf("chunked body of %d bytes: %d after %d attempts, want %d after %d", tc.size, resp.StatusCode, len(got), tc.want, tc.wantBodies)
		}
		for i, b := range got {
			if b != payload {
				t.Errorf("chunked body of %d bytes: attempt %d got %d bytes", tc.size, i+1, len(b))
			}
		}
	}
}
