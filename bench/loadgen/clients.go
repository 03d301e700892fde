package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// HTTPTarget describes one HTTP request shape sent over one connection.
type HTTPTarget struct {
	// URL is what the request names. Through an HTTP proxy it is the
	// absolute URI the proxy routes by.
	URL string
	// Proxy, when set, is an HTTP proxy (host:port) the connection goes
	// to; the request line then carries the absolute URI.
	Proxy string
	// Authority overrides Host / :authority (h2c to a sidecar's egress
	// names the virtual service this way).
	Authority string
	// H2C speaks HTTP/2 with prior knowledge instead of HTTP/1.1.
	H2C bool
	// Upload is a request body sent with POST; nil means GET.
	Upload []byte
	// Want is the exact response body length that counts as success.
	Want int64
}

type httpClient struct {
	t   HTTPTarget
	tr  *http.Transport
	c   *http.Client
	url *url.URL
}

// HTTPDialer returns a Dialer whose Clients each hold one keep-alive
// connection (HTTP/1.1) or one HTTP/2 connection (h2c).
func HTTPDialer(t HTTPTarget) (Dialer, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, fmt.Errorf("loadgen: target %q: %w", t.URL, err)
	}
	return func(ctx context.Context) (Client, error) {
		tr := &http.Transport{
			MaxIdleConns:        1,
			MaxIdleConnsPerHost: 1,
			MaxConnsPerHost:     1,
			IdleConnTimeout:     5 * time.Minute,
			DisableCompression:  true,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			WriteBufferSize:     32 << 10,
			ReadBufferSize:      32 << 10,
		}
		if t.Proxy != "" {
			pu := &url.URL{Scheme: "http", Host: t.Proxy}
			tr.Proxy = http.ProxyURL(pu)
		}
		if t.H2C {
			tr.Protocols = new(http.Protocols)
			tr.Protocols.SetUnencryptedHTTP2(true)
		}
		return &httpClient{t: t, tr: tr, c: &http.Client{Transport: tr, Timeout: 30 * time.Second}, url: u}, nil
	}, nil
}

func (h *httpClient) Do(ctx context.Context) error {
	method := http.MethodGet
	var body io.Reader
	if h.t.Upload != nil {
		method = http.MethodPost
		body = bytes.NewReader(h.t.Upload)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.t.URL, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if h.t.Authority != "" {
		req.Host = h.t.Authority
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: status %d", ErrStatus, resp.StatusCode)
	}
	if n != h.t.Want {
		return fmt.Errorf("%w: body of %d bytes, want %d", ErrStatus, n, h.t.Want)
	}
	return nil
}

func (h *httpClient) Close() error {
	h.tr.CloseIdleConnections()
	return nil
}

// GRPCTarget is a gRPC TestService on one connection.
type GRPCTarget struct {
	Addr string
	// Authority names the virtual service when Addr is a sidecar's egress.
	Authority string
	// Size is the response payload size asked for.
	Size int
	// Stream makes each request one message exchange on a long-lived
	// bidirectional stream (FullDuplexCall) instead of a unary call.
	Stream bool
}

type grpcClient struct {
	t      GRPCTarget
	conn   *grpc.ClientConn
	client testgrpc.TestServiceClient
	stream testgrpc.TestService_FullDuplexCallClient
	cancel context.CancelFunc
	req    *testgrpc.SimpleRequest
	sreq   *testgrpc.StreamingOutputCallRequest
}

// GRPCDialer returns a Dialer whose Clients each hold their own HTTP/2
// connection.
func GRPCDialer(t GRPCTarget) Dialer {
	return func(ctx context.Context) (Client, error) {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if t.Authority != "" {
			opts = append(opts, grpc.WithAuthority(t.Authority))
		}
		conn, err := grpc.NewClient("passthrough:///"+t.Addr, opts...)
		if err != nil {
			return nil, fmt.Errorf("grpc client for %s: %w", t.Addr, err)
		}
		g := &grpcClient{
			t: t, conn: conn, client: testgrpc.NewTestServiceClient(conn),
			req:  &testgrpc.SimpleRequest{ResponseSize: int32(t.Size)},
			sreq: &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(t.Size)}}},
		}
		if t.Stream {
			sctx, cancel := context.WithCancel(context.Background())
			g.cancel = cancel
			s, err := g.client.FullDuplexCall(sctx, grpc.WaitForReady(true))
			if err != nil {
				cancel()
				conn.Close()
				return nil, fmt.Errorf("open stream to %s: %w", t.Addr, err)
			}
			g.stream = s
		}
		return g, nil
	}
}

func (g *grpcClient) Do(ctx context.Context) error {
	var got int
	if g.stream != nil {
		if err := g.stream.Send(g.sreq); err != nil {
			return fmt.Errorf("stream send: %w", err)
		}
		resp, err := g.stream.Recv()
		if err != nil {
			return fmt.Errorf("stream recv: %w", err)
		}
		got = len(resp.GetPayload().GetBody())
	} else {
		resp, err := g.client.UnaryCall(ctx, g.req, grpc.WaitForReady(true))
		if err != nil {
			return err
		}
		got = len(resp.GetPayload().GetBody())
	}
	if got != g.t.Size {
		return fmt.Errorf("%w: payload of %d bytes, want %d", ErrStatus, got, g.t.Size)
	}
	return nil
}

func (g *grpcClient) Close() error {
	if g.stream != nil {
		g.stream.CloseSend()
		g.cancel()
	}
	return g.conn.Close()
}

type tcpClient struct {
	conn net.Conn
	out  []byte
	in   []byte
}

// TCPDialer returns a Dialer whose Clients each hold one TCP connection to
// an echo service: a request writes size bytes and reads them back.
func TCPDialer(addr string, size int) Dialer {
	return func(ctx context.Context) (Client, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		out := make([]byte, size)
		for i := range out {
			out[i] = byte('a' + i%26)
		}
		return &tcpClient{conn: c, out: out, in: make([]byte, size)}, nil
	}
}

func (t *tcpClient) Do(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		t.conn.SetDeadline(dl)
	}
	if _, err := t.conn.Write(t.out); err != nil {
		return fmt.Errorf("tcp write: %w", err)
	}
	if _, err := io.ReadFull(t.conn, t.in); err != nil {
		return fmt.Errorf("%w: tcp echo: %v", ErrStatus, err)
	}
	return nil
}

func (t *tcpClient) Close() error { return t.conn.Close() }
