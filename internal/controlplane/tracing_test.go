package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

func otlpRequest(service string, traceByte, spanByte byte) *collectorpb.ExportTraceServiceRequest {
	tid := bytes.Repeat([]byte{traceByte}, 16)
	now := uint64(time.Now().UnixNano())
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: service}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
			TraceId: tid, SpanId: bytes.Repeat([]byte{spanByte}, 8), Name: "GET /", Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: now - 2e6, EndTimeUnixNano: now,
		}}}},
	}}}
}

func exportOTLP(ctx context.Context, addr string, req *collectorpb.ExportTraceServiceRequest) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	_, err = collectorpb.NewTraceServiceClient(cc).Export(ctx, req)
	return err
}

// jaegerGET reads one answer of the Jaeger query API.
func jaegerGET(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, v
}

// TestTraceStoreServed: the control plane takes OTLP on its xDS gRPC
// address and on its API's POST /v1/traces, and answers Jaeger's query
// API on its API address.
func TestTraceStoreServed(t *testing.T) {
	t.Parallel()
	cp := startCP(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := exportOTLP(ctx, cp.s.XDSAddr(), otlpRequest("gateway", 1, 1)); err != nil {
		t.Fatalf("OTLP/gRPC export on the xDS address: %v", err)
	}
	body, _ := proto.Marshal(otlpRequest("greeter", 2, 2))
	resp, err := http.Post("http://"+cp.s.APIAddr()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP export: %d", resp.StatusCode)
	}
	api := "http://" + cp.s.APIAddr()
	_, v := jaegerGET(t, api+"/api/services")
	if got, _ := json.Marshal(v["data"]); string(got) != `["gateway","greeter"]` {
		t.Fatalf("services = %s", got)
	}
	code, v := jaegerGET(t, api+"/api/traces?service=greeter")
	data, _ := v["data"].([]any)
	if code != 200 || len(data) != 1 || data[0].(map[string]any)["traceID"] != "02020202020202020202020202020202" {
		t.Fatalf("search = %d %v", code, v)
	}
	if code, _ := jaegerGET(t, api+"/api/traces/0101010101010101"+"0101010101010101"); code != 200 {
		t.Fatalf("trace by id = %d", code)
	}
}

// TestOTLPDisabled: with OTLP off, neither receiver answers, and the
// query API still does (with nothing in it).
func TestOTLPDisabled(t *testing.T) {
	t.Parallel()
	cp := startCP(t, Config{DisableOTLP: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := exportOTLP(ctx, cp.s.XDSAddr(), otlpRequest("gateway", 1, 1))
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("OTLP/gRPC export with OTLP disabled: %v, want Unimplemented", err)
	}
	resp, err := http.Post("http://"+cp.s.APIAddr()+"/v1/traces", "application/x-protobuf", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("OTLP/HTTP export with OTLP disabled: %d, want 404", resp.StatusCode)
	}
	if code, v := jaegerGET(t, "http://"+cp.s.APIAddr()+"/api/services"); code != 200 || v["total"] != 0.0 {
		t.Fatalf("services = %d %v", code, v)
	}
	if got := cp.s.builtinCollector(); got != "" {
		t.Fatalf("builtin collector with OTLP disabled = %q", got)
	}
}
