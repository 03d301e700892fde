package propagation

import (
	"encoding/hex"
	"net/http"
	"testing"
)

func tid(s string) [16]byte {
	var b [16]byte
	d, err := hex.DecodeString(s)
	if err != nil || len(d) > 16 {
		panic(s)
	}
	copy(b[16-len(d):], d)
	return b
}

func sid(s string) [8]byte {
	var b [8]byte
	d, err := hex.DecodeString(s)
	if err != nil || len(d) != 8 {
		panic(s)
	}
	copy(b[:], d)
	return b
}

const (
	traceHex = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanHex  = "00f067aa0ba902b7"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestExtract(t *testing.T) {
	t.Parallel()
	full := SpanContext{TraceID: tid(traceHex), SpanID: sid(spanHex)}
	sampled := full
	sampled.Sampled, sampled.SampledKnown = true, true
	notSampled := full
	notSampled.SampledKnown = true
	unknown := full
	debug := sampled
	debug.Debug = true
	withState := sampled
	withState.TraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	short := SpanContext{TraceID: tid("a3ce929d0e0e4736"), SpanID: sid(spanHex), Sampled: true, SampledKnown: true}

	tests := []struct {
		name string
		h    http.Header
		want SpanContext
		from Format
		ok   bool
	}{
		{"none", hdr(), SpanContext{}, 0, false},
		{"w3c sampled", hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-01"), sampled, W3C, true},
		{"w3c not sampled", hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-00"), notSampled, W3C, true},
		{"w3c other flag bits", hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-09"), sampled, W3C, true},
		{"w3c with tracestate", hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-01", "tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"), withState, W3C, true},
		{"w3c bad tracestate dropped", hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-01", "tracestate", "Congo=x"), sampled, W3C, true},
		{"w3c future version longer", hdr("traceparent", "cc-"+traceHex+"-"+spanHex+"-01-what-the-future"), sampled, W3C, true},
		{"w3c future version exact", hdr("traceparent", "01-"+traceHex+"-"+spanHex+"-01"), sampled, W3C, true},
		{"w3c future version no dash", hdr("traceparent", "01-"+traceHex+"-"+spanHex+"-01x"), SpanContext{}, 0, false},
		{"w3c version ff", hdr("traceparent", "ff-"+traceHex+"-"+spanHex+"-01"), SpanContext{}, 0, false},
		{"w3c 00 too long", hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-01-"), SpanContext{}, 0, false},
		{"w3c upper case", hdr("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-"+spanHex+"-01"), SpanContext{}, 0, false},
		{"w3c zero trace", hdr("traceparent", "00-00000000000000000000000000000000-"+spanHex+"-01"), SpanContext{}, 0, false},
		{"w3c zero span", hdr("traceparent", "00-"+traceHex+"-0000000000000000-01"), SpanContext{}, 0, false},
		{"w3c bad flags", hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-0g"), SpanContext{}, 0, false},
		{"b3 single sampled", hdr("b3", traceHex+"-"+spanHex+"-1"), sampled, B3Single, true},
		{"b3 single deferred", hdr("b3", traceHex+"-"+spanHex), unknown, B3Single, true},
		{"b3 single debug with parent", hdr("b3", traceHex+"-"+spanHex+"-d-"+spanHex), debug, B3Single, true},
		{"b3 single 64-bit", hdr("b3", "a3ce929d0e0e4736-"+spanHex+"-1"), short, B3Single, true},
		{"b3 single deny only", hdr("b3", "0"), SpanContext{SampledKnown: true}, 0, false},
		{"b3 single debug only", hdr("b3", "d"), SpanContext{SampledKnown: true, Sampled: true, Debug: true}, 0, false},
		{"b3 single bad state", hdr("b3", traceHex+"-"+spanHex+"-x"), SpanContext{}, 0, false},
		{"b3 single five fields", hdr("b3", traceHex+"-"+spanHex+"-1-"+spanHex+"-1"), SpanContext{}, 0, false},
		{"b3 multi", hdr("x-b3-traceid", traceHex, "x-b3-spanid", spanHex, "x-b3-parentspanid", "0000000000000001", "x-b3-sampled", "1"), sampled, B3Multi, true},
		{"b3 multi 64-bit", hdr("x-b3-traceid", "a3ce929d0e0e4736", "x-b3-spanid", spanHex, "x-b3-sampled", "1"), short, B3Multi, true},
		{"b3 multi legacy true", hdr("x-b3-traceid", traceHex, "x-b3-spanid", spanHex, "x-b3-sampled", "true"), sampled, B3Multi, true},
		{"b3 multi deny", hdr("x-b3-traceid", traceHex, "x-b3-spanid", spanHex, "x-b3-sampled", "0"), notSampled, B3Multi, true},
		{"b3 multi flags debug", hdr("x-b3-traceid", traceHex, "x-b3-spanid", spanHex, "x-b3-flags", "1"), debug, B3Multi, true},
		{"b3 multi upper hex", hdr("x-b3-traceid", "4BF92F3577B34DA6A3CE929D0E0E4736", "x-b3-spanid", "00F067AA0BA902B7"), unknown, B3Multi, true},
		{"b3 multi decision only", hdr("x-b3-sampled", "0"), SpanContext{SampledKnown: true}, 0, false},
		{"b3 multi no span id", hdr("x-b3-traceid", traceHex, "x-b3-sampled", "1"), SpanContext{}, 0, false},
		{"b3 multi bad sampled", hdr("x-b3-traceid", traceHex, "x-b3-spanid", spanHex, "x-b3-sampled", "yes"), SpanContext{}, 0, false},
		{"b3 multi 20 hex", hdr("x-b3-traceid", "4bf92f3577b34da6a3ce", "x-b3-spanid", spanHex), SpanContext{}, 0, false},
		{"xray", hdr("X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="+spanHex+";Sampled=1"), sampled, XRay, true},
		{"xray not sampled, fields reordered, spaces, extra", hdr("X-Amzn-Trace-Id", "Sampled=0; Lineage=a87bd80c:1|68fd508a:5 ;Parent="+spanHex+"; Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Self=1-x"), notSampled, XRay, true},
		{"xray deferred", hdr("X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="+spanHex+";Sampled=?"), unknown, XRay, true},
		{"xray no parent", hdr("X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Sampled=1"), SpanContext{}, 0, false},
		{"xray bad version", hdr("X-Amzn-Trace-Id", "Root=2-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="+spanHex), SpanContext{}, 0, false},
		{"xray bad sampled", hdr("X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="+spanHex+";Sampled=2"), SpanContext{}, 0, false},
		// Mixed in: precedence traceparent > b3 > x-b3 > X-Amzn-Trace-Id.
		{"mixed w3c wins", hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-00", "b3", "a3ce929d0e0e4736-"+spanHex+"-1", "X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="+spanHex+";Sampled=1"), notSampled, W3C, true},
		{"mixed bad w3c falls to b3", hdr("traceparent", "garbage", "b3", "a3ce929d0e0e4736-"+spanHex+"-1", "x-b3-traceid", traceHex, "x-b3-spanid", spanHex), short, B3Single, true},
		{"mixed b3 over multi", hdr("b3", "a3ce929d0e0e4736-"+spanHex+"-1", "x-b3-traceid", traceHex, "x-b3-spanid", spanHex), short, B3Single, true},
		{"mixed multi over xray", hdr("x-b3-traceid", "a3ce929d0e0e4736", "x-b3-spanid", spanHex, "x-b3-sampled", "1", "X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="+spanHex+";Sampled=0"), short, B3Multi, true},
		{"mixed b3 deny then xray context", hdr("b3", "0", "X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="+spanHex+";Sampled=1"), sampled, XRay, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, from, ok := ExtractFormats(tt.h, AllFormats)
			if got != tt.want || from != tt.from || ok != tt.ok {
				t.Errorf("ExtractFormats = %+v, %v, %v; want %+v, %v, %v", got, from, ok, tt.want, tt.from, tt.ok)
			}
			got2, ok2 := Extract(tt.h)
			if got2 != got || ok2 != ok {
				t.Errorf("Extract differs from ExtractFormats(all): %+v %v", got2, ok2)
			}
		})
	}
}

func TestExtractFormatsRestricts(t *testing.T) {
	t.Parallel()
	h := hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-01", "X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=1111111111111111;Sampled=0")
	sc, from, ok := ExtractFormats(h, Formats(XRay))
	if !ok || from != XRay || sc.SpanID != sid("1111111111111111") || sc.Sampled {
		t.Fatalf("xray only: %+v %v %v", sc, from, ok)
	}
}

// TestInject checks the headers written for each output set (mixed out)
// and that every one reads back to the same context.
func TestInject(t *testing.T) {
	t.Parallel()
	sc := SpanContext{TraceID: tid(traceHex), SpanID: sid(spanHex), Sampled: true, SampledKnown: true, TraceState: "rojo=1"}
	short := SpanContext{TraceID: tid("a3ce929d0e0e4736"), SpanID: sid(spanHex), SampledKnown: true}
	debug := sc
	debug.Debug = true
	debug.TraceState = ""
	tests := []struct {
		name string
		sc   SpanContext
		fs   Formats
		want map[string]string
	}{
		{"w3c", sc, Formats(W3C), map[string]string{
			"Traceparent": "00-" + traceHex + "-" + spanHex + "-01", "Tracestate": "rojo=1"}},
		{"b3 single", sc, Formats(B3Single), map[string]string{"B3": traceHex + "-" + spanHex + "-1"}},
		{"b3 single 64-bit not sampled", short, Formats(B3Single), map[string]string{"B3": "a3ce929d0e0e4736-" + spanHex + "-0"}},
		{"b3 multi", sc, Formats(B3Multi), map[string]string{
			"X-B3-Traceid": traceHex, "X-B3-Spanid": spanHex, "X-B3-Sampled": "1"}},
		{"b3 multi debug", debug, Formats(B3Multi), map[string]string{
			"X-B3-Traceid": traceHex, "X-B3-Spanid": spanHex, "X-B3-Flags": "1"}},
		{"xray", sc, Formats(XRay), map[string]string{
			"X-Amzn-Trace-Id": "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=" + spanHex + ";Sampled=1"}},
		{"xray deferred", SpanContext{TraceID: sc.TraceID, SpanID: sc.SpanID}, Formats(XRay), map[string]string{
			"X-Amzn-Trace-Id": "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=" + spanHex + ";Sampled=?"}},
		{"all", sc, AllFormats, map[string]string{
			"Traceparent": "00-" + traceHex + "-" + spanHex + "-01", "Tracestate": "rojo=1",
			"B3":           traceHex + "-" + spanHex + "-1",
			"X-B3-Traceid": traceHex, "X-B3-Spanid": spanHex, "X-B3-Sampled": "1",
			"X-Amzn-Trace-Id": "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=" + spanHex + ";Sampled=1"}},
		{"decision only", SpanContext{SampledKnown: true}, AllFormats, map[string]string{"B3": "0", "X-B3-Sampled": "0"}},
		{"debug decision only", SpanContext{SampledKnown: true, Sampled: true, Debug: true}, AllFormats, map[string]string{"B3": "d", "X-B3-Flags": "1"}},
		{"nothing", SpanContext{}, AllFormats, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			Inject(h, tt.sc, tt.fs)
			if len(h) != len(tt.want) {
				t.Errorf("wrote %v, want %v", h, tt.want)
			}
			for k, v := range tt.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			// Each written format reads back to the context.
			for _, f := range []Format{W3C, B3Single, B3Multi, XRay} {
				if !tt.fs.Has(f) || !tt.sc.IsValid() {
					continue
				}
				got, from, ok := ExtractFormats(h, Formats(f))
				want := tt.sc
				if f != W3C {
					want.TraceState = ""
				}
				if f == W3C && want.Debug { // W3C has no debug bit
					want.Debug = false
				}
				if f == W3C && !want.SampledKnown {
					want.SampledKnown = true
				}
				if !ok || from != f || got != want {
					t.Errorf("%v round trip: %+v %v, want %+v", f, got, ok, want)
				}
			}
		})
	}
}

// TestMixedInMixedOut reads each incoming format and writes every other,
// as a sidecar between a B3 client and an X-Ray/W3C upstream does.
func TestMixedInMixedOut(t *testing.T) {
	t.Parallel()
	ins := map[string]http.Header{
		"w3c":     hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-01"),
		"b3":      hdr("b3", traceHex+"-"+spanHex+"-1"),
		"b3multi": hdr("x-b3-traceid", traceHex, "x-b3-spanid", spanHex, "x-b3-sampled", "1"),
		"xray":    hdr("X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="+spanHex+";Sampled=1"),
	}
	for inName, in := range ins {
		sc, ok := Extract(in)
		if !ok {
			t.Fatalf("%s: not extracted", inName)
		}
		for _, out := range []Format{W3C, B3Single, B3Multi, XRay} {
			h := http.Header{}
			Inject(h, sc, Formats(out))
			got, from, ok := ExtractFormats(h, AllFormats)
			if !ok || from != out || got.TraceID != sc.TraceID || got.SpanID != sc.SpanID || !got.Sampled {
				t.Errorf("%s -> %v: %+v from %v ok %v", inName, out, got, from, ok)
			}
		}
	}
}

// TestInjectReplacesStaleHeaders: a previous hop's headers of the
// written formats do not ride along with the new context; other formats
// are left alone.
func TestInjectReplacesStaleHeaders(t *testing.T) {
	t.Parallel()
	h := hdr("x-b3-traceid", "a3ce929d0e0e4736", "x-b3-spanid", "1111111111111111", "x-b3-parentspanid", "2222222222222222",
		"x-b3-flags", "1", "tracestate", "old=1", "traceparent", "00-"+traceHex+"-1111111111111111-01",
		"X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=1111111111111111;Sampled=1")
	sc := SpanContext{TraceID: tid(traceHex), SpanID: sid(spanHex), SampledKnown: true}
	Inject(h, sc, Formats(W3C|B3Multi))
	want := http.Header{
		"Traceparent":  {"00-" + traceHex + "-" + spanHex + "-00"},
		"X-B3-Traceid": {traceHex}, "X-B3-Spanid": {spanHex}, "X-B3-Sampled": {"0"},
		"X-Amzn-Trace-Id": {"Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=1111111111111111;Sampled=1"},
	}
	if len(h) != len(want) {
		t.Fatalf("headers %v, want %v", h, want)
	}
	for k, v := range want {
		if h.Get(k) != v[0] {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v[0])
		}
	}
}

func TestParseFormats(t *testing.T) {
	t.Parallel()
	fs, err := ParseFormats("tracecontext, b3multi,XRAY")
	if err != nil || fs != Formats(W3C|B3Multi|XRay) {
		t.Fatalf("ParseFormats = %v, %v", fs, err)
	}
	if _, err := ParseFormats("w3c,jaeger"); err == nil || err.Error() != `propagation format "jaeger": unknown (want w3c, b3, b3multi or xray)` {
		t.Fatalf("err = %v", err)
	}
}

func TestValidTracestate(t *testing.T) {
	t.Parallel()
	long := ""
	for i := range 33 {
		if i > 0 {
			long += ","
		}
		long += "k" + string(rune('a'+i%26)) + "=v"
	}
	tests := []struct {
		in   string
		want bool
	}{
		{"rojo=00f067aa0ba902b7", true},
		{"rojo=1, congo=2 ,", true},
		{"tenant@system=v", true},
		{"a=b=c", false},
		{"=v", false},
		{"Upper=v", false},
		{"k=", false},
		{"k=v ", true}, // trailing OWS of the member is trimmed
		{"k=a,b", false},
		{" , ", false},
		{long, false},
	}
	for _, tt := range tests {
		if got := ValidTracestate(tt.in); got != tt.want {
			t.Errorf("ValidTracestate(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFormatXRayTraceID(t *testing.T) {
	t.Parallel()
	if got := FormatXRayTraceID(tid(traceHex)); got != "1-4bf92f35-77b34da6a3ce929d0e0e4736" {
		t.Fatal(got)
	}
}

// TestExtractAllocs: extracting from every format costs no allocation.
func TestExtractAllocs(t *testing.T) {
	hs := []http.Header{
		hdr("traceparent", "00-"+traceHex+"-"+spanHex+"-01", "tracestate", "rojo=1"),
		hdr("b3", traceHex+"-"+spanHex+"-1"),
		hdr("x-b3-traceid", traceHex, "x-b3-spanid", spanHex, "x-b3-sampled", "1"),
		hdr("X-Amzn-Trace-Id", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="+spanHex+";Sampled=1"),
		hdr(),
	}
	for _, h := range hs {
		if n := testing.AllocsPerRun(100, func() { Extract(h) }); n != 0 {
			t.Errorf("Extract(%v): %v allocs", h, n)
		}
	}
}
