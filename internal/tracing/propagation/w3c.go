package propagation

// traceparentLen is the length of a version 00 traceparent.
const traceparentLen = 55

// ParseTraceparent parses a W3C traceparent value. Version 00 must be
// exactly "00-<32 hex>-<16 hex>-<2 hex>" in lower case with non-zero ids;
// a later version (not ff) is read by its 00 prefix, as the spec's
// forward-compatibility rule says, provided what follows is "-" or
// nothing. ok is false for anything else.
func ParseTraceparent(v string) (sc SpanContext, ok bool) {
	v = trimOWS(v)
	if len(v) < traceparentLen {
		return SpanContext{}, false
	}
	var ver [1]byte
	if !unhex(ver[:], v[0:2], true) || ver[0] == 0xff {
		return SpanContext{}, false
	}
	if ver[0] == 0 && len(v) != traceparentLen {
		return SpanContext{}, false
	}
	if len(v) > traceparentLen && v[traceparentLen] != '-' {
		return SpanContext{}, false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return SpanContext{}, false
	}
	if !unhex(sc.TraceID[:], v[3:35], true) || !unhex(sc.SpanID[:], v[36:52], true) {
		return SpanContext{}, false
	}
	var flags [1]byte
	if !unhex(flags[:], v[53:55], true) {
		return SpanContext{}, false
	}
	if isZero(sc.TraceID[:]) || isZero(sc.SpanID[:]) {
		return SpanContext{}, false
	}
	sc.Sampled = flags[0]&1 == 1
	sc.SampledKnown = true
	return sc, true
}

// FormatTraceparent writes sc as a version 00 traceparent. W3C has no
// debug flag: a debug context is written as sampled.
func FormatTraceparent(sc SpanContext) string {
	var b [traceparentLen]byte
	b[0], b[1], b[2] = '0', '0', '-'
	hexEncode(b[3:35], sc.TraceID[:])
	b[35] = '-'
	hexEncode(b[36:52], sc.SpanID[:])
	b[52], b[53], b[54] = '-', '0', '0'
	if sc.Sampled || sc.Debug {
		b[54] = '1'
	}
	return string(b[:])
}

// Bounds on tracestate from the W3C spec.
const (
	maxTracestateMembers = 32
	maxTracestateKey     = 256
	maxTracestateValue   = 256
)

// ValidTracestate reports whether v is a well-formed tracestate list: at
// most 32 members, each key=value with the key and value alphabets of the
// spec. A malformed tracestate is dropped whole, as the spec asks.
func ValidTracestate(v string) bool {
	members := 0
	for len(v) > 0 {
		var m string
		if i := indexByte(v, ','); i >= 0 {
			m, v = v[:i], v[i+1:]
		} else {
			m, v = v, ""
		}
		m = trimOWS(m)
		if m == "" {
			continue // empty members are allowed and skipped
		}
		members++
		if members > maxTracestateMembers {
			return false
		}
		eq := indexByte(m, '=')
		if eq <= 0 || !validTracestateKey(m[:eq]) || !validTracestateValue(m[eq+1:]) {
			return false
		}
	}
	return members > 0
}

func validTracestateKey(k string) bool {
	if len(k) > maxTracestateKey {
		return false
	}
	at := false
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '-' || c == '*' || c == '/'):
		case i > 0 && c == '@' && !at && i < len(k)-1:
			at = true
		default:
			return false
		}
	}
	return true
}

func validTracestateValue(v string) bool {
	if len(v) == 0 || len(v) > maxTracestateValue || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
