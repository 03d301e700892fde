package propagation

import (
	"net/http"
	"testing"
)

func BenchmarkExtract(b *testing.B) {
	cases := map[string]http.Header{
		"none":    hdr(),
		"w3c":     hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-01"),
		"b3":      hdr("b3", traceHex+"-"+spanHex+"-1"),
		"b3multi": hdr("x-b3-traceid", traceHex, "x-b3-spanid", spanHex, "x-b3-sampled", "1"),
		"xray":    hdr("X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="+spanHex+";Sampled=1"),
	}
	for name, h := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Extract(h)
			}
		})
	}
}

func BenchmarkInjectAll(b *testing.B) {
	sc := SpanContext{TraceID: tid(traceHex), SpanID: sid(spanHex), Sampled: true, SampledKnown: true}
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		Inject(h, sc, AllFormats)
	}
}
