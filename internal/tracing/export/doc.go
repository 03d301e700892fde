// Package export sends finished spans to collectors, off the request
// path: OTLP over gRPC and over HTTP/protobuf (an OpenTelemetry
// Collector, Jaeger, Tempo), Zipkin v2 JSON, and X-Ray segment documents
// over UDP to an X-Ray daemon.
//
// Every exporter is a tracing.Exporter built on a Batcher: Export puts
// the span in a bounded queue and returns at once (a full queue drops the
// span and counts it); one goroutine per exporter takes batches off the
// queue (up to BatchSize spans, or whatever came within FlushInterval)
// and sends them, retrying a failed send with exponential backoff and
// jitter up to MaxRetries times when the failure may pass (unavailable,
// 429, 5xx); then the batch is counted as failed. A collector that is
// down therefore costs the request path nothing: its spans are dropped
// and counted.
//
// The encodings are the ecosystem's own where a maintained module has
// them: OTLP's protobuf types (go.opentelemetry.io/proto/otlp) and
// Zipkin's model (github.com/openzipkin/zipkin-go/model), whose JSON is
// Zipkin's v2 format. X-Ray segment documents are written here: the
// X-Ray SDK for Go has a Segment type, but it is the SDK's live,
// mutex-guarded recorder (and brings the AWS SDK with it), not a
// document type; the document is a small JSON schema, written out in
// xray.go field by field from AWS's segment document reference.
package export
