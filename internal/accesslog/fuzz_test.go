package accesslog

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	DefaultFormat,
	"%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)% %START_TIME(%s.%3f)% %START_TIME(%E*S %f %9f)%",
	"%REQ(X-NONE?USER-AGENT):3% %RESP(:STATUS)% %TRAILER(GRPC-STATUS)% %REQ_WITHOUT_QUERY(:PATH)%",
	"%GRPC_STATUS(SNAKE_STRING)% %RESPONSE_FLAGS% %UPSTREAM_REMOTE_PORT% 100%% \"quoted\"\n",
	"%", "%%", "%A", "%A(", "%A()", "%A():", "%A():1", "%REQ(a?b?c)%", "%REQ(\x00)%", "\xff%PROTOCOL%\xfe",
	"%START_TIME(%E)%", "%START_TIME(%E9)%", "%START_TIME(%",
	"trace=%TRACE_ID% span=%SPAN_ID%", "%TRACE_ID(X)%", "%SPAN_ID%:3", "%TRACE_ID",
}

// FuzzParse: Parse never panics, its errors point inside the format, and
// a format that parses renders without panicking, as text and inside a
// JSON value (which must stay valid JSON).
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, format string) {
		pf, err := Parse(format)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Pos < 0 || pe.Pos >= len(format) || format[pe.Pos] != '%' {
				t.Fatalf("Parse(%q): error %v does not point at a %%", format, err)
			}
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrUnknownOperator) {
				t.Fatalf("Parse(%q): error %v wraps no sentinel", format, err)
			}
			return
		}
		out := pf.Append(nil, sampleEntry())
		pf.Append(out[:0], &Entry{})
		if !strings.Contains(format, "%") && string(out) != format {
			t.Fatalf("a format without operators rendered %q as %q", format, out)
		}
		jf, err := ParseJSON([]KV{{Key: format, Value: format}})
		if err != nil {
			t.Fatalf("Parse accepted %q but ParseJSON did not: %v", format, err)
		}
		for _, e := range []*Entry{sampleEntry(), {}} {
			if line := jf.Append(nil, e); !json.Valid(line) {
				t.Fatalf("invalid JSON for %q: %s", format, line)
			}
		}
	})
}

// FuzzParseJSON: any key, value and header value give valid JSON lines,
// and a header comes back as sent (invalid UTF-8 replaced).
func FuzzParseJSON(f *testing.F) {
	f.Add("status", "%RESPONSE_CODE%", "plain")
	f.Add("k\"\\", "a %REQ(X-FUZZ):2% b", "quo\"te\n")
	f.Add("\xff", "%START_TIME(%s)%", "\xffbad\x00")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, key, value, header string) {
		pf, err := ParseJSON([]KV{{key, value}, {"~h", "%REQ(X-FUZZ)%"}, {"~m", "<%REQ(X-FUZZ):5%>"}})
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Key != key {
				t.Fatalf("ParseJSON error %v does not name key %q", err, key)
			}
			return
		}
		e := sampleEntry()
		e.Request.(HTTPHeader)["X-Fuzz"] = []string{header}
		line := pf.Append(nil, e)
		var got map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("invalid JSON: %v\n%q", err, line)
		}
		if want := string([]rune(header)); got["~h"] != want && key != "~h" {
			t.Fatalf("header %q came back as %q", header, got["~h"])
		}
		if line := pf.Append(nil, &Entry{}); !json.Valid(line) {
			t.Fatalf("invalid JSON for an empty entry: %q", line)
		}
	})
}
