package propagation

// parseB3TraceID reads a 64-bit (16 hex) or 128-bit (32 hex) B3 trace id;
// a 64-bit id fills the low half. Upper-case hex is accepted, as Zipkin's
// own parsers accept it.
func parseB3TraceID(dst *[16]byte, s string) bool {
	*dst = [16]byte{}
	switch len(s) {
	case 16:
		if !unhex(dst[8:], s, false) {
			return false
		}
	case 32:
		if !unhex(dst[:], s, false) {
			return false
		}
	default:
		return false
	}
	return !isZero(dst[:])
}

func parseB3SpanID(dst *[8]byte, s string) bool {
	return unhex(dst[:], s, false) && !isZero(dst[:])
}

// b3TraceID writes a trace id as B3 does: 16 hex digits when the high
// half is zero (a 64-bit trace, kept 64-bit), 32 otherwise.
func b3TraceID(id [16]byte) string {
	if isZero(id[:8]) {
		return hexString(id[8:])
	}
	return hexString(id[:])
}

// ParseB3 parses a single "b3" header:
// {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]], or a sampling
// state alone ("0", "1", "d"). ok reports a full context; a state alone
// gives ok == false with SampledKnown set.
func ParseB3(v string) (sc SpanContext, ok bool) {
	v = trimOWS(v)
	if len(v) == 1 {
		return b3Decision(v), false
	}
	var parts [4]string
	n := 0
	for n < 4 {
		i := indexByte(v, '-')
		if i < 0 {
			parts[n] = v
			n++
			v = ""
			break
		}
		parts[n], v = v[:i], v[i+1:]
		n++
	}
	if v != "" || n < 2 {
		return SpanContext{}, false // more than four fields, or one
	}
	if !parseB3TraceID(&sc.TraceID, parts[0]) || !parseB3SpanID(&sc.SpanID, parts[1]) {
		return SpanContext{}, false
	}
	if n >= 3 {
		d := b3Decision(parts[2])
		if !d.SampledKnown {
			return SpanContext{}, false
		}
		sc.Sampled, sc.Debug, sc.SampledKnown = d.Sampled, d.Debug, true
	}
	if n == 4 {
		var parent [8]byte
		if !parseB3SpanID(&parent, parts[3]) {
			return SpanContext{}, false
		}
	}
	return sc, true
}

// b3Decision reads a b3 sampling state; an unknown one is no decision.
func b3Decision(s string) SpanContext {
	switch s {
	case "0":
		return SpanContext{SampledKnown: true}
	case "1":
		return SpanContext{SampledKnown: true, Sampled: true}
	case "d":
		return SpanContext{SampledKnown: true, Sampled: true, Debug: true}
	}
	return SpanContext{}
}

// ParseB3Multi parses the x-b3-* headers' values (empty when absent).
// Without a trace id, sampled and flags still give a decision (ok ==
// false, SampledKnown set). x-b3-sampled takes "1"/"0" and, as the B3
// spec asks of readers, the legacy "true"/"false"; x-b3-flags: 1 is
// debug, which implies sampled. A trace id without a valid span id, or
// a value that does not parse, yields nothing.
func ParseB3Multi(traceID, spanID, sampled, flags string) (sc SpanContext, ok bool) {
	traceID, spanID, sampled, flags = trimOWS(traceID), trimOWS(spanID), trimOWS(sampled), trimOWS(flags)
	switch sampled {
	case "":
	case "1", "true":
		sc.Sampled, sc.SampledKnown = true, true
	case "0", "false":
		sc.SampledKnown = true
	default:
		return SpanContext{}, false
	}
	if flags == "1" {
		sc.Debug, sc.Sampled, sc.SampledKnown = true, true, true
	}
	if traceID == "" {
		if spanID != "" {
			return SpanContext{}, false
		}
		return sc, false
	}
	if !parseB3TraceID(&sc.TraceID, traceID) || !parseB3SpanID(&sc.SpanID, spanID) {
		return SpanContext{}, false
	}
	return sc, true
}

// FormatB3 writes sc as a single b3 header, with the sampling state when
// one is known.
func FormatB3(sc SpanContext) string {
	tid := 32
	if isZero(sc.TraceID[:8]) {
		tid = 16
	}
	var b [32 + 1 + 16 + 2]byte
	n := 0
	if tid == 32 {
		hexEncode(b[:32], sc.TraceID[:])
	} else {
		hexEncode(b[:16], sc.TraceID[8:])
	}
	n = tid
	b[n] = '-'
	n++
	hexEncode(b[n:n+16], sc.SpanID[:])
	n += 16
	if sc.SampledKnown || sc.Debug {
		b[n] = '-'
		b[n+1] = b3State(sc)[0]
		n += 2
	}
	return string(b[:n])
}
