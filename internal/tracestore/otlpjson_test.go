package tracestore

import (
	"net/http"
	"strings"
	"testing"

	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// otlpJSON is an export in OTLP/HTTP's JSON encoding, as OpenTelemetry's
// JavaScript exporter sends it: hex ids, enums as numbers, 64-bit
// integers as strings.
const otlpJSON = `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web-ui"}}]},
 "scopeSpans":[{"scope":{"name":"browser"},"spans":[
  {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173",
   "name":"fetch","kind":3,"startTimeUnixNano":"1767323045000000000","endTimeUnixNano":"1767323045002500000",
   "attributes":[{"key":"http.response.status_code","value":{"intValue":"200"}}],
   "links":[{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b175"}],
   "status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}`

func TestOTLPHTTPJSON(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	_, url := serve(t, s)
	code, out := post(t, url, "application/json", "", []byte(otlpJSON))
	if code != http.StatusOK {
		t.Fatalf("POST JSON = %d %s", code, out)
	}
	if err := protojson.Unmarshal(out, &collectorpb.ExportTraceServiceResponse{}); err != nil {
		t.Fatalf("response %q is not a JSON ExportTraceServiceResponse: %v", out, err)
	}
	id, _ := parseTraceID("5b8efff798038103d269b633813fc60c")
	tr := s.Trace(id)
	if tr == nil || len(tr.Spans) != 1 {
		t.Fatalf("trace = %+v", tr)
	}
	sp := tr.Spans[0]
	got := mustJSONBytes(t, sp)
	want := `{"traceID":"5b8efff798038103d269b633813fc60c","spanID":"eee19b7ec3c1b174","operationName":"fetch",` +
		`"references":[{"refType":"CHILD_OF","traceID":"5b8efff798038103d269b633813fc60c","spanID":"eee19b7ec3c1b173"},` +
		`{"refType":"FOLLOWS_FROM","traceID":"5b8efff798038103d269b633813fc60d","spanID":"eee19b7ec3c1b175"}],` +
		`"startTime":1767323045000000,"duration":2500,"tags":[{"key":"http.response.status_code","type":"int64","value":200},` +
		`{"key":"otel.scope.name","type":"string","value":"browser"},{"key":"span.kind","type":"string","value":"client"},` +
		`{"key":"otel.status_code","type":"string","value":"ERROR"},{"key":"error","type":"bool","value":true},` +
		`{"key":"otel.status_description","type":"string","value":"boom"}],"logs":[],"processID":"p1","warnings":null}`
	if string(got) != want {
		t.Fatalf("span:\n got %s\nwant %s", got, want)
	}
	if tr.Processes["p1"].ServiceName != "web-ui" {
		t.Fatalf("processes = %+v", tr.Processes)
	}

	// A bad JSON body gets a JSON Status.
	for _, body := range []string{`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`, `{"resourceSpans": 5}`, `{`} {
		code, out := post(t, url, "application/json; charset=utf-8", "", []byte(body))
		st := &statuspb.Status{}
		if code != http.StatusBadRequest || protojson.Unmarshal(out, st) != nil || !strings.Contains(st.GetMessage(), "not an ExportTraceServiceRequest") {
			t.Errorf("POST %s = %d %s, want 400 with a JSON Status", body, code, out)
		}
	}
}

func FuzzDecodeOTLPJSON(f *testing.F) {
	f.Add([]byte(otlpJSON))
	f.Add([]byte(`{"resourceSpans":[]}`))
	f.Add([]byte(`[[[[[[[[[[[[]]]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := decodeOTLPJSON(raw)
		if err != nil {
			return
		}
		// Whatever decodes can be stored without a panic.
		New(Options{}).Add(req.GetResourceSpans())
	})
}
