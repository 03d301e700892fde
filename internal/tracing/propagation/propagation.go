package propagation

import "strings"

// SpanContext is the part of a span that crosses process boundaries.
type SpanContext struct {
	// TraceID is the 128-bit trace id; a 64-bit B3 id fills the low half.
	TraceID [16]byte
	// SpanID is the id of the span that sent (or will send) the request.
	SpanID [8]byte
	// Sampled is the sampling decision; it means something only when
	// SampledKnown is set.
	Sampled bool
	// Debug is B3's debug flag (x-b3-flags: 1, b3: ...-d): sample, and
	// ask collectors to keep, whatever the local rate.
	Debug bool
	// SampledKnown says the sender made a decision (W3C always does; B3
	// and X-Ray may defer).
	SampledKnown bool
	// TraceState is W3C tracestate, passed on unchanged.
	TraceState string
}

// IsValid reports whether sc names a trace and a span: both ids non-zero.
func (sc SpanContext) IsValid() bool {
	return sc.TraceID != [16]byte{} && sc.SpanID != [8]byte{}
}

// Format is one propagation format.
type Format uint8

// The formats. They are bits so that a Formats set is a plain integer.
const (
	// W3C is traceparent and tracestate.
	W3C Format = 1 << iota
	// B3Single is the single "b3" header.
	B3Single
	// B3Multi is the x-b3-* headers.
	B3Multi
	// XRay is X-Amzn-Trace-Id.
	XRay
)

// Formats is a set of formats, as a bit set of Format values.
type Formats uint8

// AllFormats is every format.
const AllFormats = Formats(W3C | B3Single | B3Multi | XRay)

// Has reports whether f is in the set.
func (fs Formats) Has(f Format) bool { return fs&Formats(f) != 0 }

// String names the format as ParseFormat spells it.
func (f Format) String() string {
	switch f {
	case W3C:
		return "w3c"
	case B3Single:
		return "b3"
	case B3Multi:
		return "b3multi"
	case XRay:
		return "xray"
	}
	return "none"
}

// ParseFormats reads a comma-separated list of format names ("w3c",
// "b3", "b3multi", "xray"; "tracecontext" is a synonym of w3c and
// "b3single" of b3), as an OTEL_PROPAGATORS-style setting would give it.
func ParseFormats(s string) (Formats, error) {
	var fs Formats
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(strings.ToLower(name))
		switch name {
		case "":
			continue
		case "w3c", "tracecontext":
			fs |= Formats(W3C)
		case "b3", "b3single":
			fs |= Formats(B3Single)
		case "b3multi":
			fs |= Formats(B3Multi)
		case "xray":
			fs |= Formats(XRay)
		default:
			return 0, &FormatError{Name: name}
		}
	}
	return fs, nil
}

// FormatError is a propagation format name that ParseFormats does not know.
type FormatError struct{ Name string }

func (e *FormatError) Error() string {
	return "propagation format " + `"` + e.Name + `"` + ": unknown (want w3c, b3, b3multi or xray)"
}

// Getter reads a request header. Names are given in canonical form
// ("Traceparent", "X-B3-Traceid"), so http.Header's Get finds them
// without allocating; an implementation over lower-case HTTP/2 names
// must compare case-insensitively.
type Getter interface {
	Get(name string) string
}

// Setter writes and removes request headers; Set replaces any value the
// header had. Names are canonical, as for Getter. http.Header is one.
type Setter interface {
	Set(name, value string)
	Del(name string)
}

// Header names in the canonical form http.Header keys them by.
const (
	HeaderTraceparent  = "Traceparent"
	HeaderTracestate   = "Tracestate"
	HeaderB3           = "B3"
	HeaderB3TraceID    = "X-B3-Traceid"
	HeaderB3SpanID     = "X-B3-Spanid"
	HeaderB3ParentSpan = "X-B3-Parentspanid"
	HeaderB3Sampled    = "X-B3-Sampled"
	HeaderB3Flags      = "X-B3-Flags"
	HeaderXRay         = "X-Amzn-Trace-Id"
)

// Extract reads the trace context of a request from whichever format
// arrived, in the precedence the package doc gives. ok reports whether a
// valid parent (trace id and span id) was found; when it was not, sc may
// still carry a sampling decision (sc.SampledKnown) from a B3 header that
// sent only that.
func Extract(h Getter) (sc SpanContext, ok bool) {
	sc, _, ok = ExtractFormats(h, AllFormats)
	return sc, ok
}

// ExtractFormats is Extract limited to the formats in fs; it also says
// which format the context came from (0 when none did).
func ExtractFormats(h Getter, fs Formats) (sc SpanContext, from Format, ok bool) {
	// A decision without ids, kept while looking for a full context.
	var decision SpanContext
	if fs.Has(W3C) {
		if v := h.Get(HeaderTraceparent); v != "" {
			if sc, ok = ParseTraceparent(v); ok {
				if ts := h.Get(HeaderTracestate); ts != "" && ValidTracestate(ts) {
					sc.TraceState = ts
				}
				return sc, W3C, true
			}
		}
	}
	if fs.Has(B3Single) {
		if v := h.Get(HeaderB3); v != "" {
			if sc, ok = ParseB3(v); ok {
				return sc, B3Single, true
			}
			if sc.SampledKnown && !decision.SampledKnown {
				decision = sc
			}
		}
	}
	if fs.Has(B3Multi) {
		sc, ok = parseB3Multi(h)
		if ok {
			return sc, B3Multi, true
		}
		if sc.SampledKnown && !decision.SampledKnown {
			decision = sc
		}
	}
	if fs.Has(XRay) {
		if v := h.Get(HeaderXRay); v != "" {
			if sc, ok = ParseXRay(v); ok {
				return sc, XRay, true
			}
		}
	}
	return decision, 0, false
}

func parseB3Multi(h Getter) (SpanContext, bool) {
	return ParseB3Multi(h.Get(HeaderB3TraceID), h.Get(HeaderB3SpanID), h.Get(HeaderB3Sampled), h.Get(HeaderB3Flags))
}

// Inject writes sc into h in every format of fs, first removing every
// header of those formats (a previous hop's x-b3-parentspanid or
// tracestate must not ride along with a new context). A context without
// ids (a decision only) is written only where a format can say that
// without ids: as "b3: 0"/"b3: 1"/"b3: d" and x-b3-sampled / x-b3-flags.
func Inject(h Setter, sc SpanContext, fs Formats) {
	clearFormats(h, fs)
	if !sc.IsValid() {
		if !sc.SampledKnown && !sc.Debug {
			return
		}
		if fs.Has(B3Single) {
			h.Set(HeaderB3, b3State(sc))
		}
		if fs.Has(B3Multi) {
			if sc.Debug {
				h.Set(HeaderB3Flags, "1")
			} else {
				h.Set(HeaderB3Sampled, b3State(sc))
			}
		}
		return
	}
	if fs.Has(W3C) {
		h.Set(HeaderTraceparent, FormatTraceparent(sc))
		if sc.TraceState != "" {
			h.Set(HeaderTracestate, sc.TraceState)
		}
	}
	if fs.Has(B3Single) {
		h.Set(HeaderB3, FormatB3(sc))
	}
	if fs.Has(B3Multi) {
		h.Set(HeaderB3TraceID, b3TraceID(sc.TraceID))
		h.Set(HeaderB3SpanID, hexString(sc.SpanID[:]))
		switch {
		case sc.Debug:
			// The spec: debug implies accept, so Sampled is not sent.
			h.Set(HeaderB3Flags, "1")
		case sc.SampledKnown:
			h.Set(HeaderB3Sampled, b3State(sc))
		}
	}
	if fs.Has(XRay) {
		h.Set(HeaderXRay, FormatXRay(sc))
	}
}

func clearFormats(h Setter, fs Formats) {
	if fs.Has(W3C) {
		h.Del(HeaderTraceparent)
		h.Del(HeaderTracestate)
	}
	if fs.Has(B3Single) {
		h.Del(HeaderB3)
	}
	if fs.Has(B3Multi) {
		for _, n := range [...]string{HeaderB3TraceID, HeaderB3SpanID, HeaderB3ParentSpan, HeaderB3Sampled, HeaderB3Flags} {
			h.Del(n)
		}
	}
	if fs.Has(XRay) {
		h.Del(HeaderXRay)
	}
}

// b3State is the sampling state as b3 spells it: static strings only.
func b3State(sc SpanContext) string {
	switch {
	case sc.Debug:
		return "d"
	case sc.Sampled:
		return "1"
	default:
		return "0"
	}
}

const hexDigits = "0123456789abcdef"

func hexString(b []byte) string {
	buf := make([]byte, 2*len(b))
	hexEncode(buf, b)
	return string(buf)
}

func hexEncode(dst, src []byte) {
	for i, c := range src {
		dst[2*i] = hexDigits[c>>4]
		dst[2*i+1] = hexDigits[c&0x0f]
	}
}

// unhex decodes hex digits of s into dst (len(s) == 2*len(dst)). lower
// restricts the digits to lower case, as W3C requires.
func unhex(dst []byte, s string, lower bool) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := hexVal(s[2*i], lower)
		lo, ok2 := hexVal(s[2*i+1], lower)
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexVal(c byte, lower bool) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case !lower && 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
