package export_test

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/export"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
	"github.com/meshlens/meshlens/internal/tracing/sampling"
)

type receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestWiringThroughAProxy wires the library into a reverse proxy as the
// package doc shows: a B3 client, a proxy that writes W3C and X-Ray
// upstream, retries once, and exports over OTLP/gRPC to a receiver on
// loopback. The upstream must see the context of the second attempt's
// client span, and the exported spans must form the tree.
func TestWiringThroughAProxy(t *testing.T) {
	t.Parallel()
	rcv := &receiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, rcv)
	go gs.Serve(ln)
	defer gs.Stop()

	exp, err := export.NewOTLPGRPC(export.OTLPGRPCConfig{Endpoint: ln.Addr().String(), Options: export.Options{FlushInterval: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	smp, err := sampling.New(sampling.Config{Percent: 0}) // the client's b3 decision decides
	if err != nil {
		t.Fatal(err)
	}
	tr := tracing.New(tracing.Config{Resource: tracing.Resource{ServiceName: "greeter", Mesh: "demo", VirtualNode: "greeter"},
		Sampler: smp, Exporters: []tracing.Exporter{exp}})

	var seen []http.Header
	var mu sync.Mutex
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		n := len(seen)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // the first attempt fails
			return
		}
		w.Write([]byte("hello"))
	}))
	defer upstream.Close()
	target, _ := url.Parse(upstream.URL)

	out := propagation.Formats(propagation.W3C | propagation.XRay)
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parent, _ := propagation.Extract(r.Header)
		req := tr.Begin(parent, "greet", time.Now())
		req.Span.SetHTTPRequest(r.Method, r.URL.Path, r.UserAgent())
		var code int
		for attempt := 1; attempt <= 2; attempt++ {
			child := req.Span.StartClient(attempt, time.Now())
			ctx := req.Ctx
			if child != nil {
				ctx = child.Context()
			}
			rec := httptest.NewRecorder()
			rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				propagation.Inject(pr.Out.Header, ctx, out)
			}}
			rp.ServeHTTP(rec, r.Clone(r.Context()))
			code = rec.Code
			child.SetStatusCode(code)
			child.End(time.Now())
			if code < 500 {
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(code)
				w.Write(rec.Body.Bytes())
				break
			}
			req.Span.AddEvent(tracing.EventRetry, time.Now(), tracing.Int(tracing.KeyAttempt, int64(attempt+1)))
		}
		req.Span.SetRetryCount(1)
		req.Span.SetStatusCode(code)
		req.Span.End(time.Now())
	})
	front := httptest.NewServer(proxy)
	defer front.Close()

	creq, _ := http.NewRequest(http.MethodGet, front.URL+"/greet", nil)
	creq.Header.Set("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1")
	resp, err := http.DefaultClient.Do(creq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.spans) != 3 {
		t.Fatalf("exported %d spans", len(rcv.spans))
	}
	a1, a2, srv := rcv.spans[0], rcv.spans[1], rcv.spans[2]
	wantTrace := "0000000000000000a3ce929d0e0e4736"
	if hex.EncodeToString(srv.TraceId) != wantTrace || hex.EncodeToString(srv.ParentSpanId) != "00f067aa0ba902b7" {
		t.Errorf("server span %x parent %x", srv.TraceId, srv.ParentSpanId)
	}
	for _, c := range []*tracepb.Span{a1, a2} {
		if string(c.ParentSpanId) != string(srv.SpanId) || string(c.TraceId) != string(srv.TraceId) {
			t.Errorf("client span not a child of the server span")
		}
	}
	if len(seen) != 2 {
		t.Fatalf("upstream saw %d requests", len(seen))
	}
	// Each attempt carried its own client span's context, in both formats.
	for i, c := range []*tracepb.Span{a1, a2} {
		sc, from, ok := propagation.ExtractFormats(seen[i], propagation.Formats(propagation.W3C))
		if !ok || from != propagation.W3C || hex.EncodeToString(sc.TraceID[:]) != wantTrace || string(sc.SpanID[:]) != string(c.SpanId) || !sc.Sampled {
			t.Errorf("attempt %d: upstream got %+v", i+1, sc)
		}
		xr, ok := propagation.ParseXRay(seen[i].Get("X-Amzn-Trace-Id"))
		if !ok || xr.TraceID != sc.TraceID || xr.SpanID != sc.SpanID {
			t.Errorf("attempt %d: X-Ray header %q", i+1, seen[i].Get("X-Amzn-Trace-Id"))
		}
	}
	if len(srv.Events) != 1 || srv.Events[0].Name != "retry" {
		t.Errorf("server events %v", srv.Events)
	}
}
