package accesslog

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
)

// DefaultFormat is Envoy's access log line when no format is configured,
// which is what App Mesh writes for a logging.accessLog.file without a
// format.
const DefaultFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
	`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

var defaultFormat = sync.OnceValue(func() *Format {
	f, err := Parse(DefaultFormat)
	if err != nil {
		panic("accesslog: default format: " + err.Error())
	}
	return f
})

// Default returns the compiled DefaultFormat. It is shared: Formats are
// immutable.
func Default() *Format { return defaultFormat() }

// Sentinel errors a *ParseError wraps, for callers that branch on the
// kind of mistake (errors.Is).
var (
	// ErrUnknownOperator: a well-formed %NAME% that is not an operator
	// meshlens supports. Envoy rejects unknown operators too.
	ErrUnknownOperator = errors.New("unknown command operator")
	// ErrSyntax: a '%' that starts no well-formed operator, or an
	// operator with parameters or a length it does not accept.
	ErrSyntax = errors.New("invalid command operator")
)

// ParseError is a format string that does not compile. Pos is the byte
// offset of the '%' that starts the offending operator, counted from 0 as
// Envoy counts it, so the message points at the mistake in the user's
// App Mesh spec.
type ParseError struct {
	Key      string // the JSON key whose value failed; "" for a text format
	Pos      int
	Operator string // the operator as written ("%FOO(x)%"); "" when none could be read
	Reason   string
	Err      error // ErrUnknownOperator or ErrSyntax
}

// Error implements error.
func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("access log format: ")
	if e.Key != "" {
		fmt.Fprintf(&b, "key %q: ", e.Key)
	}
	fmt.Fprintf(&b, "position %d: ", e.Pos)
	if e.Operator != "" {
		b.WriteString(e.Operator)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the sentinel error.
func (e *ParseError) Unwrap() error { return e.Err }

// KV is one key of a JSON format and its format string, in App Mesh's
// shape (logging.accessLog.file.format.json[]).
type KV struct {
	Key   string
	Value string
}

// Format is a compiled access log format. It is immutable and safe for
// concurrent use; compile it once per configuration and share it.
type Format struct {
	src    string
	json   bool
	segs   []seg       // text format
	fields []jsonField // JSON format
}

type jsonField struct {
	key    string
	prefix string // `"key":`, escaped, with a leading ',' after the first field
	segs   []seg
	typed  bool // the value is exactly one operator: it keeps its type
}

// String returns the format as configured: the text format, or the JSON
// keys and values.
func (f *Format) String() string { return f.src }

// IsJSON reports whether f writes JSON lines.
func (f *Format) IsJSON() bool { return f.json }

// Parse compiles an Envoy text format string (App Mesh's format.text).
// The string is used as is: Envoy writes no newline of its own, so the
// format should end with one (FromConfig adds it as App Mesh does).
func Parse(text string) (*Format, error) {
	segs, err := parseSegments(text)
	if err != nil {
		return nil, err
	}
	return &Format{src: text, segs: segs}, nil
}

// ParseJSON compiles a JSON format (App Mesh's format.json). Each line is
// a JSON object ending in a newline. As in Envoy, the keys come out
// sorted (Envoy receives them as a protobuf Struct, a map) and a later
// pair with the same key replaces an earlier one. A value that is
// exactly one operator keeps its type (numbers for %RESPONSE_CODE%,
// %DURATION%, %BYTES_SENT%, ...; null when the value is unknown); any
// other value is a string.
func ParseJSON(pairs []KV) (*Format, error) {
	byKey := make(map[string]string, len(pairs))
	for _, p := range pairs {
		byKey[p.Key] = p.Value
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	f := &Format{json: true}
	src := []byte{'{'}
	for i, k := range keys {
		segs, err := parseSegments(byKey[k])
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				pe.Key = k
			}
			return nil, err
		}
		jf := jsonField{key: k, segs: segs}
		var p []byte
		if i > 0 {
			p = append(p, ',')
		}
		p = append(p, '"')
		p = appendJSONString(p, k)
		p = append(p, '"', ':')
		jf.prefix = string(p)
		jf.typed = len(segs) == 1 && segs[0].op != opLiteral
		f.fields = append(f.fields, jf)
		src = append(src, p...)
		src = append(src, '"')
		src = appendJSONString(src, byKey[k])
		src = append(src, '"')
	}
	f.src = string(append(src, '}'))
	return f, nil
}

// FromConfig compiles a file access log's format as the xDS listener
// carries it (table.AccessLog's Format and JSONFormat): JSON when
// jsonFormat has keys, else text, else DefaultFormat. A text format that
// does not end in a newline gets one, as App Mesh's translation adds it.
func FromConfig(text string, jsonFormat map[string]string) (*Format, error) {
	switch {
	case len(jsonFormat) > 0:
		pairs := make([]KV, 0, len(jsonFormat))
		for k, v := range jsonFormat {
			pairs = append(pairs, KV{Key: k, Value: v})
		}
		return ParseJSON(pairs)
	case text != "":
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		return Parse(text)
	}
	return Default(), nil
}

// Append formats e and appends the line to buf. With a buffer reused
// across requests (or Writer.LogEntry's pooled one) it does not allocate.
// A nil e formats as an empty Entry.
func (f *Format) Append(buf []byte, e *Entry) []byte {
	if e == nil {
		e = &emptyEntry
	}
	if !f.json {
		for i := range f.segs {
			buf = appendSeg(buf, &f.segs[i], e, false)
		}
		return buf
	}
	buf = append(buf, '{')
	for i := range f.fields {
		fl := &f.fields[i]
		buf = append(buf, fl.prefix...)
		if fl.typed {
			buf = appendTyped(buf, &fl.segs[0], e)
			continue
		}
		buf = append(buf, '"')
		for j := range fl.segs {
			buf = appendSeg(buf, &fl.segs[j], e, true)
		}
		buf = append(buf, '"')
	}
	return append(buf, '}', '\n')
}

var emptyEntry Entry

// hostname is %HOSTNAME%: read once, as Envoy reads it once per format.
var hostname = sync.OnceValue(func() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
})
