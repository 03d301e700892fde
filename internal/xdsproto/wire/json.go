package wire

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Resolver returns a new mirror message (a pointer) for a message's full
// name, or nil when there is no mirror of it.
type Resolver func(fullName string) any

// JSON writes m as protojson does with UseProtoNames: the .proto field
// names, fields at their zero value left out, 64-bit integers as strings,
// enums by name, well-known types in their JSON forms and an Any with its
// "@type" and the fields of the message it holds (found by resolve; one
// resolve cannot find is written by the protobuf library when its type is
// registered, else as "@type" and its bytes in "value").
func JSON(m any, resolve Resolver) ([]byte, error) {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("wire: JSON of %T, not a pointer to a struct", m)
	}
	w := &jsonWriter{resolve: resolve}
	if v.IsNil() {
		return []byte("{}"), nil
	}
	if err := w.message(v.Elem(), ""); err != nil {
		return nil, err
	}
	return w.b, nil
}

type jsonWriter struct {
	b       []byte
	resolve Resolver
}

// message writes the struct v as an object; typeURL, when set, is
// written first as "@type".
func (w *jsonWriter) message(v reflect.Value, typeURL string) error {
	lay, err := layoutOf(v.Type())
	if err != nil {
		return err
	}
	w.b = append(w.b, '{')
	first := true
	sep := func(name string) {
		if !first {
			w.b = append(w.b, ',')
		}
		first = false
		w.b = append(w.b, '"')
		w.b = append(w.b, name...) // a .proto name: nothing to escape
		w.b = append(w.b, '"', ':')
	}
	if typeURL != "" {
		sep("@type")
		if w.b, err = appendString(w.b, typeURL); err != nil {
			return err
		}
	}
	for _, f := range lay.fields {
		fv := v.Field(f.index)
		switch {
		case f.isMap:
			if fv.Len() == 0 {
				continue
			}
			sep(f.name)
			keys := fv.MapKeys()
			sortKeys(keys)
			w.b = append(w.b, '{')
			for i, k := range keys {
				if i > 0 {
					w.b = append(w.b, ',')
				}
				if w.b, err = appendString(w.b, mapKey(k)); err != nil {
					return err
				}
				w.b = append(w.b, ':')
				if err := w.value(f.val, fv.MapIndex(k)); err != nil {
					return err
				}
			}
			w.b = append(w.b, '}')
		case f.rep:
			if fv.Len() == 0 {
				continue
			}
			sep(f.name)
			w.b = append(w.b, '[')
			for i := 0; i < fv.Len(); i++ {
				if i > 0 {
					w.b = append(w.b, ',')
				}
				if err := w.value(f.kind, fv.Index(i)); err != nil {
					return err
				}
			}
			w.b = append(w.b, ']')
		case f.wrapper != nil:
			if fv.IsNil() || fv.Elem().Type() != f.wrapper || fv.Elem().IsNil() {
				continue
			}
			ev := fv.Elem().Elem().Field(0)
			sep(f.name)
			if err := w.value(f.kind, ev); err != nil {
				return err
			}
		case f.opt:
			if fv.IsNil() {
				continue
			}
			sep(f.name)
			if err := w.value(f.kind, fv.Elem()); err != nil {
				return err
			}
		default:
			if isZero(f.kind, fv) {
				continue
			}
			sep(f.name)
			if err := w.value(f.kind, fv); err != nil {
				return err
			}
		}
	}
	w.b = append(w.b, '}')
	return nil
}

func mapKey(k reflect.Value) string {
	switch k.Kind() {
	case reflect.String:
		return k.String()
	case reflect.Bool:
		return strconv.FormatBool(k.Bool())
	case reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10)
	}
	return strconv.FormatUint(k.Uint(), 10)
}

type stringer interface{ String() string }

func (w *jsonWriter) value(k kind, v reflect.Value) error {
	switch k {
	case kBool:
		w.b = strconv.AppendBool(w.b, v.Bool())
	case kEnum:
		s := v.Interface().(stringer).String()
		if s == "" || s[0] == '-' || (s[0] >= '0' && s[0] <= '9') {
			w.b = strconv.AppendInt(w.b, v.Int(), 10)
		} else {
			w.b = strconv.AppendQuote(w.b, s)
		}
	case kInt32, kSint32, kSfixed32:
		w.b = strconv.AppendInt(w.b, v.Int(), 10)
	case kUint32, kFixed32:
		w.b = strconv.AppendUint(w.b, v.Uint(), 10)
	case kInt64, kSint64, kSfixed64:
		w.b = append(strconv.AppendInt(append(w.b, '"'), v.Int(), 10), '"')
	case kUint64, kFixed64:
		w.b = append(strconv.AppendUint(append(w.b, '"'), v.Uint(), 10), '"')
	case kFloat:
		w.float(v.Float(), 32)
	case kDouble:
		w.float(v.Float(), 64)
	case kString:
		var err error
		if w.b, err = appendString(w.b, v.String()); err != nil {
			return err
		}
	case kBytes:
		w.b = append(w.b, '"')
		w.b = base64.StdEncoding.AppendEncode(w.b, v.Bytes())
		w.b = append(w.b, '"')
	case kMessage:
		if v.IsNil() {
			w.b = append(w.b, "{}"...)
			return nil
		}
		if a, ok := v.Interface().(*anypb.Any); ok {
			return w.any(a)
		}
		if pm, ok := v.Interface().(proto.Message); ok {
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(pm)
			if err != nil {
				return err
			}
			w.b = append(w.b, b...)
			return nil
		}
		return w.message(v.Elem(), "")
	}
	return nil
}

// float writes f as protojson does: like encoding/json, in exponent
// form only below 1e-6 and from 1e21.
func (w *jsonWriter) float(f float64, bits int) {
	switch {
	case math.IsNaN(f):
		w.b = append(w.b, `"NaN"`...)
		return
	case math.IsInf(f, 1):
		w.b = append(w.b, `"Infinity"`...)
		return
	case math.IsInf(f, -1):
		w.b = append(w.b, `"-Infinity"`...)
		return
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, bits)
	if n := len(w.b); format == 'e' && n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
		// "1e-07" as "1e-7".
		w.b[n-2] = w.b[n-1]
		w.b = w.b[:n-1]
	}
}

// appendString writes s as a JSON string escaping what protojson
// escapes: '"', '\\' and control characters; it fails, as protojson
// does, on invalid UTF-8.
func appendString(b []byte, s string) ([]byte, error) {
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return b, errors.New("string is not valid UTF-8")
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < ' ':
			switch r {
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
			}
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"'), nil
}

const hex = "0123456789abcdef"

func (w *jsonWriter) any(a *anypb.Any) error {
	url := a.GetTypeUrl()
	name := url[strings.LastIndexByte(url, '/')+1:]
	if w.resolve != nil {
		if m := w.resolve(name); m != nil {
			if err := Unmarshal(a.GetValue(), m); err != nil {
				return fmt.Errorf("Any of %s: %w", url, err)
			}
			return w.message(reflect.ValueOf(m).Elem(), url)
		}
	}
	if b, err := (protojson.MarshalOptions{UseProtoNames: true}).Marshal(a); err == nil {
		w.b = append(w.b, b...)
		return nil
	}
	w.b = append(w.b, `{"@type":`...)
	var err error
	if w.b, err = appendString(w.b, url); err != nil {
		return err
	}
	w.b = append(w.b, `,"value":"`...)
	w.b = base64.StdEncoding.AppendEncode(w.b, a.GetValue())
	w.b = append(w.b, `"}`...)
	return nil
}
