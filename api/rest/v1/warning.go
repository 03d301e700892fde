package restv1

import "strings"

// warnPrefix is the warn-code and warn-agent of the Warning headers the
// API sends (RFC 7234 section 5.5; 299 is "miscellaneous persistent
// warning", the code Kubernetes uses for admission warnings).
const warnPrefix = `299 meshlens `

// FormatWarning renders a warning as a Warning header value:
// 299 meshlens "text", with the text quoted. Characters a header cannot
// carry (control characters, non-ASCII) are replaced by '?'.
func FormatWarning(msg string) string {
	var b strings.Builder
	b.WriteString(warnPrefix)
	b.WriteByte('"')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ParseWarning reads the text of a Warning header value written by
// FormatWarning (or any warn-code and agent followed by a quoted text). It
// reports false for a value without a well-formed quoted text.
func ParseWarning(h string) (string, bool) {
	i := strings.IndexByte(h, '"')
	if i < 0 {
		return "", false
	}
	var b strings.Builder
	for j := i + 1; j < len(h); j++ {
		switch c := h[j]; c {
		case '\\':
			if j+1 == len(h) {
				return "", false
			}
			j++
			b.WriteByte(h[j])
		case '"':
			return b.String(), true
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}
