package restv1

import "testing"

func TestWarningRoundTrip(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		"",
		"VirtualNode demo/a: spec.backends[0]: refused",
		`quotes " and backslashes \ survive`,
	} {
		h := FormatWarning(msg)
		got, ok := ParseWarning(h)
		if !ok || got != msg {
			t.Errorf("ParseWarning(%q) = %q, %v; want %q", h, got, ok, msg)
		}
	}
	for _, bad := range []string{"299 meshlens", `299 - "unterminated`, `299 - "trailing\`} {
		if got, ok := ParseWarning(bad); ok {
			t.Errorf("ParseWarning(%q) = %q, want not ok", bad, got)
		}
	}
}

func FuzzParseWarning(f *testing.F) {
	f.Add(`299 meshlens "a \"b\" c"`)
	f.Add(`299 - "x`)
	f.Fuzz(func(t *testing.T, h string) {
		msg, ok := ParseWarning(h)
		if !ok {
			return
		}
		// What parses re-renders to a header that parses to the same
		// text, unless it holds characters a header cannot carry.
		for i := 0; i < len(msg); i++ {
			if msg[i] < 0x20 || msg[i] >= 0x7f {
				return
			}
		}
		if got, ok := ParseWarning(FormatWarning(msg)); !ok || got != msg {
			t.Fatalf("round trip of %q: %q, %v", msg, got, ok)
		}
	})
}
