// Package wire encodes and decodes internal/xdsproto's mirror types in
// the protobuf binary format, and writes them as protojson does (with
// the .proto field names), by reading their `pb` struct tags.
//
// It is written by hand, over google.golang.org/protobuf's protowire,
// because the library's codecs need a message's registered descriptor and
// the point of the mirrors is not to register Envoy's descriptors in the
// proxy (docs/design.md). Decoding follows the library: unknown fields
// and fields of an unexpected wire type are skipped, a repeated message
// field is merged, the last value of a scalar wins, strings must be UTF-8
// and nesting is limited. Encoding is deterministic (fields by number,
// then oneofs in declaration order, as the library writes them; map
// entries by key) and equals the library's deterministic output for the
// same message, which internal/xdsproto's tests check on random messages
// and FuzzUnmarshal on arbitrary input.
// Configuration is decoded once per change, so the cost of reflection is
// not on any request path; each type's layout is read once and kept.
package wire

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MaxDepth is how deeply messages may nest, as in the protobuf library.
const MaxDepth = 10000

type kind uint8

const (
	kBool kind = iota + 1
	kEnum
	kInt32
	kSint32
	kUint32
	kInt64
	kSint64
	kUint64
	kSfixed32
	kFixed32
	kFloat
	kSfixed64
	kFixed64
	kDouble
	kString
	kBytes
	kMessage
)

var kinds = map[string]kind{
	"bool": kBool, "enum": kEnum, "int32": kInt32, "sint32": kSint32, "uint32": kUint32,
	"int64": kInt64, "sint64": kSint64, "uint64": kUint64, "sfixed32": kSfixed32,
	"fixed32": kFixed32, "float": kFloat, "sfixed64": kSfixed64, "fixed64": kFixed64,
	"double": kDouble, "string": kString, "bytes": kBytes, "message": kMessage,
}

func (k kind) wireType() protowire.Type {
	switch k {
	case kSfixed32, kFixed32, kFloat:
		return protowire.Fixed32Type
	case kSfixed64, kFixed64, kDouble:
		return protowire.Fixed64Type
	case kString, kBytes, kMessage:
		return protowire.BytesType
	}
	return protowire.VarintType
}

// field is one field of a mirror struct.
type field struct {
	num      protowire.Number
	name     string // the .proto name
	kind     kind
	rep      bool // repeated
	isMap    bool
	opt      bool // explicit presence scalar (a pointer)
	key, val kind // map entry kinds
	index    int  // struct field index (of the oneof interface for a member)
	typ      reflect.Type
	wrapper  reflect.Type // *Wrapper for a oneof member, else nil
}

type message struct {
	fields []*field // in the order they are marshaled
	byNum  map[protowire.Number]*field
}

var layouts sync.Map // reflect.Type (struct) -> *message

type oneofWrappers interface{ XXX_OneofWrappers() []any }

func layoutOf(t reflect.Type) (*message, error) {
	if m, ok := layouts.Load(t); ok {
		return m.(*message), nil
	}
	m := &message{byNum: map[protowire.Number]*field{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("pb")
		if !ok {
			continue
		}
		f, err := parseTag(tag, sf.Tag.Get("json"))
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t.Name(), sf.Name, err)
		}
		f.index, f.typ = i, sf.Type
		m.fields = append(m.fields, f)
	}
	if ow, ok := reflect.New(t).Interface().(oneofWrappers); ok {
		for _, w := range ow.XXX_OneofWrappers() {
			wt := reflect.TypeOf(w) // *Wrapper
			sf := wt.Elem().Field(0)
			f, err := parseTag(sf.Tag.Get("pb"), sf.Tag.Get("json"))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", wt.Elem().Name(), err)
			}
			f.typ, f.wrapper, f.index = sf.Type, wt, -1
			for i := 0; i < t.NumField(); i++ {
				if it := t.Field(i).Type; it.Kind() == reflect.Interface && wt.Implements(it) {
					f.index = i
				}
			}
			if f.index < 0 {
				return nil, fmt.Errorf("%s: no oneof field takes %s", t.Name(), wt.Elem().Name())
			}
			m.fields = append(m.fields, f)
		}
	}
	// The order the library marshals in (internal/order.LegacyFieldOrder):
	// fields outside oneofs by number, then the oneofs in the order they
	// are declared, which is the order of their interface fields in the
	// struct (the generator writes each where its first member is).
	sort.Slice(m.fields, func(i, j int) bool {
		a, b := m.fields[i], m.fields[j]
		if (a.wrapper != nil) != (b.wrapper != nil) {
			return a.wrapper == nil
		}
		if a.wrapper != nil && a.index != b.index {
			return a.index < b.index
		}
		return a.num < b.num
	})
	for _, f := range m.fields {
		m.byNum[f.num] = f
	}
	got, _ := layouts.LoadOrStore(t, m)
	return got.(*message), nil
}

func parseTag(tag, name string) (*field, error) {
	parts := strings.Split(tag, ",")
	if len(parts) < 2 {
		return nil, fmt.Errorf("bad pb tag %q", tag)
	}
	var n int
	if _, err := fmt.Sscan(parts[0], &n); err != nil || n <= 0 {
		return nil, fmt.Errorf("bad field number in pb tag %q", tag)
	}
	f := &field{num: protowire.Number(n), name: name}
	if parts[1] == "map" {
		if len(parts) != 4 {
			return nil, fmt.Errorf("bad map pb tag %q", tag)
		}
		f.isMap, f.key, f.val = true, kinds[parts[2]], kinds[parts[3]]
		if f.key == 0 || f.val == 0 {
			return nil, fmt.Errorf("bad map kinds in pb tag %q", tag)
		}
		return f, nil
	}
	f.kind = kinds[parts[1]]
	if f.kind == 0 {
		return nil, fmt.Errorf("bad kind in pb tag %q", tag)
	}
	for _, p := range parts[2:] {
		switch p {
		case "rep":
			f.rep = true
		case "opt":
			f.opt = true
		default:
			return nil, fmt.Errorf("bad option %q in pb tag %q", p, tag)
		}
	}
	return f, nil
}

// Unmarshal decodes b into m, a pointer to a mirror struct. Fields m
// already holds are overwritten or merged into, as proto.Merge would.
func Unmarshal(b []byte, m any) error {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("wire: Unmarshal into %T, not a pointer to a struct", m)
	}
	return decodeMessage(b, v.Elem(), 0)
}

// ErrDepth is returned for messages nested more deeply than MaxDepth.
var ErrDepth = errors.New("messages nested too deeply")

func decodeMessage(b []byte, v reflect.Value, depth int) error {
	if depth > MaxDepth {
		return ErrDepth
	}
	lay, err := layoutOf(v.Type())
	if err != nil {
		return err
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%s: %w", v.Type().Name(), protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("%s: %w", v.Type().Name(), errFieldNumber)
		}
		b = b[n:]
		f := lay.byNum[num]
		if f == nil {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%s: field %d: %w", v.Type().Name(), num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		n, err := decodeField(b, typ, f, v, depth)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", v.Type().Name(), f.name, err)
		}
		b = b[n:]
	}
	return nil
}

// decodeField decodes one occurrence of f (wire type typ) from b into
// the struct v and says how many bytes it read.
func decodeField(b []byte, typ protowire.Type, f *field, v reflect.Value, depth int) (int, error) {
	switch {
	case f.isMap:
		if typ != protowire.BytesType {
			return skip(f.num, typ, b)
		}
		entry, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		fv := v.Field(f.index)
		if fv.IsNil() {
			fv.Set(reflect.MakeMap(fv.Type()))
		}
		key := reflect.New(fv.Type().Key()).Elem()
		val := reflect.New(fv.Type().Elem()).Elem()
		if err := decodeEntry(entry, f, key, val, depth); err != nil {
			return 0, err
		}
		fv.SetMapIndex(key, val)
		return n, nil
	case f.rep:
		fv := v.Field(f.index)
		if typ == protowire.BytesType && f.kind.wireType() != protowire.BytesType {
			// Packed scalars.
			data, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, protowire.ParseError(n)
			}
			for len(data) > 0 {
				e := reflect.New(fv.Type().Elem()).Elem()
				m, err := decodeValue(data, f.kind.wireType(), f.kind, e, depth)
				if err != nil {
					return 0, err
				}
				data = data[m:]
				fv.Set(reflect.Append(fv, e))
			}
			return n, nil
		}
		if typ != f.kind.wireType() {
			return skip(f.num, typ, b)
		}
		e := reflect.New(fv.Type().Elem()).Elem()
		n, err := decodeValue(b, typ, f.kind, e, depth)
		if err != nil {
			return 0, err
		}
		fv.Set(reflect.Append(fv, e))
		return n, nil
	case f.wrapper != nil:
		if typ != f.kind.wireType() {
			return skip(f.num, typ, b)
		}
		iv := v.Field(f.index)
		var w reflect.Value
		if !iv.IsNil() && iv.Elem().Type() == f.wrapper {
			w = iv.Elem() // the same member again: merge into it
		} else {
			w = reflect.New(f.wrapper.Elem())
		}
		n, err := decodeValue(b, typ, f.kind, w.Elem().Field(0), depth)
		if err != nil {
			return 0, err
		}
		iv.Set(w)
		return n, nil
	default:
		if typ != f.kind.wireType() {
			return skip(f.num, typ, b)
		}
		fv := v.Field(f.index)
		if f.opt {
			p := reflect.New(fv.Type().Elem())
			n, err := decodeValue(b, typ, f.kind, p.Elem(), depth)
			if err != nil {
				return 0, err
			}
			fv.Set(p)
			return n, nil
		}
		return decodeValue(b, typ, f.kind, fv, depth)
	}
}

func skip(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, protowire.ParseError(n)
	}
	return n, nil
}

func decodeEntry(b []byte, f *field, key, val reflect.Value, depth int) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return errFieldNumber
		}
		b = b[n:]
		var target reflect.Value
		var k kind
		switch num {
		case 1:
			target, k = key, f.key
		case 2:
			target, k = val, f.val
		}
		if k == 0 || typ != k.wireType() {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		m, err := decodeValue(b, typ, k, target, depth)
		if err != nil {
			return err
		}
		b = b[m:]
	}
	if f.val == kMessage && val.IsNil() {
		// An entry without a value holds an empty message.
		val.Set(reflect.New(val.Type().Elem()))
	}
	return nil
}

// errFieldNumber is returned for a field number above
// protowire.MaxValidNumber, which the library rejects too (ConsumeTag
// takes numbers up to 1<<31-1).
var errFieldNumber = errors.New("invalid field number")

var protoMessage = reflect.TypeOf((*proto.Message)(nil)).Elem()

// decodeValue decodes one value of kind k into v (settable).
func decodeValue(b []byte, typ protowire.Type, k kind, v reflect.Value, depth int) (int, error) {
	switch typ {
	case protowire.VarintType:
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		switch k {
		case kBool:
			v.SetBool(x != 0)
		case kEnum, kInt32:
			v.SetInt(int64(int32(x)))
		case kSint32:
			v.SetInt(int64(int32(protowire.DecodeZigZag(x & math.MaxUint32))))
		case kUint32:
			v.SetUint(uint64(uint32(x)))
		case kInt64:
			v.SetInt(int64(x))
		case kSint64:
			v.SetInt(protowire.DecodeZigZag(x))
		case kUint64:
			v.SetUint(x)
		}
		return n, nil
	case protowire.Fixed32Type:
		x, n := protowire.ConsumeFixed32(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		switch k {
		case kFixed32:
			v.SetUint(uint64(x))
		case kSfixed32:
			v.SetInt(int64(int32(x)))
		case kFloat:
			// Not through SetFloat: converting a float32 to float64 and
			// back quiets a signaling NaN, and the library keeps the bits.
			if f := math.Float32frombits(x); v.Type() == float32Type {
				v.Set(reflect.ValueOf(f))
			} else {
				v.SetFloat(float64(f))
			}
		}
		return n, nil
	case protowire.Fixed64Type:
		x, n := protowire.ConsumeFixed64(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		switch k {
		case kFixed64:
			v.SetUint(x)
		case kSfixed64:
			v.SetInt(int64(x))
		case kDouble:
			v.SetFloat(math.Float64frombits(x))
		}
		return n, nil
	case protowire.BytesType:
		data, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		switch k {
		case kString:
			if !utf8.Valid(data) {
				return 0, errors.New("string is not valid UTF-8")
			}
			v.SetString(string(data))
		case kBytes:
			v.SetBytes(append([]byte{}, data...))
		case kMessage:
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			if v.Type().Implements(protoMessage) {
				// A type the library has (a well-known type): it decodes it,
				// dropping unknown fields as this package does, to the depth
				// left.
				opts := proto.UnmarshalOptions{Merge: true, DiscardUnknown: true, RecursionLimit: MaxDepth - depth}
				if err := opts.Unmarshal(data, v.Interface().(proto.Message)); err != nil {
					return 0, err
				}
				return n, nil
			}
			if err := decodeMessage(data, v.Elem(), depth+1); err != nil {
				return 0, err
			}
		}
		return n, nil
	}
	return 0, fmt.Errorf("unexpected wire type %d", typ)
}

// Marshal encodes m, a pointer to a mirror struct, deterministically.
func Marshal(m any) ([]byte, error) {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("wire: Marshal of %T, not a pointer to a struct", m)
	}
	if v.IsNil() {
		return nil, nil
	}
	return appendMessage(nil, v.Elem())
}

func appendMessage(b []byte, v reflect.Value) ([]byte, error) {
	lay, err := layoutOf(v.Type())
	if err != nil {
		return nil, err
	}
	for _, f := range lay.fields {
		fv := v.Field(f.index)
		switch {
		case f.isMap:
			if fv.Len() == 0 {
				continue
			}
			keys := fv.MapKeys()
			sortKeys(keys)
			for _, k := range keys {
				var entry []byte
				entry = protowire.AppendTag(entry, 1, f.key.wireType())
				if entry, err = appendValue(entry, f.key, k); err != nil {
					return nil, err
				}
				entry = protowire.AppendTag(entry, 2, f.val.wireType())
				if entry, err = appendValue(entry, f.val, fv.MapIndex(k)); err != nil {
					return nil, err
				}
				b = protowire.AppendTag(b, f.num, protowire.BytesType)
				b = protowire.AppendBytes(b, entry)
			}
		case f.rep:
			if fv.Len() == 0 {
				continue
			}
			if f.kind.wireType() != protowire.BytesType {
				var packed []byte
				for i := 0; i < fv.Len(); i++ {
					if packed, err = appendValue(packed, f.kind, fv.Index(i)); err != nil {
						return nil, err
					}
				}
				b = protowire.AppendTag(b, f.num, protowire.BytesType)
				b = protowire.AppendBytes(b, packed)
				continue
			}
			for i := 0; i < fv.Len(); i++ {
				b = protowire.AppendTag(b, f.num, f.kind.wireType())
				if b, err = appendValue(b, f.kind, fv.Index(i)); err != nil {
					return nil, err
				}
			}
		case f.wrapper != nil:
			if fv.IsNil() || fv.Elem().Type() != f.wrapper || fv.Elem().IsNil() {
				continue
			}
			// A set member holding a nil message is an empty message, as
			// in the protobuf library.
			ev := fv.Elem().Elem().Field(0)
			b = protowire.AppendTag(b, f.num, f.kind.wireType())
			if b, err = appendValue(b, f.kind, ev); err != nil {
				return nil, err
			}
		case f.opt:
			if fv.IsNil() {
				continue
			}
			b = protowire.AppendTag(b, f.num, f.kind.wireType())
			if b, err = appendValue(b, f.kind, fv.Elem()); err != nil {
				return nil, err
			}
		default:
			if isZero(f.kind, fv) {
				continue
			}
			b = protowire.AppendTag(b, f.num, f.kind.wireType())
			if b, err = appendValue(b, f.kind, fv); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

func isZero(k kind, v reflect.Value) bool {
	switch k {
	case kMessage:
		return v.IsNil()
	case kFloat, kDouble:
		return math.Float64bits(v.Float()) == 0
	case kBytes:
		return v.Len() == 0
	}
	return v.IsZero()
}

func sortKeys(keys []reflect.Value) {
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		switch a.Kind() {
		case reflect.String:
			return a.String() < b.String()
		case reflect.Bool:
			return !a.Bool() && b.Bool()
		case reflect.Int32, reflect.Int64:
			return a.Int() < b.Int()
		default:
			return a.Uint() < b.Uint()
		}
	})
}

func appendValue(b []byte, k kind, v reflect.Value) ([]byte, error) {
	switch k {
	case kBool:
		return protowire.AppendVarint(b, protowire.EncodeBool(v.Bool())), nil
	case kEnum, kInt32, kInt64:
		return protowire.AppendVarint(b, uint64(v.Int())), nil
	case kSint32, kSint64:
		return protowire.AppendVarint(b, protowire.EncodeZigZag(v.Int())), nil
	case kUint32, kUint64:
		return protowire.AppendVarint(b, v.Uint()), nil
	case kFixed32:
		return protowire.AppendFixed32(b, uint32(v.Uint())), nil
	case kSfixed32:
		return protowire.AppendFixed32(b, uint32(int32(v.Int()))), nil
	case kFloat:
		return protowire.AppendFixed32(b, math.Float32bits(float32Of(v))), nil
	case kFixed64:
		return protowire.AppendFixed64(b, v.Uint()), nil
	case kSfixed64:
		return protowire.AppendFixed64(b, uint64(v.Int())), nil
	case kDouble:
		return protowire.AppendFixed64(b, math.Float64bits(v.Float())), nil
	case kString:
		if !utf8.ValidString(v.String()) {
			// The library does not encode such a proto3 string either.
			return nil, errors.New("string is not valid UTF-8")
		}
		return protowire.AppendString(b, v.String()), nil
	case kBytes:
		return protowire.AppendBytes(b, v.Bytes()), nil
	case kMessage:
		if v.IsNil() {
			return protowire.AppendVarint(b, 0), nil
		}
		var inner []byte
		var err error
		if pm, ok := v.Interface().(proto.Message); ok {
			inner, err = proto.MarshalOptions{Deterministic: true}.Marshal(pm)
		} else {
			inner, err = appendMessage(nil, v.Elem())
		}
		if err != nil {
			return nil, err
		}
		return protowire.AppendBytes(b, inner), nil
	}
	return nil, fmt.Errorf("unknown kind %d", k)
}

// float32Of reads a float32 without converting it to float64 and back,
// which would quiet a signaling NaN.
func float32Of(v reflect.Value) float32 {
	if v.Type() == float32Type {
		return v.Interface().(float32)
	}
	return float32(v.Float())
}

var float32Type = reflect.TypeOf(float32(0))
