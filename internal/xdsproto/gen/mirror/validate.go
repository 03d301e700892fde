package mirror

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/big"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"
)

// This file writes each mirror message's Validate method from the
// protoc-gen-validate (PGV) rules in its descriptor, with the semantics
// of the Validate methods PGV generates for go-control-plane: the first
// violated rule, in field order (fields outside real oneofs, then the
// real oneofs, then proto3 optional fields), is returned, worded as PGV
// words it ("invalid Cluster.Name: value length must be at least 1
// runes"), and embedded mirror messages are validated recursively.
//
// Covered: message required/skip; string const, in, not_in, len,
// min/max_len (runes), len_bytes, min/max_bytes, prefix, suffix,
// contains, not_contains, pattern, well_known_regex (with strict), ip,
// ipv4, ipv6, hostname, address, uri, uri_ref, uuid, ignore_empty;
// numbers' const, lt, lte, gt, gte (with PGV's exclusive ranges), in,
// not_in, ignore_empty; bool const; bytes const, len, min/max_len,
// prefix, suffix, contains, in, not_in, ip, ipv4, ipv6, pattern; enum
// const, defined_only, in, not_in; repeated min/max_items, unique, items;
// map min/max_pairs, no_sparse, keys, values; Any required, in, not_in;
// Duration required, const, lt, lte, gt, gte, in, not_in; wrapper types
// (the scalar rules on the value when set, required); oneof required;
// message-level disabled and ignored.
//
// Not covered (PGV's code for them would pull in more than it is worth;
// none is used by the mirrored messages as of this writing, which
// writeValidate checks by failing on them): string email; Timestamp
// rules other than required (lt_now, gt_now, within, const, lt, ...).

// writeValidate writes the message's Validate method from its
// protoc-gen-validate rules.
func (g *gen) writeValidate(b *bytes.Buffer, p *goPkg, im imports, md protoreflect.MessageDescriptor) {
	name := goMessageName(md)
	v := &vgen{g: g, p: p, im: im, md: md, msg: name}
	body := v.message()
	fmt.Fprintf(b, "// Validate checks x against the .proto's protoc-gen-validate rules and\n// returns the first violation, as go-control-plane's Validate does.\n")
	if body == "" {
		fmt.Fprintf(b, "func (x *%s) Validate() error { return nil }\n\n", name)
		return
	}
	fmt.Fprintf(b, "func (x *%s) Validate() error {\n\tif x == nil {\n\t\treturn nil\n\t}\n%s\treturn nil\n}\n\n", name, body)
	b.Write(v.decls.Bytes())
}

// vgen writes one message's Validate.
type vgen struct {
	g     *gen
	p     *goPkg
	im    imports
	md    protoreflect.MessageDescriptor
	msg   string       // the message's Go name
	decls bytes.Buffer // package-level declarations the method uses
}

// site is a value being checked.
type site struct {
	fd     protoreflect.FieldDescriptor
	goName string // the field's Go name
	acc    string // Go expression of the value
	elem   bool   // an element of a list, or a map's value
	key    bool   // a map's key
	idx    string // Go expression of the element's index or key, or ""
}

// vd is the descriptor of the value's kind: the field's, its map key's or
// its map value's.
func (s site) vd() protoreflect.FieldDescriptor {
	switch {
	case s.key:
		return s.fd.MapKey()
	case s.elem && s.fd.IsMap():
		return s.fd.MapValue()
	}
	return s.fd
}

func (s site) isList() bool { return !s.elem && !s.key && s.fd.IsList() }
func (s site) isMap() bool  { return !s.elem && !s.key && s.fd.IsMap() }

// fieldExpr is the Go expression naming the field in an error.
func (s site) fieldExpr() string {
	if s.idx != "" {
		return fmt.Sprintf("wire.Index(%q, %s)", s.goName, s.idx)
	}
	return strconv.Quote(s.goName)
}

// fail is the statement returning the error of s violating reason. (PGV
// words a map key's error as its value's: "invalid M.F[key]: ...".)
func (v *vgen) fail(s site, reason string) string {
	return fmt.Sprintf("return wire.Invalid(%q, %s, %q)\n", v.msg, s.fieldExpr(), reason)
}

// failf is fail with a reason formatted now.
func (v *vgen) failf(s site, format string, args ...any) string {
	return v.fail(s, fmt.Sprintf(format, args...))
}

func (v *vgen) use(path string) string {
	return v.im.use(path, pathBase(path))
}

func pathBase(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// hasValidate reports whether go-control-plane's type for md has a
// Validate method: PGV writes none for messages it ignores, and
// packages generated without PGV have none.
func hasValidate(md protoreflect.MessageDescriptor) bool {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		return false
	}
	_, ok := reflect.TypeOf(mt.Zero().Interface()).MethodByName("Validate")
	return ok
}

// isMirror reports whether messages of md have a mirror (and so a
// Validate method of their own).
func isMirror(md protoreflect.MessageDescriptor) bool {
	return !isExternal(md.FullName())
}

// message returns the body of the Validate method.
func (v *vgen) message() string {
	md := v.md
	if proto.GetExtension(md.Options(), validate.E_Disabled).(bool) ||
		proto.GetExtension(md.Options(), validate.E_Ignored).(bool) || !hasValidate(md) {
		return ""
	}
	fieldNames, oneofNames, wrappers := goFields(md)
	var b strings.Builder
	fs := md.Fields()
	var synthetic []protoreflect.FieldDescriptor
	for i := 0; i < fs.Len(); i++ {
		f := fs.Get(i)
		if od := f.ContainingOneof(); od != nil {
			if od.IsSynthetic() {
				synthetic = append(synthetic, f)
			}
			continue
		}
		gn := fieldNames[string(f.Name())]
		b.WriteString(v.field(site{fd: f, goName: gn, acc: "x.Get" + gn + "()"}))
	}
	ods := md.Oneofs()
	for i := 0; i < ods.Len(); i++ {
		od := ods.Get(i)
		if od.IsSynthetic() {
			continue
		}
		ogn := oneofNames[string(od.Name())]
		required := proto.GetExtension(od.Options(), validate.E_Required).(bool)
		var cases strings.Builder
		mfs := od.Fields()
		for j := 0; j < mfs.Len(); j++ {
			f := mfs.Get(j)
			gn := fieldNames[string(f.Name())]
			check := v.field(site{fd: f, goName: gn, acc: "v." + gn})
			if check == "" {
				continue
			}
			// A typed nil wrapper would make the getter panic: PGV
			// reports it.
			fmt.Fprintf(&cases, "case *%s:\nif v == nil {\n%s}\n%s", wrappers[f.FullName()],
				v.fail(site{goName: ogn}, "oneof value cannot be a typed-nil"), check)
		}
		switch {
		case required && cases.Len() > 0:
			fmt.Fprintf(&b, "switch v := x.%s.(type) {\n%scase nil:\n%s}\n", ogn, cases.String(), v.fail(site{goName: ogn}, "value is required"))
		case required:
			fmt.Fprintf(&b, "if x.%s == nil {\n%s}\n", ogn, v.fail(site{goName: ogn}, "value is required"))
		case cases.Len() > 0:
			fmt.Fprintf(&b, "switch v := x.%s.(type) {\n%s}\n", ogn, cases.String())
		}
	}
	for _, f := range synthetic {
		gn := fieldNames[string(f.Name())]
		if check := v.field(site{fd: f, goName: gn, acc: "x.Get" + gn + "()"}); check != "" {
			fmt.Fprintf(&b, "if x.%s != nil {\n%s}\n", gn, check)
		}
	}
	return b.String()
}

// field returns the checks of a field's value (or an element's).
func (v *vgen) field(s site) string {
	rules, _ := proto.GetExtension(s.fd.Options(), validate.E_Rules).(*validate.FieldRules)
	return v.value(s, rules)
}

// value returns the checks of s's value under rules r, dispatching as
// PGV's resolveRules does.
func (v *vgen) value(s site, r *validate.FieldRules) string {
	isMsg := s.vd().Kind() == protoreflect.MessageKind && !s.isList() && !s.isMap()
	switch t := r.GetType().(type) {
	case nil:
		switch {
		case s.isList():
			return v.repeated(s, &validate.RepeatedRules{})
		case s.isMap():
			if s.fd.MapValue().Kind() == protoreflect.MessageKind {
				return v.mapRules(s, &validate.MapRules{})
			}
			return ""
		case isMsg:
			return v.embedded(s, r.GetMessage())
		}
		return ""
	case *validate.FieldRules_Repeated:
		return v.repeated(s, t.Repeated)
	case *validate.FieldRules_Map:
		return v.mapRules(s, t.Map)
	case *validate.FieldRules_Any:
		return v.anyRules(s, t.Any)
	case *validate.FieldRules_Duration:
		return v.duration(s, t.Duration)
	case *validate.FieldRules_Timestamp:
		return v.timestamp(s, t.Timestamp)
	case *validate.FieldRules_Enum:
		return v.enum(s, s.acc, t.Enum)
	}
	// A scalar rule: on the value of a wrapper message when the field is
	// one.
	if isMsg {
		inner := v.scalar(s, "w.GetValue()", r)
		var b strings.Builder
		switch {
		case inner != "" && r.GetMessage().GetRequired():
			fmt.Fprintf(&b, "if w := %s; w != nil {\n%s} else {\n%s}\n", s.acc, inner, v.fail(s, "value is required and must not be nil."))
		case inner != "":
			fmt.Fprintf(&b, "if w := %s; w != nil {\n%s}\n", s.acc, inner)
		case r.GetMessage().GetRequired():
			fmt.Fprintf(&b, "if %s == nil {\n%s}\n", s.acc, v.fail(s, "value is required and must not be nil."))
		}
		return b.String()
	}
	return v.scalar(s, s.acc, r)
}

// scalar returns the checks of a scalar value acc under a scalar rule.
func (v *vgen) scalar(s site, acc string, r *validate.FieldRules) string {
	switch t := r.GetType().(type) {
	case *validate.FieldRules_String_:
		return v.str(s, acc, t.String_)
	case *validate.FieldRules_Bytes:
		return v.bytesRules(s, acc, t.Bytes)
	case *validate.FieldRules_Bool:
		if t.Bool.Const != nil {
			return fmt.Sprintf("if %s != %t {\n%s}\n", acc, t.Bool.GetConst(), v.failf(s, "value must equal %t", t.Bool.GetConst()))
		}
		return ""
	case *validate.FieldRules_Float:
		return v.num(s, acc, t.Float.ProtoReflect(), 32)
	case *validate.FieldRules_Double:
		return v.num(s, acc, t.Double.ProtoReflect(), 64)
	case *validate.FieldRules_Int32:
		return v.num(s, acc, t.Int32.ProtoReflect(), 0)
	case *validate.FieldRules_Int64:
		return v.num(s, acc, t.Int64.ProtoReflect(), 0)
	case *validate.FieldRules_Uint32:
		return v.num(s, acc, t.Uint32.ProtoReflect(), 0)
	case *validate.FieldRules_Uint64:
		return v.num(s, acc, t.Uint64.ProtoReflect(), 0)
	case *validate.FieldRules_Sint32:
		return v.num(s, acc, t.Sint32.ProtoReflect(), 0)
	case *validate.FieldRules_Sint64:
		return v.num(s, acc, t.Sint64.ProtoReflect(), 0)
	case *validate.FieldRules_Fixed32:
		return v.num(s, acc, t.Fixed32.ProtoReflect(), 0)
	case *validate.FieldRules_Fixed64:
		return v.num(s, acc, t.Fixed64.ProtoReflect(), 0)
	case *validate.FieldRules_Sfixed32:
		return v.num(s, acc, t.Sfixed32.ProtoReflect(), 0)
	case *validate.FieldRules_Sfixed64:
		return v.num(s, acc, t.Sfixed64.ProtoReflect(), 0)
	}
	panic(fmt.Sprintf("%s: unsupported validation rule %T", s.fd.FullName(), r.GetType()))
}

// embedded returns the checks of a message value: required, then its own
// Validate unless skipped (mirror messages only: the well-known and other
// external types have no rules).
func (v *vgen) embedded(s site, mr *validate.MessageRules) string {
	var b strings.Builder
	if mr.GetRequired() {
		fmt.Fprintf(&b, "if %s == nil {\n%s}\n", s.acc, v.fail(s, "value is required"))
	}
	if !mr.GetSkip() && isMirror(s.vd().Message()) {
		fmt.Fprintf(&b, "if err := %s.Validate(); err != nil {\nreturn wire.Embedded(%q, %s, err)\n}\n", s.acc, v.msg, s.fieldExpr())
	}
	return b.String()
}

// required is PGV's required template for Any, Duration and Timestamp.
func (v *vgen) required(s site, req bool) string {
	if !req {
		return ""
	}
	return fmt.Sprintf("if %s == nil {\n%s}\n", s.acc, v.fail(s, "value is required"))
}

func (v *vgen) anyRules(s site, r *validate.AnyRules) string {
	b := v.required(s, r.GetRequired())
	switch {
	case len(r.In) > 0:
		b += fmt.Sprintf("if a := %s; a != nil {\nswitch a.GetTypeUrl() {\ncase %s:\ndefault:\n%s}\n}\n", s.acc, strList(r.In), v.failf(s, "type URL must be in list %v", r.In))
	case len(r.NotIn) > 0:
		b += fmt.Sprintf("if a := %s; a != nil {\nswitch a.GetTypeUrl() {\ncase %s:\n%s}\n}\n", s.acc, strList(r.NotIn), v.failf(s, "type URL must not be in list %v", r.NotIn))
	}
	return b
}

func (v *vgen) timestamp(s site, r *validate.TimestampRules) string {
	if r.Const != nil || r.Lt != nil || r.Lte != nil || r.Gt != nil || r.Gte != nil || r.LtNow != nil || r.GtNow != nil || r.Within != nil {
		panic(fmt.Sprintf("%s: Timestamp rules other than required are not implemented", s.fd.FullName()))
	}
	return v.required(s, r.GetRequired())
}

func durNanos(d interface {
	GetSeconds() int64
	GetNanos() int32
}) int64 {
	return d.GetSeconds()*1e9 + int64(d.GetNanos())
}

func (v *vgen) duration(s site, r *validate.DurationRules) string {
	b := v.required(s, r.GetRequired())
	if r.Const == nil && r.Lt == nil && r.Lte == nil && r.Gt == nil && r.Gte == nil && len(r.In) == 0 && len(r.NotIn) == 0 {
		return b
	}
	var c strings.Builder
	ds := func(n int64) string { return time.Duration(n).String() }
	if r.Const != nil {
		n := durNanos(r.Const)
		fmt.Fprintf(&c, "if dur != %d {\n%s}\n", n, v.failf(s, "value must equal %s", ds(n)))
	}
	c.WriteString(v.ltgt(s, "dur", bound(r.Lt), bound(r.Lte), bound(r.Gt), bound(r.Gte), ds))
	if len(r.In) > 0 || len(r.NotIn) > 0 {
		list, in := r.In, true
		if len(list) == 0 {
			list, in = r.NotIn, false
		}
		var ns []string
		var strs []string
		seen := map[int64]bool{}
		for _, d := range list {
			n := durNanos(d)
			strs = append(strs, ds(n))
			if !seen[n] {
				seen[n] = true
				ns = append(ns, strconv.FormatInt(n, 10))
			}
		}
		listStr := "[" + strings.Join(strs, " ") + "]"
		if in {
			fmt.Fprintf(&c, "switch dur {\ncase %s:\ndefault:\n%s}\n", strings.Join(ns, ", "), v.failf(s, "value must be in list %s", listStr))
		} else {
			fmt.Fprintf(&c, "switch dur {\ncase %s:\n%s}\n", strings.Join(ns, ", "), v.failf(s, "value must not be in list %s", listStr))
		}
	}
	return b + fmt.Sprintf("if d := %s; d != nil {\nif err := d.CheckValid(); err != nil {\nreturn wire.ValidationError{Message: %q, Field: %s, Reason: \"value is not a valid duration\", Cause: err}\n}\ndur := d.AsDuration()\n%s}\n",
		s.acc, v.msg, s.fieldExpr(), c.String())
}

// num is a numeric rule's bound, as a Go literal and its exact value.
type num struct {
	lit string
	val *big.Float
}

// bound is a Duration rule's bound, in nanoseconds, or nil.
func bound(d *durationpb.Duration) *num {
	if d == nil {
		return nil
	}
	n := durNanos(d)
	return &num{lit: strconv.FormatInt(n, 10), val: new(big.Float).SetPrec(256).SetInt64(n)}
}

// ltgt is PGV's ltgt template: the range checks of val.
func (v *vgen) ltgt(s site, val string, lt, lte, gt, gte *num, str func(int64) string) string {
	txt := func(n *num) string {
		if str != nil {
			i, _ := n.val.Int64()
			return str(i)
		}
		return n.lit
	}
	gtr := func(a, b *num) bool { return a.val.Cmp(b.val) > 0 }
	var b strings.Builder
	check := func(cond, reason string) {
		fmt.Fprintf(&b, "if %s {\n%s}\n", cond, v.fail(s, reason))
	}
	switch {
	case lt != nil && gt != nil:
		if gtr(lt, gt) {
			check(fmt.Sprintf("%s <= %s || %s >= %s", val, gt.lit, val, lt.lit), "value must be inside range ("+txt(gt)+", "+txt(lt)+")")
		} else {
			check(fmt.Sprintf("%s >= %s && %s <= %s", val, lt.lit, val, gt.lit), "value must be outside range ["+txt(lt)+", "+txt(gt)+"]")
		}
	case lt != nil && gte != nil:
		if gtr(lt, gte) {
			check(fmt.Sprintf("%s < %s || %s >= %s", val, gte.lit, val, lt.lit), "value must be inside range ["+txt(gte)+", "+txt(lt)+")")
		} else {
			check(fmt.Sprintf("%s >= %s && %s < %s", val, lt.lit, val, gte.lit), "value must be outside range ["+txt(lt)+", "+txt(gte)+")")
		}
	case lt != nil:
		check(fmt.Sprintf("%s >= %s", val, lt.lit), "value must be less than "+txt(lt))
	case lte != nil && gt != nil:
		if gtr(lte, gt) {
			check(fmt.Sprintf("%s <= %s || %s > %s", val, gt.lit, val, lte.lit), "value must be inside range ("+txt(gt)+", "+txt(lte)+"]")
		} else {
			check(fmt.Sprintf("%s > %s && %s <= %s", val, lte.lit, val, gt.lit), "value must be outside range ("+txt(lte)+", "+txt(gt)+"]")
		}
	case lte != nil && gte != nil:
		if gtr(lte, gte) {
			check(fmt.Sprintf("%s < %s || %s > %s", val, gte.lit, val, lte.lit), "value must be inside range ["+txt(gte)+", "+txt(lte)+"]")
		} else {
			check(fmt.Sprintf("%s > %s && %s < %s", val, lte.lit, val, gte.lit), "value must be outside range ("+txt(lte)+", "+txt(gte)+")")
		}
	case lte != nil:
		check(fmt.Sprintf("%s > %s", val, lte.lit), "value must be less than or equal to "+txt(lte))
	case gt != nil:
		check(fmt.Sprintf("%s <= %s", val, gt.lit), "value must be greater than "+txt(gt))
	case gte != nil:
		check(fmt.Sprintf("%s < %s", val, gte.lit), "value must be greater than or equal to "+txt(gte))
	}
	return b.String()
}

// numLit is the Go literal and exact value of a rule's number.
func numLit(fd protoreflect.FieldDescriptor, val protoreflect.Value, floatBits int) *num {
	n := &num{val: new(big.Float).SetPrec(256)}
	switch fd.Kind() {
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := val.Float()
		n.lit = strconv.FormatFloat(f, 'g', -1, floatBits)
		if _, err := strconv.ParseFloat(n.lit, 64); err != nil || strings.ContainsAny(n.lit, "IN") {
			panic(fmt.Sprintf("rule %s: unsupported float %v", fd.FullName(), f))
		}
		n.val.SetFloat64(f)
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		n.lit = strconv.FormatUint(val.Uint(), 10)
		n.val.SetUint64(val.Uint())
	default:
		n.lit = strconv.FormatInt(val.Int(), 10)
		n.val.SetInt64(val.Int())
	}
	return n
}

// num is PGV's num template, over any of its numeric rules messages
// (which share their fields' names).
func (v *vgen) num(s site, acc string, rm protoreflect.Message, floatBits int) string {
	fields := rm.Descriptor().Fields()
	get := func(name protoreflect.Name) *num {
		fd := fields.ByName(name)
		if !rm.Has(fd) {
			return nil
		}
		return numLit(fd, rm.Get(fd), floatBits)
	}
	list := func(name protoreflect.Name) (lits []string, text string) {
		fd := fields.ByName(name)
		l := rm.Get(fd).List()
		seen := map[string]bool{}
		var all []string
		for i := 0; i < l.Len(); i++ {
			n := numLit(fd, l.Get(i), floatBits)
			all = append(all, n.lit)
			if !seen[n.val.Text('g', 100)] {
				seen[n.val.Text('g', 100)] = true
				lits = append(lits, n.lit)
			}
		}
		return lits, "[" + strings.Join(all, " ") + "]"
	}
	var b strings.Builder
	if c := get("const"); c != nil {
		fmt.Fprintf(&b, "if %s != %s {\n%s}\n", acc, c.lit, v.fail(s, "value must equal "+c.lit))
	}
	if get("lt") != nil || get("lte") != nil || get("gt") != nil || get("gte") != nil {
		b.WriteString(v.ltgt(s, acc, get("lt"), get("lte"), get("gt"), get("gte"), nil))
	}
	if lits, text := list("in"); len(lits) > 0 {
		fmt.Fprintf(&b, "switch %s {\ncase %s:\ndefault:\n%s}\n", acc, strings.Join(lits, ", "), v.fail(s, "value must be in list "+text))
	} else if lits, text := list("not_in"); len(lits) > 0 {
		fmt.Fprintf(&b, "switch %s {\ncase %s:\n%s}\n", acc, strings.Join(lits, ", "), v.fail(s, "value must not be in list "+text))
	}
	if b.Len() == 0 {
		return ""
	}
	if ie := fields.ByName("ignore_empty"); rm.Get(ie).Bool() {
		return fmt.Sprintf("if %s != 0 {\n%s}\n", acc, b.String())
	}
	return b.String()
}

func strList(l []string) string {
	seen := map[string]bool{}
	var q []string
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			q = append(q, strconv.Quote(s))
		}
	}
	return strings.Join(q, ", ")
}

// patternVars records, per package, the pattern variables declared so
// far: pattern -> name.
var patternVars = struct {
	sync.Mutex
	m map[*goPkg]map[string]string
}{m: map[*goPkg]map[string]string{}}

// pattern returns the Go expression of a wire.Pattern matching expr,
// declaring it (in the package) if need be.
func (v *vgen) pattern(expr string) string {
	if _, err := regexp.Compile(expr); err != nil {
		panic(fmt.Sprintf("%s: pattern %q: %v", v.md.FullName(), expr, err))
	}
	switch expr {
	case "^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$":
		return "wire.HTTPHeaderName"
	case "^[^\u0000-\u0008\u000A-\u001F\u007F]*$":
		return "wire.HTTPHeaderValue"
	case "^[^\u0000\u000A\u000D]*$":
		return "wire.HeaderString"
	}
	patternVars.Lock()
	defer patternVars.Unlock()
	vars := patternVars.m[v.p]
	if vars == nil {
		vars = map[string]string{}
		patternVars.m[v.p] = vars
	}
	if name, ok := vars[expr]; ok {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(expr))
	name := fmt.Sprintf("pattern%08x", h.Sum32())
	vars[expr] = name
	fmt.Fprintf(&v.decls, "var %s = wire.Pattern{Expr: %q}\n\n", name, expr)
	return name
}

// str is PGV's string template.
func (v *vgen) str(s site, acc string, r *validate.StringRules) string {
	var b strings.Builder
	check := func(cond, reason string) {
		fmt.Fprintf(&b, "if %s {\n%s}\n", cond, v.fail(s, reason))
	}
	if r.Const != nil {
		check(fmt.Sprintf("%s != %q", acc, r.GetConst()), "value must equal "+r.GetConst())
	}
	if len(r.In) > 0 {
		fmt.Fprintf(&b, "switch %s {\ncase %s:\ndefault:\n%s}\n", acc, strList(r.In), v.failf(s, "value must be in list %v", r.In))
	} else if len(r.NotIn) > 0 {
		fmt.Fprintf(&b, "switch %s {\ncase %s:\n%s}\n", acc, strList(r.NotIn), v.failf(s, "value must not be in list %v", r.NotIn))
	}
	runes := "utf8.RuneCountInString(" + acc + ")"
	if r.Len != nil || r.MinLen != nil || r.MaxLen != nil {
		v.use("unicode/utf8")
	}
	switch {
	case r.Len != nil:
		check(fmt.Sprintf("%s != %d", runes, r.GetLen()), fmt.Sprintf("value length must be %d runes", r.GetLen()))
	case r.MinLen != nil && r.MaxLen != nil && r.GetMinLen() == r.GetMaxLen():
		check(fmt.Sprintf("%s != %d", runes, r.GetMinLen()), fmt.Sprintf("value length must be %d runes", r.GetMinLen()))
	case r.MinLen != nil && r.MaxLen != nil:
		check(fmt.Sprintf("l := %s; l < %d || l > %d", runes, r.GetMinLen(), r.GetMaxLen()), fmt.Sprintf("value length must be between %d and %d runes, inclusive", r.GetMinLen(), r.GetMaxLen()))
	case r.MinLen != nil:
		check(fmt.Sprintf("%s < %d", runes, r.GetMinLen()), fmt.Sprintf("value length must be at least %d runes", r.GetMinLen()))
	case r.MaxLen != nil:
		check(fmt.Sprintf("%s > %d", runes, r.GetMaxLen()), fmt.Sprintf("value length must be at most %d runes", r.GetMaxLen()))
	}
	switch {
	case r.LenBytes != nil:
		check(fmt.Sprintf("len(%s) != %d", acc, r.GetLenBytes()), fmt.Sprintf("value length must be %d bytes", r.GetLenBytes()))
	case r.MinBytes != nil && r.MaxBytes != nil && r.GetMinBytes() == r.GetMaxBytes():
		check(fmt.Sprintf("len(%s) != %d", acc, r.GetMinBytes()), fmt.Sprintf("value length must be %d bytes", r.GetMinBytes()))
	case r.MinBytes != nil && r.MaxBytes != nil:
		check(fmt.Sprintf("l := len(%s); l < %d || l > %d", acc, r.GetMinBytes(), r.GetMaxBytes()), fmt.Sprintf("value length must be between %d and %d bytes, inclusive", r.GetMinBytes(), r.GetMaxBytes()))
	case r.MinBytes != nil:
		check(fmt.Sprintf("len(%s) < %d", acc, r.GetMinBytes()), fmt.Sprintf("value length must be at least %d bytes", r.GetMinBytes()))
	case r.MaxBytes != nil:
		check(fmt.Sprintf("len(%s) > %d", acc, r.GetMaxBytes()), fmt.Sprintf("value length must be at most %d bytes", r.GetMaxBytes()))
	}
	strs := func() string { return v.use("strings") }
	if r.Prefix != nil {
		check(fmt.Sprintf("!%s.HasPrefix(%s, %q)", strs(), acc, r.GetPrefix()), fmt.Sprintf("value does not have prefix %q", r.GetPrefix()))
	}
	if r.Suffix != nil {
		check(fmt.Sprintf("!%s.HasSuffix(%s, %q)", strs(), acc, r.GetSuffix()), fmt.Sprintf("value does not have suffix %q", r.GetSuffix()))
	}
	if r.Contains != nil {
		check(fmt.Sprintf("!%s.Contains(%s, %q)", strs(), acc, r.GetContains()), fmt.Sprintf("value does not contain substring %q", r.GetContains()))
	}
	if r.NotContains != nil {
		check(fmt.Sprintf("%s.Contains(%s, %q)", strs(), acc, r.GetNotContains()), fmt.Sprintf("value contains substring %q", r.GetNotContains()))
	}
	pattern := r.Pattern
	switch {
	case r.GetIp():
		check("!wire.IsIP("+acc+")", "value must be a valid IP address")
	case r.GetIpv4():
		check("!wire.IsIPv4("+acc+")", "value must be a valid IPv4 address")
	case r.GetIpv6():
		check("!wire.IsIPv6("+acc+")", "value must be a valid IPv6 address")
	case r.GetEmail():
		panic(fmt.Sprintf("%s: the email rule is not implemented", s.fd.FullName()))
	case r.GetHostname():
		fmt.Fprintf(&b, "if err := wire.Hostname(%s); err != nil {\nreturn wire.ValidationError{Message: %q, Field: %s, Reason: \"value must be a valid hostname\", Cause: err}\n}\n", acc, v.msg, s.fieldExpr())
	case r.GetAddress():
		check("!wire.IsAddress("+acc+")", "value must be a valid hostname, or ip address")
	case r.GetUri():
		fmt.Fprintf(&b, "if err := wire.URI(%s, true); err != nil {\nreturn wire.ValidationError{Message: %q, Field: %s, Reason: \"value must be a valid URI\", Cause: err}\n}\n", acc, v.msg, s.fieldExpr())
	case r.GetUriRef():
		fmt.Fprintf(&b, "if err := wire.URI(%s, false); err != nil {\nreturn wire.ValidationError{Message: %q, Field: %s, Reason: \"value must be a valid URI\", Cause: err}\n}\n", acc, v.msg, s.fieldExpr())
	case r.GetUuid():
		check("!wire.UUID.MatchString("+acc+")", "value must be a valid UUID")
	case r.GetWellKnownRegex() != validate.KnownRegex_UNKNOWN:
		// PGV's checker turns the rule into a pattern.
		var p string
		switch wk := r.GetWellKnownRegex(); {
		case (wk == validate.KnownRegex_HTTP_HEADER_NAME || wk == validate.KnownRegex_HTTP_HEADER_VALUE) && r.Strict != nil && !r.GetStrict():
			p = "^[^\u0000\u000A\u000D]*$"
		case wk == validate.KnownRegex_HTTP_HEADER_NAME:
			p = "^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$"
		case wk == validate.KnownRegex_HTTP_HEADER_VALUE:
			p = "^[^\u0000-\u0008\u000A-\u001F\u007F]*$"
		default:
			panic(fmt.Sprintf("%s: unknown well_known_regex %v", s.fd.FullName(), wk))
		}
		pattern = &p
	}
	if pattern != nil {
		check(fmt.Sprintf("!%s.MatchString(%s)", v.pattern(*pattern), acc), fmt.Sprintf("value does not match regex pattern %q", *pattern))
	}
	if b.Len() > 0 && r.GetIgnoreEmpty() {
		return fmt.Sprintf("if %s != \"\" {\n%s}\n", acc, b.String())
	}
	return b.String()
}

// bytesRules is PGV's bytes template.
func (v *vgen) bytesRules(s site, acc string, r *validate.BytesRules) string {
	var b strings.Builder
	check := func(cond, reason string) {
		fmt.Fprintf(&b, "if %s {\n%s}\n", cond, v.fail(s, reason))
	}
	switch {
	case r.Len != nil:
		check(fmt.Sprintf("len(%s) != %d", acc, r.GetLen()), fmt.Sprintf("value length must be %d bytes", r.GetLen()))
	case r.MinLen != nil && r.MaxLen != nil && r.GetMinLen() == r.GetMaxLen():
		check(fmt.Sprintf("len(%s) != %d", acc, r.GetMinLen()), fmt.Sprintf("value length must be %d bytes", r.GetMinLen()))
	case r.MinLen != nil && r.MaxLen != nil:
		check(fmt.Sprintf("l := len(%s); l < %d || l > %d", acc, r.GetMinLen(), r.GetMaxLen()), fmt.Sprintf("value length must be between %d and %d bytes, inclusive", r.GetMinLen(), r.GetMaxLen()))
	case r.MinLen != nil:
		check(fmt.Sprintf("len(%s) < %d", acc, r.GetMinLen()), fmt.Sprintf("value length must be at least %d bytes", r.GetMinLen()))
	case r.MaxLen != nil:
		check(fmt.Sprintf("len(%s) > %d", acc, r.GetMaxLen()), fmt.Sprintf("value length must be at most %d bytes", r.GetMaxLen()))
	}
	bs := func() string { return v.use("bytes") }
	if r.Prefix != nil {
		check(fmt.Sprintf("!%s.HasPrefix(%s, []byte(%q))", bs(), acc, r.GetPrefix()), fmt.Sprintf("value does not have prefix %q", r.GetPrefix()))
	}
	if r.Suffix != nil {
		check(fmt.Sprintf("!%s.HasSuffix(%s, []byte(%q))", bs(), acc, r.GetSuffix()), fmt.Sprintf("value does not have suffix %q", r.GetSuffix()))
	}
	if r.Contains != nil {
		check(fmt.Sprintf("!%s.Contains(%s, []byte(%q))", bs(), acc, r.GetContains()), fmt.Sprintf("value does not contain %q", r.GetContains()))
	}
	toStrs := func(l [][]byte) []string {
		out := make([]string, len(l))
		for i, x := range l {
			out[i] = string(x)
		}
		return out
	}
	if len(r.In) > 0 {
		fmt.Fprintf(&b, "switch string(%s) {\ncase %s:\ndefault:\n%s}\n", acc, strList(toStrs(r.In)), v.failf(s, "value must be in list %q", toStrs(r.In)))
	} else if len(r.NotIn) > 0 {
		fmt.Fprintf(&b, "switch string(%s) {\ncase %s:\n%s}\n", acc, strList(toStrs(r.NotIn)), v.failf(s, "value must not be in list %q", toStrs(r.NotIn)))
	}
	if r.Const != nil {
		check(fmt.Sprintf("!%s.Equal(%s, []byte(%q))", bs(), acc, r.GetConst()), fmt.Sprintf("value must equal %q", r.GetConst()))
	}
	switch {
	case r.GetIp():
		check("!wire.IsIPBytes("+acc+")", "value must be a valid IP address")
	case r.GetIpv4():
		check("!wire.IsIPv4Bytes("+acc+")", "value must be a valid IPv4 address")
	case r.GetIpv6():
		check("!wire.IsIPv6Bytes("+acc+")", "value must be a valid IPv6 address")
	}
	if r.Pattern != nil {
		check(fmt.Sprintf("!%s.Match(%s)", v.pattern(r.GetPattern()), acc), fmt.Sprintf("value does not match regex pattern %q", r.GetPattern()))
	}
	if b.Len() > 0 && r.GetIgnoreEmpty() {
		return fmt.Sprintf("if len(%s) > 0 {\n%s}\n", acc, b.String())
	}
	return b.String()
}

// enum is PGV's enum template.
func (v *vgen) enum(s site, acc string, r *validate.EnumRules) string {
	ed := s.vd().Enum()
	name := func(n int32) string {
		if ev := ed.Values().ByNumber(protoreflect.EnumNumber(n)); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(n))
	}
	names := func(l []int32) string {
		var out []string
		for _, n := range l {
			out = append(out, name(n))
		}
		return "[" + strings.Join(out, " ") + "]"
	}
	nums := func(l []int32) string {
		seen := map[int32]bool{}
		var out []string
		for _, n := range l {
			if !seen[n] {
				seen[n] = true
				out = append(out, strconv.Itoa(int(n)))
			}
		}
		return strings.Join(out, ", ")
	}
	var b strings.Builder
	if r.Const != nil {
		fmt.Fprintf(&b, "if %s != %d {\n%s}\n", acc, r.GetConst(), v.fail(s, "value must equal "+name(r.GetConst())))
	}
	if len(r.In) > 0 {
		fmt.Fprintf(&b, "switch %s {\ncase %s:\ndefault:\n%s}\n", acc, nums(r.In), v.fail(s, "value must be in list "+names(r.In)))
	} else if len(r.NotIn) > 0 {
		fmt.Fprintf(&b, "switch %s {\ncase %s:\n%s}\n", acc, nums(r.NotIn), v.fail(s, "value must not be in list "+names(r.NotIn)))
	}
	if r.GetDefinedOnly() {
		var defined []int32
		vals := ed.Values()
		for i := 0; i < vals.Len(); i++ {
			defined = append(defined, int32(vals.Get(i).Number()))
		}
		fmt.Fprintf(&b, "switch %s {\ncase %s:\ndefault:\n%s}\n", acc, nums(defined), v.fail(s, "value must be one of the defined enum values"))
	}
	return b.String()
}

// repeated is PGV's repeated template.
func (v *vgen) repeated(s site, r *validate.RepeatedRules) string {
	var b strings.Builder
	check := func(cond, reason string) {
		fmt.Fprintf(&b, "if %s {\n%s}\n", cond, v.fail(s, reason))
	}
	switch {
	case r.MinItems != nil && r.GetMinItems() == r.GetMaxItems():
		check(fmt.Sprintf("len(%s) != %d", s.acc, r.GetMinItems()), fmt.Sprintf("value must contain exactly %d item(s)", r.GetMinItems()))
	case r.MinItems != nil && r.MaxItems != nil:
		check(fmt.Sprintf("l := len(%s); l < %d || l > %d", s.acc, r.GetMinItems(), r.GetMaxItems()), fmt.Sprintf("value must contain between %d and %d items, inclusive", r.GetMinItems(), r.GetMaxItems()))
	case r.MinItems != nil:
		check(fmt.Sprintf("len(%s) < %d", s.acc, r.GetMinItems()), fmt.Sprintf("value must contain at least %d item(s)", r.GetMinItems()))
	case r.MaxItems != nil:
		check(fmt.Sprintf("len(%s) > %d", s.acc, r.GetMaxItems()), fmt.Sprintf("value must contain no more than %d item(s)", r.GetMaxItems()))
	}
	es := site{fd: s.fd, goName: s.goName, acc: "item", elem: true, idx: "idx"}
	body := v.value(es, r.GetItems())
	unique := ""
	if r.GetUnique() {
		kt, kv := v.g.elemType(v.p, v.im, s.fd), "item"
		if s.fd.Kind() == protoreflect.BytesKind {
			kt, kv = "string", "string(item)"
		}
		fmt.Fprintf(&b, "seen := make(map[%s]struct{}, len(%s))\n", kt, s.acc)
		unique = fmt.Sprintf("if _, ok := seen[%s]; ok {\n%s}\nseen[%s] = struct{}{}\n", kv, v.fail(es, "repeated value must contain unique items"), kv)
	}
	if body != "" || unique != "" {
		loopIdx := "idx"
		if !strings.Contains(body+unique, "idx") {
			loopIdx = "_"
		}
		fmt.Fprintf(&b, "for %s, item := range %s {\n%s%s}\n", loopIdx, s.acc, unique, body)
	}
	if b.Len() == 0 {
		return ""
	}
	if r.GetUnique() || r.GetIgnoreEmpty() {
		// A block: seen is scoped to the field.
		if r.GetIgnoreEmpty() {
			return fmt.Sprintf("if len(%s) > 0 {\n%s}\n", s.acc, b.String())
		}
		return "{\n" + b.String() + "}\n"
	}
	return b.String()
}

// mapRules is PGV's map template: the entries are checked in key order.
func (v *vgen) mapRules(s site, r *validate.MapRules) string {
	var b strings.Builder
	check := func(cond, reason string) {
		fmt.Fprintf(&b, "if %s {\n%s}\n", cond, v.fail(s, reason))
	}
	switch {
	case r.MinPairs != nil && r.GetMinPairs() == r.GetMaxPairs():
		check(fmt.Sprintf("len(%s) != %d", s.acc, r.GetMinPairs()), fmt.Sprintf("value must contain exactly %d pair(s)", r.GetMinPairs()))
	case r.MinPairs != nil && r.MaxPairs != nil:
		check(fmt.Sprintf("l := len(%s); l < %d || l > %d", s.acc, r.GetMinPairs(), r.GetMaxPairs()), fmt.Sprintf("value must contain between %d and %d pairs, inclusive", r.GetMinPairs(), r.GetMaxPairs()))
	case r.MinPairs != nil:
		check(fmt.Sprintf("len(%s) < %d", s.acc, r.GetMinPairs()), fmt.Sprintf("value must contain at least %d pair(s)", r.GetMinPairs()))
	case r.MaxPairs != nil:
		check(fmt.Sprintf("len(%s) > %d", s.acc, r.GetMaxPairs()), fmt.Sprintf("value must contain no more than %d pair(s)", r.GetMaxPairs()))
	}
	ks := site{fd: s.fd, goName: s.goName, acc: "key", key: true, idx: "key"}
	vs := site{fd: s.fd, goName: s.goName, acc: "val", elem: true, idx: "key"}
	var body string
	if r.GetNoSparse() && s.fd.MapValue().Kind() == protoreflect.MessageKind {
		body += fmt.Sprintf("if val == nil {\n%s}\n", v.fail(vs, "value cannot be sparse, all pairs must be non-nil"))
	}
	body += v.value(ks, r.GetKeys())
	body += v.value(vs, r.GetValues())
	if body != "" {
		m := s.acc
		if s.fd.MapKey().Kind() == protoreflect.BoolKind {
			fmt.Fprintf(&b, "for key, val := range %s {\n_, _ = key, val\n%s}\n", m, body)
		} else {
			fmt.Fprintf(&b, "{\nm := %s\nfor _, key := range %s.Sorted(%s.Keys(m)) {\nval := m[key]\n_ = val\n%s}\n}\n", m, v.use("slices"), v.use("maps"), body)
		}
	}
	if b.Len() > 0 && r.GetIgnoreEmpty() {
		return fmt.Sprintf("if len(%s) > 0 {\n%s}\n", s.acc, b.String())
	}
	return b.String()
}
