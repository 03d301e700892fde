package accesslog

import "unicode/utf8"

// JSON string escaping, written here rather than taken from encoding/json
// because it must append into the caller's buffer without allocating.
// It escapes what JSON requires ('"', '\\' and control characters) and
// replaces invalid UTF-8 with U+FFFD, so a hostile header value cannot
// break a line's JSON.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s escaped for the inside of a JSON string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			b = appendEscapedByte(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

func appendEscapedByte(b []byte, c byte) []byte {
	switch c {
	case '"':
		return append(b, '\\', '"')
	case '\\':
		return append(b, '\\', '\\')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	if c < 0x20 {
		return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, c)
}

// escapeTail escapes b[start:] in place for the inside of a JSON string.
// The common case (nothing to escape) only scans.
func escapeTail(b []byte, start int) []byte {
	tail := b[start:]
	clean := true
	for _, c := range tail {
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			clean = false
			break
		}
	}
	if clean || (utf8.Valid(tail) && !hasEscapable(tail)) {
		return b
	}
	// Append the escaped copy after the raw bytes, then move it down.
	// Reading tail while appending is safe: a reallocation leaves tail
	// pointing at the old array, and without one the writes land after it.
	end := len(b)
	for i := 0; i < len(tail); {
		c := tail[i]
		if c < utf8.RuneSelf {
			b = appendEscapedByte(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(tail[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, tail[i:i+size]...)
		}
		i += size
	}
	n := copy(b[start:], b[end:])
	return b[:start+n]
}

func hasEscapable(p []byte) bool {
	for _, c := range p {
		if c < 0x20 || c == '"' || c == '\\' {
			return true
		}
	}
	return false
}
