package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

func otlpSpans(service string, spans ...*tracepb.Span) *collectorpb.ExportTraceServiceRequest {
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: service}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

// TestTraceStoreProcess: a real `meshlens server` takes one trace's
// spans over OTLP/gRPC on its xDS address and OTLP/HTTP on its API
// address, answers Jaeger's /api/traces/{id} with both nested, and
// refuses a malformed and an oversized body with OTLP's errors.
func TestTraceStoreProcess(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	tid := bytes.Repeat([]byte{0x5a}, 16)
	start := uint64(time.Now().Add(-time.Second).UnixNano())
	gw := &tracepb.Span{TraceId: tid, SpanId: []byte{1, 1, 1, 1, 1, 1, 1, 1}, Name: "GET /", Kind: tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: start, EndTimeUnixNano: start + 5e6}
	greeter := &tracepb.Span{TraceId: tid, SpanId: []byte{2, 2, 2, 2, 2, 2, 2, 2}, ParentSpanId: gw.SpanId, Name: "greet",
		Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: start + 1e6, EndTimeUnixNano: start + 4e6}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc, err := grpc.NewClient(s.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := collectorpb.NewTraceServiceClient(cc).Export(ctx, otlpSpans("demo/gateway", gw)); err != nil {
		t.Fatalf("OTLP/gRPC export to %s: %v", s.xds, err)
	}
	post := func(body []byte) (int, []byte) {
		resp, err := http.Post(s.URL()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	body, _ := proto.Marshal(otlpSpans("demo/greeter", greeter))
	if code, out := post(body); code != http.StatusOK {
		t.Fatalf("OTLP/HTTP export: %d %q", code, out)
	}

	resp, err := http.Get(s.URL() + "/api/traces/5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Data []struct {
			TraceID string `json:"traceID"`
			Spans   []struct {
				SpanID     string `json:"spanID"`
				Operation  string `json:"operationName"`
				ProcessID  string `json:"processID"`
				StartTime  int64  `json:"startTime"`
				Duration   int64  `json:"duration"`
				References []struct {
					RefType, SpanID string
				} `json:"references"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(got.Data) != 1 || len(got.Data[0].Spans) != 2 {
		t.Fatalf("GET /api/traces/{id}: %d %v %+v", resp.StatusCode, err, got)
	}
	tr := got.Data[0]
	root, child := tr.Spans[0], tr.Spans[1]
	if tr.TraceID != "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" || root.SpanID != "0101010101010101" || child.SpanID != "0202020202020202" ||
		len(root.References) != 0 || len(child.References) != 1 || child.References[0].RefType != "CHILD_OF" || child.References[0].SpanID != root.SpanID ||
		tr.Processes[root.ProcessID].ServiceName != "demo/gateway" || tr.Processes[child.ProcessID].ServiceName != "demo/greeter" ||
		root.Duration != 5000 || child.Duration != 3000 || child.StartTime != root.StartTime+1000 {
		t.Fatalf("trace = %+v", tr)
	}

	for _, tc := range []struct {
		body []byte
		code int
	}{
		{[]byte{0x0a, 0xff}, http.StatusBadRequest},
		{make([]byte, 5<<20), http.StatusRequestEntityTooLarge},
	} {
		code, out := post(tc.body)
		st := &statuspb.Status{}
		if code != tc.code || proto.Unmarshal(out, st) != nil || st.GetMessage() == "" {
			t.Errorf("POST %d bytes: %d %q, want %d with a Status", len(tc.body), code, out, tc.code)
		}
	}
}
