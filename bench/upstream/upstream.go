// Package upstream is the application every benchmark path ends at: an
// HTTP server (HTTP/1.1 and h2c on one port) answering fixed bodies and
// accepting uploads, a gRPC TestService (unary and bidirectional
// streaming) and a TCP echo. It does as little as it can per request so
// that the figures measure the path, not the application.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// Addrs are where the application listens.
type Addrs struct {
	HTTP, GRPC, TCP string
}

// Sizes of the bodies the HTTP server answers, by path.
var bodies = map[string]int{"/1k": 1 << 10, "/64k": 64 << 10}

// Serve runs the three servers until ctx ends.
func Serve(ctx context.Context, a Addrs) error {
	hl, err := net.Listen("tcp", a.HTTP)
	if err != nil {
		return fmt.Errorf("upstream http listen: %w", err)
	}
	gl, err := net.Listen("tcp", a.GRPC)
	if err != nil {
		return fmt.Errorf("upstream grpc listen: %w", err)
	}
	tl, err := net.Listen("tcp", a.TCP)
	if err != nil {
		return fmt.Errorf("upstream tcp listen: %w", err)
	}

	hs := &http.Server{Handler: httpHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Minute}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	hs.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 1024}

	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, &grpcService{})

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("upstream http", "err", err)
		}
	})
	wg.Go(func() {
		if err := gs.Serve(gl); err != nil {
			slog.Error("upstream grpc", "err", err)
		}
	})
	wg.Go(func() { serveEcho(tl) })
	<-ctx.Done()
	hs.Close()
	gs.Stop()
	tl.Close()
	wg.Wait()
	return nil
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func httpHandler() http.Handler {
	prebuilt := map[string][]byte{}
	lengths := map[string]string{}
	for p, n := range bodies {
		prebuilt[p] = payload(n)
		lengths[p] = strconv.Itoa(n)
	}
	ok := []byte("ok")
	bufs := sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			bp := bufs.Get().(*[]byte)
			_, err := io.CopyBuffer(io.Discard, r.Body, *bp)
			bufs.Put(bp)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header()["Content-Length"] = []string{"2"}
			w.Write(ok)
			return
		}
		b, found := prebuilt[r.URL.Path]
		if !found {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h["Content-Length"] = []string{lengths[r.URL.Path]}
		h["Content-Type"] = []string{"application/octet-stream"}
		w.Write(b)
	})
}

type grpcService struct {
	testgrpc.UnimplementedTestServiceServer
	mu    sync.Mutex
	cache map[int32][]byte
}

func (g *grpcService) body(n int32) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cache == nil {
		g.cache = map[int32][]byte{}
	}
	b, ok := g.cache[n]
	if !ok {
		b = payload(int(n))
		g.cache[n] = b
	}
	return b
}

func (g *grpcService) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: g.body(req.GetResponseSize())}}, nil
}

func (g *grpcService) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var size int32
		for _, p := range req.GetResponseParameters() {
			size += p.GetSize()
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: g.body(size)}}); err != nil {
			return err
		}
	}
}

func serveEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 32<<10)
			io.CopyBuffer(c, readerOnly{c}, buf)
		}()
	}
}

// readerOnly hides the connection's ReadFrom/WriteTo so CopyBuffer uses
// the given buffer (a plain read/write loop, as an application would).
type readerOnly struct{ io.Reader }
