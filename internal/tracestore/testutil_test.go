package tracestore

import (
	"encoding/binary"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// base is the start of every test span: 2026-01-02T03:04:05Z.
const base = uint64(1767323045) * 1e9

func tid(n uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[:8], 0xabc)
	binary.BigEndian.PutUint64(b[8:], n)
	return b
}

func sid(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func i64(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// resource wraps spans of one service and one scope.
func resource(service string, spans ...*tracepb.Span) *tracepb.ResourceSpans {
	return &tracepb.ResourceSpans{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", service), str("meshlens.mesh", "demo")}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "meshlens", Version: "1.0"},
			Spans: spans,
		}},
	}
}

// span makes a span of trace t: id, parent (0 for a root), start offset
// and duration in microseconds.
func span(t, id, parent uint64, name string, kind tracepb.Span_SpanKind, startUs, durUs uint64, attrs ...*commonpb.KeyValue) *tracepb.Span {
	sp := &tracepb.Span{
		TraceId: tid(t), SpanId: sid(id), Name: name, Kind: kind,
		StartTimeUnixNano: base + startUs*1000, EndTimeUnixNano: base + (startUs+durUs)*1000,
		Attributes: attrs,
	}
	if parent != 0 {
		sp.ParentSpanId = sid(parent)
	}
	return sp
}
