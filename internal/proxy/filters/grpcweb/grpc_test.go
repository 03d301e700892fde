package grpcweb

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// startGRPC runs a real grpc-go server (the standard health service) on a
// loopback listener; it speaks HTTP/2 without TLS.
func startGRPC(t *testing.T) (addr string, hs *health.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs = health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), hs
}

// startGateway is the harness: an HTTP/1.1 server that applies the
// translators and forwards over h2c to the gRPC server, streaming the
// response back with a flush after every read, as a proxy does.
func startGateway(t *testing.T, upstream string) *httptest.Server {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := RequestHeaders(r.Header)
		if !s.IsGRPCWeb() {
			http.Error(w, "not grpc-web", http.StatusUnsupportedMediaType)
			return
		}
		out, err := http.NewRequestWithContext(r.Context(), http.MethodPost, "http://"+upstream+r.URL.Path, s.RequestBody(r.Body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, k := range []string{"Content-Type", "Te", "Grpc-Timeout"} {
			if v := r.Header.Values(k); len(v) > 0 {
				out.Header[k] = v
			}
		}
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		translate := s.ResponseHeaders(resp.StatusCode, resp.Header)
		if !translate {
			if err := NonGRPCMessage(resp.Header, resp.Body); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		if !translate {
			return
		}
		body := s.ResponseBody(resp.Body, func() http.Header { return resp.Trailer })
		buf := make([]byte, 32<<10)
		for {
			n, err := body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(gw.Close)
	return gw
}

// webCall is a gRPC-Web client written from the protocol: it frames msg,
// posts it (base64 when text, optionally split into separately padded
// chunks), and returns the response's messages and its status, from the
// trailer frame or, for a trailers-only response, the headers.
type webCall struct {
	text   bool
	split  bool // text only: send the body as two separately padded chunks
	accept string
	path   string // default /grpc.health.v1.Health/Check
}

type webResult struct {
	header   http.Header
	messages [][]byte
	trailer  http.Header
}

func (c webCall) do(t *testing.T, ctx context.Context, url string, msg proto.Message) webResult {
	t.Helper()
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	body := AppendFrame(nil, 0, b)
	ct := ContentTypeGRPCWebProto
	if c.text {
		ct = ContentTypeGRPCWebText
		if c.split {
			half := len(body)/2 + 1 // not a multiple of 3: padding mid-body
			body = []byte(base64.StdEncoding.EncodeToString(body[:half]) + base64.StdEncoding.EncodeToString(body[half:]))
		} else {
			body = []byte(base64.StdEncoding.EncodeToString(body))
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Grpc-Web", "1")
	if c.accept != "" {
		req.Header.Set("Accept", c.accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP status %d", resp.StatusCode)
	}
	var r io.Reader = resp.Body
	wantCT := ContentTypeGRPCWebProto
	if c.text {
		r = NewTextDecoder(resp.Body)
		wantCT = ContentTypeGRPCWebTextProto
	}
	if got := resp.Header.Get("Content-Type"); got != wantCT {
		t.Fatalf("content-type %q, want %q", got, wantCT)
	}
	res := webResult{header: resp.Header}
	for {
		f, err := ReadFrame(r, 0)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading frames: %v", err)
		}
		if f.Trailer() {
			if res.trailer != nil {
				t.Fatal("two trailer frames")
			}
			if res.trailer, err = ParseTrailer(f.Payload); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if res.trailer != nil {
			t.Fatal("a message after the trailer frame")
		}
		res.messages = append(res.messages, f.Payload)
	}
	return res
}

func (r webResult) status() string {
	if r.trailer != nil {
		return r.trailer.Get("Grpc-Status")
	}
	return r.header.Get("Grpc-Status")
}

func TestGRPCWebAgainstGRPCGo(t *testing.T) {
	t.Parallel()
	addr, _ := startGRPC(t)
	gw := startGateway(t, addr)
	tests := []struct {
		name       string
		call       webCall
		service    string
		wantStatus string
		wantHealth healthpb.HealthCheckResponse_ServingStatus
		trailers   bool // status in a trailer frame (else trailers-only)
	}{
		{"binary", webCall{}, "", "0", healthpb.HealthCheckResponse_SERVING, true},
		{"binary, other service", webCall{}, "svc", "0", healthpb.HealthCheckResponse_NOT_SERVING, true},
		{"text", webCall{text: true, accept: ContentTypeGRPCWebText}, "", "0", healthpb.HealthCheckResponse_SERVING, true},
		{"text without accept", webCall{text: true}, "", "0", healthpb.HealthCheckResponse_SERVING, true},
		{"text in padded chunks", webCall{text: true, split: true, accept: ContentTypeGRPCWebText}, "", "0", healthpb.HealthCheckResponse_SERVING, true},
		{"binary, unknown service: NOT_FOUND", webCall{}, "nope", "5", 0, false},
		{"text, unknown service: NOT_FOUND", webCall{text: true, accept: ContentTypeGRPCWebText}, "nope", "5", 0, false},
		{"unknown method: UNIMPLEMENTED", webCall{path: "/grpc.health.v1.Health/Nope"}, "", "12", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			path := tc.call.path
			if path == "" {
				path = "/grpc.health.v1.Health/Check"
			}
			res := tc.call.do(t, ctx, gw.URL+path, &healthpb.HealthCheckRequest{Service: tc.service})
			if got := res.status(); got != tc.wantStatus {
				t.Fatalf("grpc-status %q, want %q (headers %v, trailer %v)", got, tc.wantStatus, res.header, res.trailer)
			}
			if (res.trailer != nil) != tc.trailers {
				t.Fatalf("trailer frame present = %v, want %v", res.trailer != nil, tc.trailers)
			}
			if tc.wantStatus != "0" {
				if len(res.messages) != 0 {
					t.Fatalf("%d messages on an error", len(res.messages))
				}
				return
			}
			if len(res.messages) != 1 {
				t.Fatalf("%d messages, want 1", len(res.messages))
			}
			var hr healthpb.HealthCheckResponse
			if err := proto.Unmarshal(res.messages[0], &hr); err != nil {
				t.Fatal(err)
			}
			if hr.GetStatus() != tc.wantHealth {
				t.Fatalf("health %v, want %v", hr.GetStatus(), tc.wantHealth)
			}
		})
	}
}

// A server-streaming call streams through the translators: each update
// reaches the gRPC-Web client while the call is still open (the second
// one is caused only after the first was read), so nothing waits for the
// whole body.
func TestGRPCWebServerStreaming(t *testing.T) {
	t.Parallel()
	for _, text := range []bool{false, true} {
		t.Run(map[bool]string{false: "binary", true: "text"}[text], func(t *testing.T) {
			t.Parallel()
			addr, hs := startGRPC(t)
			gw := startGateway(t, addr)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, _ := proto.Marshal(&healthpb.HealthCheckRequest{Service: "svc"})
			body := AppendFrame(nil, 0, b)
			ct := ContentTypeGRPCWebProto
			if text {
				body = []byte(base64.StdEncoding.EncodeToString(body))
				ct = ContentTypeGRPCWebText
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/grpc.health.v1.Health/Watch", bytes.NewReader(body))
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var r io.Reader = resp.Body
			if text {
				r = NewTextDecoder(resp.Body)
			}
			next := func() healthpb.HealthCheckResponse_ServingStatus {
				t.Helper()
				f, err := ReadFrame(r, 0)
				if err != nil || f.Trailer() {
					t.Fatalf("frame %+v, %v", f, err)
				}
				var hr healthpb.HealthCheckResponse
				if err := proto.Unmarshal(f.Payload, &hr); err != nil {
					t.Fatal(err)
				}
				return hr.GetStatus()
			}
			if got := next(); got != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Fatalf("first update %v", got)
			}
			hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
			if got := next(); got != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("second update %v", got)
			}
			// Watch never ends on its own (the trailer frame is covered by
			// the unary calls); the client hangs up.
			cancel()
		})
	}
}
