package tracestore

import (
	"encoding/base64"
	"encoding/json"
	"strconv"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Jaeger's UI JSON model (jaeger's model/json), the shapes its query
// service answers with.

// Trace is one trace: its spans and the processes they name.
type Trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []Span             `json:"spans"`
	Processes map[string]Process `json:"processes"`
	Warnings  []string           `json:"warnings"`
}

// Span is one span.
type Span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	Flags         uint32      `json:"flags,omitempty"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	StartTime     int64       `json:"startTime"` // µs since the epoch
	Duration      int64       `json:"duration"`  // µs
	Tags          []KeyValue  `json:"tags"`
	Logs          []Log       `json:"logs"`
	ProcessID     string      `json:"processID"`
	Warnings      []string    `json:"warnings"`
}

// Reference links a span to its parent (CHILD_OF) or to a linked span
// (FOLLOWS_FROM).
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// Process is the service that emitted spans and its resource's other
// attributes.
type Process struct {
	ServiceName string     `json:"serviceName"`
	Tags        []KeyValue `json:"tags"`
}

// Log is a span event.
type Log struct {
	Timestamp int64      `json:"timestamp"` // µs since the epoch
	Fields    []KeyValue `json:"fields"`
}

// KeyValue is a typed tag: Type is string, bool, int64, float64 or
// binary (base64 in JSON).
type KeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Tag keys added the way Jaeger's OTLP translator adds them.
const (
	noServiceName     = "OTLP_ResourceNoServiceName"
	tagSpanKind       = "span.kind"
	tagStatusCode     = "otel.status_code"
	tagStatusDesc     = "otel.status_description"
	tagScopeName      = "otel.scope.name"
	tagScopeVersion   = "otel.scope.version"
	tagError          = "error"
	tagTraceState     = "w3c.tracestate"
	tagDroppedAttrs   = "otel.dropped_attributes_count"
	tagDroppedEvents  = "otel.dropped_events_count"
	tagDroppedLinks   = "otel.dropped_links_count"
	fieldEventName    = "event"
	refChildOf        = "CHILD_OF"
	refFollowsFrom    = "FOLLOWS_FROM"
	typeString        = "string"
	typeBool          = "bool"
	typeInt64         = "int64"
	typeFloat64       = "float64"
	typeBinary        = "binary"
	maxIDBytesMessage = "must be 16 bytes (trace_id) and 8 bytes (span_id), not all zero"
)

// str renders a tag's value as Jaeger compares tags in a query: as text.
func (kv KeyValue) str() string {
	switch v := kv.Value.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	}
	return ""
}

// key identifies a process by its service and tags, so that equal
// processes in one trace share an id.
func (p *Process) key() string {
	b, _ := json.Marshal(p)
	return string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }

// keyValue converts an OTLP attribute. Arrays and maps become JSON text,
// as in Jaeger's translator.
func keyValue(k string, v *commonpb.AnyValue) KeyValue {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return KeyValue{k, typeString, x.StringValue}
	case *commonpb.AnyValue_BoolValue:
		return KeyValue{k, typeBool, x.BoolValue}
	case *commonpb.AnyValue_IntValue:
		return KeyValue{k, typeInt64, x.IntValue}
	case *commonpb.AnyValue_DoubleValue:
		return KeyValue{k, typeFloat64, x.DoubleValue}
	case *commonpb.AnyValue_BytesValue:
		return KeyValue{k, typeBinary, x.BytesValue}
	case *commonpb.AnyValue_ArrayValue, *commonpb.AnyValue_KvlistValue:
		b, _ := json.Marshal(plain(v))
		return KeyValue{k, typeString, string(b)}
	}
	return KeyValue{k, typeString, ""}
}

// plain turns an AnyValue into the Go value its JSON text shows.
func plain(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return x.BytesValue
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, plain(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := make(map[string]any, len(x.KvlistValue.GetValues()))
		for _, e := range x.KvlistValue.GetValues() {
			out[e.GetKey()] = plain(e.GetValue())
		}
		return out
	}
	return nil
}

var spanKinds = map[tracepb.Span_SpanKind]string{
	tracepb.Span_SPAN_KIND_INTERNAL: "internal",
	tracepb.Span_SPAN_KIND_SERVER:   "server",
	tracepb.Span_SPAN_KIND_CLIENT:   "client",
	tracepb.Span_SPAN_KIND_PRODUCER: "producer",
	tracepb.Span_SPAN_KIND_CONSUMER: "consumer",
}

// convert turns an OTLP span into its stored Jaeger form, or returns nil
// and why the span is refused.
func convert(sp *tracepb.Span, scopeName, scopeVersion string) (*stored, string) {
	if len(sp.GetTraceId()) != 16 || len(sp.GetSpanId()) != 8 {
		return nil, "span ids " + maxIDBytesMessage
	}
	st := &stored{trace: traceID(sp.GetTraceId()), id: spanID(sp.GetSpanId())}
	if st.trace == (traceID{}) || st.id == (spanID{}) {
		return nil, "span ids " + maxIDBytesMessage
	}
	tid := st.trace.String()
	start, end := sp.GetStartTimeUnixNano(), sp.GetEndTimeUnixNano()
	st.start = int64(start / 1000)
	if end > start {
		st.dur = int64((end - start) / 1000)
	}
	span := Span{
		// No Flags: Jaeger v2 answers spans it took over OTLP without
		// them (its OTLP translation drops the W3C flags), and the store
		// answers as Jaeger does.
		TraceID: tid, SpanID: st.id.String(),
		OperationName: sp.GetName(), StartTime: st.start, Duration: st.dur,
		References: []Reference{}, Tags: make([]KeyValue, 0, len(sp.GetAttributes())+4), Logs: []Log{},
	}
	if p := sp.GetParentSpanId(); len(p) == 8 && spanID(p) != (spanID{}) {
		span.References = append(span.References, Reference{refChildOf, tid, spanID(p).String()})
	}
	for _, l := range sp.GetLinks() {
		if len(l.GetTraceId()) == 16 && len(l.GetSpanId()) == 8 {
			span.References = append(span.References, Reference{refFollowsFrom, traceID(l.GetTraceId()).String(), spanID(l.GetSpanId()).String()})
		}
	}
	for _, kv := range sp.GetAttributes() {
		span.Tags = append(span.Tags, keyValue(kv.GetKey(), kv.GetValue()))
	}
	if scopeName != "" {
		span.Tags = append(span.Tags, KeyValue{tagScopeName, typeString, scopeName})
	}
	if scopeVersion != "" {
		span.Tags = append(span.Tags, KeyValue{tagScopeVersion, typeString, scopeVersion})
	}
	if k, ok := spanKinds[sp.GetKind()]; ok {
		span.Tags = append(span.Tags, KeyValue{tagSpanKind, typeString, k})
	}
	switch sp.GetStatus().GetCode() {
	case tracepb.Status_STATUS_CODE_ERROR:
		span.Tags = append(span.Tags, KeyValue{tagStatusCode, typeString, "ERROR"}, KeyValue{tagError, typeBool, true})
	case tracepb.Status_STATUS_CODE_OK:
		span.Tags = append(span.Tags, KeyValue{tagStatusCode, typeString, "OK"})
	}
	if msg := sp.GetStatus().GetMessage(); msg != "" {
		span.Tags = append(span.Tags, KeyValue{tagStatusDesc, typeString, msg})
	}
	if ts := sp.GetTraceState(); ts != "" {
		span.Tags = append(span.Tags, KeyValue{tagTraceState, typeString, ts})
	}
	for _, d := range []struct {
		key string
		n   uint32
	}{{tagDroppedAttrs, sp.GetDroppedAttributesCount()}, {tagDroppedEvents, sp.GetDroppedEventsCount()}, {tagDroppedLinks, sp.GetDroppedLinksCount()}} {
		if d.n > 0 {
			span.Tags = append(span.Tags, KeyValue{d.key, typeInt64, int64(d.n)})
		}
	}
	for _, ev := range sp.GetEvents() {
		l := Log{Timestamp: int64(ev.GetTimeUnixNano() / 1000), Fields: make([]KeyValue, 0, len(ev.GetAttributes())+1)}
		if ev.GetName() != "" {
			l.Fields = append(l.Fields, KeyValue{fieldEventName, typeString, ev.GetName()})
		}
		for _, kv := range ev.GetAttributes() {
			l.Fields = append(l.Fields, keyValue(kv.GetKey(), kv.GetValue()))
		}
		span.Logs = append(span.Logs, l)
	}
	st.span = span
	return st, ""
}
