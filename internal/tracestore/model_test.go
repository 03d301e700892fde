package tracestore

import (
	"encoding/json"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TestConvertValues: every OTLP attribute type, links, trace state and
// dropped counts become what Jaeger's translator makes of them.
func TestConvertValues(t *testing.T) {
	t.Parallel()
	av := func(v *commonpb.AnyValue) *commonpb.AnyValue { return v }
	sp := span(1, 2, 0, "op", tracepb.Span_SPAN_KIND_UNSPECIFIED, 0, 1,
		&commonpb.KeyValue{Key: "b", Value: av(&commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}})},
		&commonpb.KeyValue{Key: "d", Value: av(&commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.5}})},
		&commonpb.KeyValue{Key: "bin", Value: av(&commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{1, 2}}})},
		&commonpb.KeyValue{Key: "arr", Value: av(&commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{
			Values: []*commonpb.AnyValue{{Value: &commonpb.AnyValue_StringValue{StringValue: "x"}}, {Value: &commonpb.AnyValue_IntValue{IntValue: 3}}}}}})},
		&commonpb.KeyValue{Key: "map", Value: av(&commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
			Values: []*commonpb.KeyValue{str("k", "v")}}}})},
	)
	sp.TraceState = "vendor=1"
	sp.DroppedAttributesCount = 2
	sp.Links = []*tracepb.Span_Link{{TraceId: tid(9), SpanId: sid(8)}}
	st, why := convert(sp, "", "")
	if st == nil {
		t.Fatal(why)
	}
	got, _ := json.Marshal(struct {
		Tags []KeyValue
		Refs []Reference
	}{st.span.Tags, st.span.References})
	want := `{"Tags":[{"key":"b","type":"bool","value":true},{"key":"d","type":"float64","value":0.5},` +
		`{"key":"bin","type":"binary","value":"AQI="},{"key":"arr","type":"string","value":"[\"x\",3]"},` +
		`{"key":"map","type":"string","value":"{\"k\":\"v\"}"},{"key":"w3c.tracestate","type":"string","value":"vendor=1"},` +
		`{"key":"otel.dropped_attributes_count","type":"int64","value":2}],` +
		`"Refs":[{"refType":"FOLLOWS_FROM","traceID":"0000000000000abc0000000000000009","spanID":"0000000000000008"}]}`
	if string(got) != want {
		t.Fatalf("converted:\n got %s\nwant %s", got, want)
	}
	if p := processOf(&resourcepb.Resource{}); p.ServiceName != "OTLP_ResourceNoServiceName" || len(p.Tags) != 0 {
		t.Fatalf("process of an empty resource = %+v", p)
	}
}

func TestTraceIDString(t *testing.T) {
	t.Parallel()
	if got := traceID(tid(7)).String(); got != "0000000000000abc0000000000000007" {
		t.Fatalf("128-bit id = %s", got)
	}
	var low traceID
	low[15] = 7
	if got := low.String(); got != "0000000000000007" {
		t.Fatalf("64-bit id = %s, want 16 digits as Jaeger writes it", got)
	}
}
