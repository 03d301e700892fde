package tracestore

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// serve runs the store's gRPC and HTTP receivers on loopback.
func serve(t *testing.T, s *Store) (grpcAddr, httpURL string) {
	t.Helper()
	return serveAuthorized(t, s, nil)
}

// serveAuthorized is serve with the gRPC exports checked by authorize.
func serveAuthorized(t *testing.T, s *Store, authorize AuthorizeServices) (grpcAddr, httpURL string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.RegisterGRPC(g, authorize)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	mux := http.NewServeMux()
	s.RegisterOTLP(mux)
	s.RegisterQuery(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return ln.Addr().String(), hs.URL
}

func exportGRPC(t *testing.T, addr string, rss ...*tracepb.ResourceSpans) *collectorpb.ExportTraceServiceResponse {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := collectorpb.NewTraceServiceClient(cc).Export(ctx, &collectorpb.ExportTraceServiceRequest{ResourceSpans: rss}, grpc.UseCompressor(grpcgzip.Name))
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	return resp
}

func post(t *testing.T, url, contentType, encoding string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/traces", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func get(t *testing.T, url string) (int, any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q", url, ct)
	}
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, v
}

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad expectation: %v\n%s", err, s)
	}
	return v
}

func wantJSON(t *testing.T, what string, got any, want string) {
	t.Helper()
	if w := mustJSON(t, want); !reflect.DeepEqual(got, w) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Fatalf("%s:\n got %s\nwant %s", what, g, want)
	}
}

// TestOTLPToJaegerAPI exports one trace in two parts, over OTLP/gRPC
// (gzip) and OTLP/HTTP, and reads it back through every endpoint of the
// Jaeger query API, comparing whole answers.
func TestOTLPToJaegerAPI(t *testing.T) {
	t.Parallel()
	s := New(Options{Now: func() time.Time { return testNow }})
	grpcAddr, url := serve(t, s)

	root := span(7, 1, 0, "GET /greet", tracepb.Span_SPAN_KIND_SERVER, 0, 3000, str("http.request.method", "GET"), i64("http.response.status_code", 200))
	root.Events = []*tracepb.Span_Event{{TimeUnixNano: base + 500_000, Name: "retry", Attributes: []*commonpb.KeyValue{i64("meshlens.retry.attempt", 1)}}}
	root.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}
	root.Flags = 0x101
	client := span(7, 2, 1, "greeter", tracepb.Span_SPAN_KIND_CLIENT, 100, 2500)
	resp := exportGRPC(t, grpcAddr, resource("gateway", root, client))
	if resp.GetPartialSuccess() != nil {
		t.Fatalf("partial success: %v", resp.GetPartialSuccess())
	}

	server := span(7, 3, 2, "greet", tracepb.Span_SPAN_KIND_SERVER, 200, 2000)
	server.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "name service unavailable"}
	body := mustMarshal(t, &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{resource("greeter", server)}})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(body)
	zw.Close()
	code, out := post(t, url, "application/x-protobuf", "gzip", gz.Bytes())
	if code != http.StatusOK {
		t.Fatalf("POST /v1/traces = %d %q", code, out)
	}
	if err := proto.Unmarshal(out, &collectorpb.ExportTraceServiceResponse{}); err != nil {
		t.Fatalf("response is not an ExportTraceServiceResponse: %v", err)
	}

	_, v := get(t, url+"/api/services")
	wantJSON(t, "services", v, `{"data":["gateway","greeter"],"total":2,"limit":0,"offset":0,"errors":null}`)
	_, v = get(t, url+"/api/services/gateway/operations")
	wantJSON(t, "operation names", v, `{"data":["GET /greet","greeter"],"total":2,"limit":0,"offset":0,"errors":null}`)
	// A service name with a slash (meshlens names services
	// mesh/node) arrives escaped, as the Jaeger UI and Grafana send it.
	s.Add([]*tracepb.ResourceSpans{resource("demo/web", span(8, 1, 0, "GET /", tracepb.Span_SPAN_KIND_SERVER, 0, 1))})
	_, v = get(t, url+"/api/services/demo%2Fweb/operations")
	wantJSON(t, "operation names of demo/web", v, `{"data":["GET /"],"total":1,"limit":0,"offset":0,"errors":null}`)
	_, v = get(t, url+"/api/traces?service=demo%2Fweb&lookback=2h")
	if data, _ := v.(map[string]any)["data"].([]any); len(data) != 1 {
		t.Fatalf("search for demo/web = %v", v)
	}
	_, v = get(t, url+"/api/operations?service=gateway&spanKind=server")
	wantJSON(t, "operations", v, `{"data":[{"name":"GET /greet","spanKind":"server"}],"total":1,"limit":0,"offset":0,"errors":null}`)

	const trace = `{
	  "traceID": "0000000000000abc0000000000000007",
	  "spans": [
	    {"traceID": "0000000000000abc0000000000000007", "spanID": "0000000000000001", "operationName": "GET /greet",
	     "references": [], "startTime": 1767323045000000, "duration": 3000,
	     "tags": [{"key":"http.request.method","type":"string","value":"GET"},
	              {"key":"http.response.status_code","type":"int64","value":200},
	              {"key":"otel.scope.name","type":"string","value":"meshlens"},
	              {"key":"otel.scope.version","type":"string","value":"1.0"},
	              {"key":"span.kind","type":"string","value":"server"},
	              {"key":"otel.status_code","type":"string","value":"OK"}],
	     "logs": [{"timestamp": 1767323045000500, "fields": [{"key":"event","type":"string","value":"retry"},
	                                                        {"key":"meshlens.retry.attempt","type":"int64","value":1}]}],
	     "processID": "p1", "warnings": null},
	    {"traceID": "0000000000000abc0000000000000007", "spanID": "0000000000000002", "operationName": "greeter",
	     "references": [{"refType":"CHILD_OF","traceID":"0000000000000abc0000000000000007","spanID":"0000000000000001"}],
	     "startTime": 1767323045000100, "duration": 2500,
	     "tags": [{"key":"otel.scope.name","type":"string","value":"meshlens"},
	              {"key":"otel.scope.version","type":"string","value":"1.0"},
	              {"key":"span.kind","type":"string","value":"client"}],
	     "logs": [], "processID": "p1", "warnings": null},
	    {"traceID": "0000000000000abc0000000000000007", "spanID": "0000000000000003", "operationName": "greet",
	     "references": [{"refType":"CHILD_OF","traceID":"0000000000000abc0000000000000007","spanID":"0000000000000002"}],
	     "startTime": 1767323045000200, "duration": 2000,
	     "tags": [{"key":"otel.scope.name","type":"string","value":"meshlens"},
	              {"key":"otel.scope.version","type":"string","value":"1.0"},
	              {"key":"span.kind","type":"string","value":"server"},
	              {"key":"otel.status_code","type":"string","value":"ERROR"},
	              {"key":"error","type":"bool","value":true},
	              {"key":"otel.status_description","type":"string","value":"name service unavailable"}],
	     "logs": [], "processID": "p2", "warnings": null}
	  ],
	  "processes": {
	    "p1": {"serviceName": "gateway", "tags": [{"key":"meshlens.mesh","type":"string","value":"demo"}]},
	    "p2": {"serviceName": "greeter", "tags": [{"key":"meshlens.mesh","type":"string","value":"demo"}]}
	  },
	  "warnings": null
	}`
	code, v = get(t, url+"/api/traces/0000000000000abc0000000000000007")
	if code != http.StatusOK {
		t.Fatalf("GET trace = %d", code)
	}
	wantJSON(t, "trace by id", v, `{"data":[`+trace+`],"total":0,"limit":0,"offset":0,"errors":null}`)

	_, v = get(t, url+"/api/traces?service=greeter&tags="+strings.ReplaceAll(`{"error":"true"}`, `"`, "%22")+"&lookback=2h&limit=20")
	wantJSON(t, "search", v, `{"data":[`+trace+`],"total":0,"limit":0,"offset":0,"errors":null}`)

	_, v = get(t, url+"/api/dependencies?endTs="+itoa(int(testNow.UnixMilli()))+"&lookback=7200000")
	wantJSON(t, "dependencies", v, `{"data":[{"parent":"gateway","child":"greeter","callCount":1}],"total":0,"limit":0,"offset":0,"errors":null}`)
	_, v = get(t, url+"/api/dependencies?endTs="+itoa(int(testNow.UnixMilli()))+"&lookback=60000")
	wantJSON(t, "dependencies outside the window", v, `{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`)

	_, v = get(t, url+"/api/traces?traceID=abc0000000000000007&traceID=99")
	wantJSON(t, "search by ids", v, `{"data":[`+trace+`],"total":0,"limit":0,"offset":0,
		"errors":[{"msg":"trace not found","traceID":"0000000000000099"}]}`)
}

func TestJaegerAPIErrors(t *testing.T) {
	t.Parallel()
	_, url := serve(t, New(Options{}))
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/api/traces", 400, "parameter 'service' is required"},
		{"/api/traces?service=s&limit=x", 400, `unable to parse param 'limit': want a whole number 0-1500, not "x"`},
		{"/api/traces/nothex", 400, "traceID must be 1 to 32 hex digits"},
		{"/api/traces/abc", 404, "trace not found"},
		{"/api/operations", 400, "parameter 'service' is required"},
		{"/api/dependencies?endTs=soon", 400, `unable to parse param 'endTs': want milliseconds since the epoch, not "soon"`},
		{"/api/dependencies?lookback=0", 400, `unable to parse param 'lookback': want a positive number of milliseconds, not "0"`},
	} {
		code, v := get(t, url+tc.path)
		if code != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, code, tc.code)
		}
		wantJSON(t, "GET "+tc.path, v, `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":`+itoa(tc.code)+`,"msg":`+quote(tc.msg)+`}]}`)
	}
	_, v := get(t, url+"/api/services")
	wantJSON(t, "empty services", v, `{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`)
	_, v = get(t, url+"/api/traces?service=none")
	wantJSON(t, "empty search", v, `{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`)
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestOTLPHTTPBadInput: a body that does not decode, one over the limit
// (plain or once decompressed) and a JSON body each get OTLP's error
// answer with a status naming the problem, and store nothing.
func TestOTLPHTTPBadInput(t *testing.T) {
	t.Parallel()
	s := New(Options{MaxRequestBytes: 1024})
	_, url := serve(t, s)
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 4096))
	zw.Close()
	for _, tc := range []struct {
		name, ct, enc string
		body          []byte
		code          int
		msg           string
	}{
		{"malformed protobuf", "application/x-protobuf", "", []byte{0x0a, 0xff, 0xff, 0x01}, 400, "request body is not an ExportTraceServiceRequest"},
		{"oversized", "application/x-protobuf", "", make([]byte, 2048), 413, "request body is larger than 1024 bytes"},
		{"oversized once decompressed", "application/x-protobuf", "gzip", bomb.Bytes(), 413, "request body is larger than 1024 bytes"},
		{"not gzip", "application/x-protobuf", "gzip", []byte("plain"), 400, "body is not gzip"},
		{"text", "text/plain", "", []byte(`{}`), 415, `Content-Type "text/plain": want application/x-protobuf or application/json`},
		{"brotli", "application/x-protobuf", "br", []byte{}, 415, `Content-Encoding "br"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := post(t, url, tc.ct, tc.enc, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d", code, tc.code)
			}
			st := &statuspb.Status{}
			if err := proto.Unmarshal(out, st); err != nil || !strings.Contains(st.GetMessage(), tc.msg) {
				t.Fatalf("body %q (%v), want a Status whose message contains %q", out, err, tc.msg)
			}
		})
	}
	if n := s.Stats().Spans; n != 0 {
		t.Fatalf("%d spans stored from bad requests", n)
	}
}

// TestOTLPPartialSuccess: spans with bad ids are reported back, the
// others kept.
func TestOTLPPartialSuccess(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	grpcAddr, _ := serve(t, s)
	bad := span(1, 1, 0, "a", tracepb.Span_SPAN_KIND_SERVER, 0, 1)
	bad.SpanId = nil
	resp := exportGRPC(t, grpcAddr, resource("svc", bad, span(1, 2, 0, "b", tracepb.Span_SPAN_KIND_SERVER, 0, 1)))
	ps := resp.GetPartialSuccess()
	if ps.GetRejectedSpans() != 1 || !strings.Contains(ps.GetErrorMessage(), "span_id") {
		t.Fatalf("partial success = %v", ps)
	}
	if n := s.Stats().Spans; n != 1 {
		t.Fatalf("kept %d spans, want 1", n)
	}
}

// An export the authorizer refuses is answered with its error and stores
// nothing; it sees each resource's service.name, "" for one without.
func TestOTLPGRPCAuthorize(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	var seen [][]string
	grpcAddr, _ := serveAuthorized(t, s, func(_ context.Context, services []string) error {
		seen = append(seen, services)
		for _, name := range services {
			if name != "demo/web" {
				return status.Errorf(codes.PermissionDenied, "not yours: %q", name)
			}
		}
		return nil
	})
	nameless := resource("x", span(2, 9, 0, "n", tracepb.Span_SPAN_KIND_SERVER, 0, 1))
	nameless.Resource.Attributes = nil
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = collectorpb.NewTraceServiceClient(cc).Export(ctx, &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		resource("demo/web", span(1, 1, 0, "a", tracepb.Span_SPAN_KIND_SERVER, 0, 1)), nameless}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("export with a nameless resource: %v, want PermissionDenied", err)
	}
	if n := s.Stats().Spans; n != 0 {
		t.Fatalf("a refused export stored %d spans", n)
	}
	exportGRPC(t, grpcAddr, resource("demo/web", span(1, 1, 0, "a", tracepb.Span_SPAN_KIND_SERVER, 0, 1)))
	if n := s.Stats().Spans; n != 1 {
		t.Fatalf("an authorized export stored %d spans, want 1", n)
	}
	if len(seen) != 2 || len(seen[0]) != 2 || seen[0][0] != "demo/web" || seen[0][1] != "" {
		t.Fatalf("the authorizer saw %q", seen)
	}
}
