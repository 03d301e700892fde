// Package propagation reads and writes trace context headers: W3C Trace
// Context (traceparent, tracestate), B3 in its multi-header (x-b3-*) and
// single-header (b3) forms, and AWS X-Ray (X-Amzn-Trace-Id).
//
// # Extract: mixed in
//
// Extract accepts any of the formats, whichever the client sent. When a
// request carries more than one, the first valid one in this order wins:
//
//	traceparent (+ tracestate)  >  b3  >  x-b3-*  >  X-Amzn-Trace-Id
//
// A header that does not parse is ignored as if it were absent, and the
// next format is tried; nothing a client sends can make Extract fail or
// panic (each parser has a fuzz target). W3C version 00 is parsed strictly
// (exactly 55 characters, lower-case hex, non-zero ids); a higher version
// is parsed by the spec's forward-compatibility rule (the 00 prefix is read
// and anything after a further "-" is ignored); version ff is invalid.
// tracestate is kept only beside a valid traceparent and only when it is
// well formed (at most 32 list members of key=value).
//
// A sampling decision may arrive without a trace: "b3: 0", "b3: d", or
// x-b3-sampled / x-b3-flags without x-b3-traceid. Extract then reports
// ok == false (no parent) but the returned SpanContext has SampledKnown
// set, so the sampler still honours the decision.
//
// X-Ray's Root=1-<8 hex epoch seconds>-<24 hex> maps to a 128-bit trace id
// as OpenTelemetry's X-Ray propagator maps it: the 8 hex digits of time
// followed by the 24 random ones, 32 hex digits in all. Parent is the span
// id; Sampled=1/0 is a decision, Sampled=? or no Sampled field is none.
// Other fields (Self, Lineage, vendor data) are ignored on the way in and
// not written on the way out.
//
// # Inject: mixed out
//
// Inject writes every format named in a Formats set, whatever arrived, so
// that a mesh can speak W3C to one service and X-Ray to another.
//
// # Cost
//
// Extract reads headers through the Getter interface (http.Header is
// one) with canonical names, parses without allocating, and keeps
// tracestate as a substring of the header value: extracting costs no
// allocation. Inject formats one string per header it writes.
package propagation
