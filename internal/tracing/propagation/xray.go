package propagation

// ParseXRay parses an X-Amzn-Trace-Id value:
// Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=0|1|? with fields in
// any order and other fields ignored. Root and Parent are both required
// (as OpenTelemetry's X-Ray propagator requires them); Sampled=? or no
// Sampled field leaves the decision to this hop.
func ParseXRay(v string) (sc SpanContext, ok bool) {
	var haveRoot, haveParent bool
	for len(v) > 0 {
		var f string
		if i := indexByte(v, ';'); i >= 0 {
			f, v = v[:i], v[i+1:]
		} else {
			f, v = v, ""
		}
		f = trimOWS(f)
		eq := indexByte(f, '=')
		if eq < 0 {
			continue
		}
		key, val := f[:eq], trimOWS(f[eq+1:])
		switch key {
		case "Root":
			if haveRoot || !parseXRayRoot(&sc.TraceID, val) {
				return SpanContext{}, false
			}
			haveRoot = true
		case "Parent":
			if haveParent || !parseB3SpanID(&sc.SpanID, val) {
				return SpanContext{}, false
			}
			haveParent = true
		case "Sampled":
			switch val {
			case "1":
				sc.Sampled, sc.SampledKnown = true, true
			case "0":
				sc.Sampled, sc.SampledKnown = false, true
			case "?", "":
				sc.Sampled, sc.SampledKnown = false, false
			default:
				return SpanContext{}, false
			}
		}
	}
	if !haveRoot || !haveParent {
		return SpanContext{}, false
	}
	return sc, true
}

// parseXRayRoot reads "1-<8 hex>-<24 hex>" into a 128-bit id: the time
// digits then the random ones.
func parseXRayRoot(dst *[16]byte, s string) bool {
	if len(s) != 35 || s[0] != '1' || s[1] != '-' || s[10] != '-' {
		return false
	}
	if !unhex(dst[:4], s[2:10], false) || !unhex(dst[4:], s[11:], false) {
		return false
	}
	return !isZero(dst[:])
}

// FormatXRayTraceID writes a 128-bit trace id as X-Ray's
// 1-<8 hex>-<24 hex>.
func FormatXRayTraceID(id [16]byte) string {
	var b [35]byte
	formatXRayRoot(b[:], id)
	return string(b[:])
}

func formatXRayRoot(b []byte, id [16]byte) {
	b[0], b[1] = '1', '-'
	hexEncode(b[2:10], id[:4])
	b[10] = '-'
	hexEncode(b[11:35], id[4:])
}

// FormatXRay writes sc as an X-Amzn-Trace-Id value.
func FormatXRay(sc SpanContext) string {
	const root, parent, sampled = "Root=", ";Parent=", ";Sampled="
	var b [len(root) + 35 + len(parent) + 16 + len(sampled) + 1]byte
	n := copy(b[:], root)
	formatXRayRoot(b[n:n+35], sc.TraceID)
	n += 35
	n += copy(b[n:], parent)
	hexEncode(b[n:n+16], sc.SpanID[:])
	n += 16
	n += copy(b[n:], sampled)
	switch {
	case sc.Sampled || sc.Debug:
		b[n] = '1'
	case sc.SampledKnown:
		b[n] = '0'
	default:
		b[n] = '?'
	}
	return string(b[:])
}
