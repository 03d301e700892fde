// Package mirror generates internal/xdsproto's mirror types from
// go-control-plane's registered descriptors and generated Go types (see
// internal/xdsproto/gen). It is linked by the generator and by the test
// that checks the generated files are current, never by a binary.
package mirror

import (
	"bytes"
	"fmt"
	"go/format"
	"path"
	"reflect"
	"sort"
	"strings"

	// The roots: every package whose messages the proxy reads or writes.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Module is the import path the mirror packages live under.
const Module = "github.com/meshlens/meshlens/internal/xdsproto"

// rootPackages are the Go import paths whose files' messages are roots.
var rootPackages = []string{
	"github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3",
	"github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3",
	"github.com/envoyproxy/go-control-plane/envoy/config/core/v3",
	"github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3",
	"github.com/envoyproxy/go-control-plane/envoy/config/listener/v3",
	"github.com/envoyproxy/go-control-plane/envoy/config/route/v3",
	"github.com/envoyproxy/go-control-plane/envoy/config/trace/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3",
	"github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3",
	"github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3",
	"github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3",
	"github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3",
	"github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3",
	"github.com/envoyproxy/go-control-plane/envoy/type/v3",
}

// external are the messages used as they are: types the protobuf and
// gRPC libraries (or the Prometheus exposition model) register anyway.
var external = map[string][2]string{ // proto package -> Go import path, package name
	"google.protobuf":      {"", ""}, // resolved per message below
	"google.rpc":           {"google.golang.org/genproto/googleapis/rpc/status", "status"},
	"io.prometheus.client": {"github.com/prometheus/client_model/go", "io_prometheus_client"},
}

var wkt = map[string][2]string{ // full name -> import path, package name
	"google.protobuf.Any":         {"google.golang.org/protobuf/types/known/anypb", "anypb"},
	"google.protobuf.Duration":    {"google.golang.org/protobuf/types/known/durationpb", "durationpb"},
	"google.protobuf.Timestamp":   {"google.golang.org/protobuf/types/known/timestamppb", "timestamppb"},
	"google.protobuf.Struct":      {"google.golang.org/protobuf/types/known/structpb", "structpb"},
	"google.protobuf.Value":       {"google.golang.org/protobuf/types/known/structpb", "structpb"},
	"google.protobuf.ListValue":   {"google.golang.org/protobuf/types/known/structpb", "structpb"},
	"google.protobuf.Empty":       {"google.golang.org/protobuf/types/known/emptypb", "emptypb"},
	"google.protobuf.BoolValue":   {"google.golang.org/protobuf/types/known/wrapperspb", "wrapperspb"},
	"google.protobuf.UInt32Value": {"google.golang.org/protobuf/types/known/wrapperspb", "wrapperspb"},
	"google.protobuf.UInt64Value": {"google.golang.org/protobuf/types/known/wrapperspb", "wrapperspb"},
	"google.protobuf.Int32Value":  {"google.golang.org/protobuf/types/known/wrapperspb", "wrapperspb"},
	"google.protobuf.Int64Value":  {"google.golang.org/protobuf/types/known/wrapperspb", "wrapperspb"},
	"google.protobuf.DoubleValue": {"google.golang.org/protobuf/types/known/wrapperspb", "wrapperspb"},
	"google.protobuf.FloatValue":  {"google.golang.org/protobuf/types/known/wrapperspb", "wrapperspb"},
	"google.protobuf.StringValue": {"google.golang.org/protobuf/types/known/wrapperspb", "wrapperspb"},
	"google.protobuf.BytesValue":  {"google.golang.org/protobuf/types/known/wrapperspb", "wrapperspb"},
}

// goPkg is one mirror package being written.
type goPkg struct {
	importPath string // mirror import path
	name       string
	srcPath    string // the go-control-plane import path it mirrors
	messages   []protoreflect.MessageDescriptor
	enums      []protoreflect.EnumDescriptor
}

type gen struct {
	pkgs     map[string]*goPkg // by mirror import path
	seenMsg  map[protoreflect.FullName]bool
	seenEnum map[protoreflect.FullName]bool
}

// Generate returns the mirror packages' files, keyed by their path under
// internal/xdsproto.
func Generate() (map[string][]byte, error) {
	g := &gen{pkgs: map[string]*goPkg{}, seenMsg: map[protoreflect.FullName]bool{}, seenEnum: map[protoreflect.FullName]bool{}}
	roots := map[string]bool{}
	for _, p := range rootPackages {
		roots[p] = true
	}
	var err error
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		ip, _ := goPackage(fd)
		if !roots[ip] {
			return true
		}
		msgs := fd.Messages()
		for i := 0; i < msgs.Len(); i++ {
			if err = g.addMessage(msgs.Get(i)); err != nil {
				return false
			}
		}
		enums := fd.Enums()
		for i := 0; i < enums.Len(); i++ {
			g.addEnum(enums.Get(i))
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, p := range g.pkgs {
		src, err := g.writePackage(p)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", p.importPath, err)
		}
		rel := strings.TrimPrefix(p.importPath, Module+"/")
		out[path.Join(rel, "types.go")] = src
	}
	reg, err := g.writeRegistry()
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	out["registry.go"] = reg
	return out, nil
}

// writeRegistry writes New, which makes a mirror message by full name: a
// switch, so that nothing is built when the program starts.
func (g *gen) writeRegistry() ([]byte, error) {
	im := imports{}
	type entry struct{ name, expr string }
	var entries []entry
	for _, p := range g.pkgs {
		for _, md := range p.messages {
			entries = append(entries, entry{string(md.FullName()), "new(" + im.use(p.importPath, alias(p.importPath)) + "." + goMessageName(md) + ")"})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var b bytes.Buffer
	b.WriteString("// Code generated by internal/xdsproto/gen. DO NOT EDIT.\n\npackage xdsproto\n\nimport (\n")
	paths := make([]string, 0, len(im))
	for ip := range im {
		paths = append(paths, ip)
	}
	sort.Strings(paths)
	for _, ip := range paths {
		fmt.Fprintf(&b, "\t%s %q\n", im[ip], ip)
	}
	b.WriteString(")\n\n// New returns a new mirror of the message with this full name, or nil\n// when it has none.\nfunc New(fullName string) any {\n\tswitch fullName {\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "\tcase %q:\n\t\treturn %s\n", e.name, e.expr)
	}
	b.WriteString("\t}\n\treturn nil\n}\n")
	return format.Source(b.Bytes())
}

func goPackage(fd protoreflect.FileDescriptor) (importPath, name string) {
	opts, _ := fd.Options().(*descriptorpb.FileOptions)
	gp := opts.GetGoPackage()
	importPath, name, ok := strings.Cut(gp, ";")
	if !ok {
		name = path.Base(importPath)
	}
	return importPath, name
}

// mirrorPath maps a generated package's import path to its mirror's.
func mirrorPath(src string) string {
	for _, m := range [][2]string{
		{"github.com/envoyproxy/go-control-plane/", ""},
		{"github.com/cncf/xds/go/", "cncf/"},
		{"cel.dev/expr", "celexpr"},
		{"google.golang.org/genproto/googleapis/", "googleapis/"},
	} {
		if rest, ok := strings.CutPrefix(src, m[0]); ok {
			return Module + "/" + m[1] + rest
		}
	}
	return Module + "/other/" + src
}

func isExternal(fn protoreflect.FullName) bool {
	pkg := string(fn.Parent())
	for p := range external {
		if pkg == p || strings.HasPrefix(string(fn), p+".") {
			return true
		}
	}
	return false
}

func (g *gen) pkgOf(fd protoreflect.FileDescriptor) *goPkg {
	ip, name := goPackage(fd)
	mp := mirrorPath(ip)
	p := g.pkgs[mp]
	if p == nil {
		p = &goPkg{importPath: mp, name: name, srcPath: ip}
		g.pkgs[mp] = p
	}
	return p
}

func (g *gen) addMessage(md protoreflect.MessageDescriptor) error {
	if g.seenMsg[md.FullName()] || isExternal(md.FullName()) {
		return nil
	}
	if md.IsMapEntry() {
		// Map entries are fields of their parent, not types.
		return g.addFields(md)
	}
	g.seenMsg[md.FullName()] = true
	if _, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err != nil {
		return fmt.Errorf("message %s has no Go type: %w", md.FullName(), err)
	}
	p := g.pkgOf(md.ParentFile())
	p.messages = append(p.messages, md)
	nested := md.Messages()
	for i := 0; i < nested.Len(); i++ {
		if err := g.addMessage(nested.Get(i)); err != nil {
			return err
		}
	}
	ne := md.Enums()
	for i := 0; i < ne.Len(); i++ {
		g.addEnum(ne.Get(i))
	}
	return g.addFields(md)
}

func (g *gen) addFields(md protoreflect.MessageDescriptor) error {
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		switch f.Kind() {
		case protoreflect.MessageKind, protoreflect.GroupKind:
			if err := g.addMessage(f.Message()); err != nil {
				return err
			}
		case protoreflect.EnumKind:
			g.addEnum(f.Enum())
		}
	}
	return nil
}

func (g *gen) addEnum(ed protoreflect.EnumDescriptor) {
	if g.seenEnum[ed.FullName()] || isExternal(ed.FullName()) {
		return
	}
	g.seenEnum[ed.FullName()] = true
	p := g.pkgOf(ed.ParentFile())
	p.enums = append(p.enums, ed)
}

// imports collects a file's imports: import path -> package name.
type imports map[string]string

func (im imports) use(path, name string) string {
	im[path] = name
	return name
}

// alias is the name a mirror package is imported under: its path, so
// that no two collide.
func alias(importPath string) string {
	return strings.NewReplacer("/", "_", ".", "_", "-", "_").Replace(strings.TrimPrefix(importPath, Module+"/"))
}

// goMessageName is a message's Go name, as protoc-gen-go spells it.
func goMessageName(md protoreflect.MessageDescriptor) string {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		panic(err)
	}
	return reflect.TypeOf(mt.Zero().Interface()).Elem().Name()
}

func goEnumName(ed protoreflect.EnumDescriptor) string {
	et, err := protoregistry.GlobalTypes.FindEnumByName(ed.FullName())
	if err != nil {
		panic(fmt.Sprintf("enum %s: %v", ed.FullName(), err))
	}
	return reflect.TypeOf(et.New(0)).Name()
}

// msgType is the Go type naming message md in package p's source.
func (g *gen) msgType(p *goPkg, im imports, md protoreflect.MessageDescriptor) string {
	fn := string(md.FullName())
	if w, ok := wkt[fn]; ok {
		return im.use(w[0], w[1]) + "." + strings.TrimPrefix(fn, "google.protobuf.")
	}
	for pkg, e := range external {
		if strings.HasPrefix(fn, pkg+".") && e[0] != "" {
			return im.use(e[0], e[1]) + "." + goMessageName(md)
		}
	}
	if isExternal(md.FullName()) {
		panic("no Go type for external message " + fn)
	}
	op := g.pkgOf(md.ParentFile())
	name := goMessageName(md)
	if op == p {
		return name
	}
	return im.use(op.importPath, alias(op.importPath)) + "." + name
}

func (g *gen) enumType(p *goPkg, im imports, ed protoreflect.EnumDescriptor) string {
	op := g.pkgOf(ed.ParentFile())
	name := goEnumName(ed)
	if op == p {
		return name
	}
	return im.use(op.importPath, alias(op.importPath)) + "." + name
}

var kindName = map[protoreflect.Kind]string{
	protoreflect.BoolKind: "bool", protoreflect.EnumKind: "enum",
	protoreflect.Int32Kind: "int32", protoreflect.Sint32Kind: "sint32", protoreflect.Uint32Kind: "uint32",
	protoreflect.Int64Kind: "int64", protoreflect.Sint64Kind: "sint64", protoreflect.Uint64Kind: "uint64",
	protoreflect.Sfixed32Kind: "sfixed32", protoreflect.Fixed32Kind: "fixed32", protoreflect.FloatKind: "float",
	protoreflect.Sfixed64Kind: "sfixed64", protoreflect.Fixed64Kind: "fixed64", protoreflect.DoubleKind: "double",
	protoreflect.StringKind: "string", protoreflect.BytesKind: "bytes", protoreflect.MessageKind: "message",
}

var scalarGo = map[protoreflect.Kind]string{
	protoreflect.BoolKind: "bool", protoreflect.Int32Kind: "int32", protoreflect.Sint32Kind: "int32",
	protoreflect.Uint32Kind: "uint32", protoreflect.Int64Kind: "int64", protoreflect.Sint64Kind: "int64",
	protoreflect.Uint64Kind: "uint64", protoreflect.Sfixed32Kind: "int32", protoreflect.Fixed32Kind: "uint32",
	protoreflect.FloatKind: "float32", protoreflect.Sfixed64Kind: "int64", protoreflect.Fixed64Kind: "uint64",
	protoreflect.DoubleKind: "float64", protoreflect.StringKind: "string", protoreflect.BytesKind: "[]byte",
}

// elemType is the Go type of one value of field f (not the repetition).
func (g *gen) elemType(p *goPkg, im imports, f protoreflect.FieldDescriptor) string {
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return "*" + g.msgType(p, im, f.Message())
	case protoreflect.EnumKind:
		return g.enumType(p, im, f.Enum())
	}
	return scalarGo[f.Kind()]
}

func zeroOf(goType string) string {
	switch {
	case strings.HasPrefix(goType, "*"), strings.HasPrefix(goType, "[]"), strings.HasPrefix(goType, "map["):
		return "nil"
	case goType == "bool":
		return "false"
	case goType == "string":
		return `""`
	}
	return "0"
}

// tag is the wire tag of field f: number, kind, and "rep" or "map" with
// the entry's kinds, "opt" for an explicit-presence scalar.
func tag(f protoreflect.FieldDescriptor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d,", f.Number())
	switch {
	case f.IsMap():
		fmt.Fprintf(&b, "map,%s,%s", kindName[f.MapKey().Kind()], kindName[f.MapValue().Kind()])
	case f.IsList():
		b.WriteString(kindName[f.Kind()] + ",rep")
	default:
		b.WriteString(kindName[f.Kind()])
		if od := f.ContainingOneof(); f.HasPresence() && f.Kind() != protoreflect.MessageKind && (od == nil || od.IsSynthetic()) {
			b.WriteString(",opt")
		}
	}
	return fmt.Sprintf("`pb:%q json:%q`", b.String(), string(f.Name()))
}

// goFields reads the generated struct's Go field names: proto name ->
// Go name, and oneof name -> Go name.
func goFields(md protoreflect.MessageDescriptor) (fields, oneofs map[string]string, wrappers map[protoreflect.FullName]string) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		panic(err)
	}
	rt := reflect.TypeOf(mt.Zero().Interface()).Elem()
	fields, oneofs = map[string]string{}, map[string]string{}
	for i := 0; i < rt.NumField(); i++ {
		sf := rt.Field(i)
		if t, ok := sf.Tag.Lookup("protobuf"); ok {
			for _, part := range strings.Split(t, ",") {
				if n, ok := strings.CutPrefix(part, "name="); ok {
					fields[n] = sf.Name
				}
			}
		}
		if t, ok := sf.Tag.Lookup("protobuf_oneof"); ok {
			oneofs[t] = sf.Name
		}
	}
	// Oneof wrappers: set each member and read the wrapper's type name.
	wrappers = map[protoreflect.FullName]string{}
	fs := md.Fields()
	for i := 0; i < fs.Len(); i++ {
		f := fs.Get(i)
		od := f.ContainingOneof()
		if od == nil || od.IsSynthetic() {
			continue
		}
		m := mt.New()
		m.Set(f, m.NewField(f))
		v := reflect.ValueOf(m.Interface()).Elem().FieldByName(oneofs[string(od.Name())])
		wrappers[f.FullName()] = v.Elem().Type().Elem().Name()
		// The member's Go name is the wrapper's one field.
		wt := v.Elem().Type().Elem()
		fields[string(f.Name())] = wt.Field(0).Name
	}
	return fields, oneofs, wrappers
}

func (g *gen) writePackage(p *goPkg) ([]byte, error) {
	sort.Slice(p.messages, func(i, j int) bool { return p.messages[i].FullName() < p.messages[j].FullName() })
	sort.Slice(p.enums, func(i, j int) bool { return p.enums[i].FullName() < p.enums[j].FullName() })
	im := imports{}
	var body bytes.Buffer
	for _, ed := range p.enums {
		g.writeEnum(&body, ed)
	}
	for _, md := range p.messages {
		g.writeMessage(&body, p, im, md)
	}
	var b bytes.Buffer
	b.WriteString("// Code generated by internal/xdsproto/gen. DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "// Package %s mirrors %s: the same Go names and\n// shapes, without the protobuf registration (internal/xdsproto).\n", p.name, p.srcPath)
	fmt.Fprintf(&b, "package %s\n\n", p.name)
	paths := make([]string, 0, len(im)+1)
	for ip := range im {
		paths = append(paths, ip)
	}
	if len(p.messages) > 0 {
		paths = append(paths, Module+"/wire")
		im[Module+"/wire"] = "wire"
	}
	if len(p.enums) > 0 {
		paths = append(paths, "strconv")
		im["strconv"] = "strconv"
	}
	sort.Strings(paths)
	if len(paths) > 0 {
		b.WriteString("import (\n")
		for _, ip := range paths {
			fmt.Fprintf(&b, "\t%s %q\n", im[ip], ip)
		}
		b.WriteString(")\n\n")
	}
	b.Write(body.Bytes())
	src, err := format.Source(b.Bytes())
	if err != nil {
		return b.Bytes(), fmt.Errorf("gofmt: %w", err)
	}
	return src, nil
}

func (g *gen) writeEnum(b *bytes.Buffer, ed protoreflect.EnumDescriptor) {
	name := goEnumName(ed)
	prefix := name + "_"
	if parent, ok := ed.Parent().(protoreflect.MessageDescriptor); ok {
		prefix = goMessageName(parent) + "_"
	}
	fmt.Fprintf(b, "// %s mirrors %s.\ntype %s int32\n\n", name, ed.FullName(), name)
	vals := ed.Values()
	b.WriteString("const (\n")
	for i := 0; i < vals.Len(); i++ {
		v := vals.Get(i)
		fmt.Fprintf(b, "\t%s%s %s = %d\n", prefix, v.Name(), name, v.Number())
	}
	b.WriteString(")\n\n")
	fmt.Fprintf(b, "// String is the value's name in the .proto, or its number.\nfunc (x %s) String() string {\n\tswitch x {\n", name)
	seen := map[protoreflect.EnumNumber]bool{}
	for i := 0; i < vals.Len(); i++ {
		v := vals.Get(i)
		if seen[v.Number()] {
			continue
		}
		seen[v.Number()] = true
		fmt.Fprintf(b, "\tcase %d:\n\t\treturn %q\n", v.Number(), v.Name())
	}
	b.WriteString("\t}\n\treturn strconv.Itoa(int(x))\n}\n\n")
	fmt.Fprintf(b, "// Enum returns a pointer to a copy of x.\nfunc (x %s) Enum() *%s { return &x }\n\n", name, name)
}

func (g *gen) writeMessage(b *bytes.Buffer, p *goPkg, im imports, md protoreflect.MessageDescriptor) {
	name := goMessageName(md)
	fieldNames, oneofNames, wrappers := goFields(md)
	fmt.Fprintf(b, "// %s mirrors %s.\ntype %s struct {\n", name, md.FullName(), name)
	fs := md.Fields()
	type member struct {
		f       protoreflect.FieldDescriptor
		goName  string
		goType  string
		wrapper string
	}
	oneofMembers := map[string][]member{}
	var oneofOrder []string
	writtenOneof := map[string]bool{}
	for i := 0; i < fs.Len(); i++ {
		f := fs.Get(i)
		od := f.ContainingOneof()
		if od != nil && !od.IsSynthetic() {
			on := string(od.Name())
			oneofMembers[on] = append(oneofMembers[on], member{f: f, goName: fieldNames[string(f.Name())], goType: g.elemType(p, im, f), wrapper: wrappers[f.FullName()]})
			if !writtenOneof[on] {
				writtenOneof[on] = true
				oneofOrder = append(oneofOrder, on)
				fmt.Fprintf(b, "\t%s is%s_%s `pb_oneof:%q`\n", oneofNames[on], name, oneofNames[on], on)
			}
			continue
		}
		fmt.Fprintf(b, "\t%s %s %s\n", fieldNames[string(f.Name())], g.fieldType(p, im, f), tag(f))
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(b, "// XDSTypeName is the message's full name in the .proto.\nfunc (*%s) XDSTypeName() string { return %q }\n\n", name, md.FullName())
	fmt.Fprintf(b, "// Unmarshal decodes the protobuf encoding b into x.\nfunc (x *%s) Unmarshal(b []byte) error { return wire.Unmarshal(b, x) }\n\n", name)
	fmt.Fprintf(b, "// Marshal encodes x deterministically.\nfunc (x *%s) Marshal() ([]byte, error) { return wire.Marshal(x) }\n\n", name)
	g.writeValidate(b, p, im, md)
	for i := 0; i < fs.Len(); i++ {
		f := fs.Get(i)
		gn := fieldNames[string(f.Name())]
		od := f.ContainingOneof()
		if od != nil && !od.IsSynthetic() {
			t := g.elemType(p, im, f)
			fmt.Fprintf(b, "func (x *%s) Get%s() %s {\n\tif w, ok := x.Get%s().(*%s); ok {\n\t\treturn w.%s\n\t}\n\treturn %s\n}\n\n",
				name, gn, t, oneofNames[string(od.Name())], wrappers[f.FullName()], gn, zeroOf(t))
			continue
		}
		t := g.fieldType(p, im, f)
		if strings.HasPrefix(t, "*") && f.Kind() != protoreflect.MessageKind {
			// An explicit-presence scalar: the getter reads through.
			et := t[1:]
			fmt.Fprintf(b, "func (x *%s) Get%s() %s {\n\tif x != nil && x.%s != nil {\n\t\treturn *x.%s\n\t}\n\treturn %s\n}\n\n", name, gn, et, gn, gn, zeroOf(et))
			continue
		}
		fmt.Fprintf(b, "func (x *%s) Get%s() %s {\n\tif x != nil {\n\t\treturn x.%s\n\t}\n\treturn %s\n}\n\n", name, gn, t, gn, zeroOf(t))
	}
	for _, on := range oneofOrder {
		gn := oneofNames[on]
		iface := "is" + name + "_" + gn
		fmt.Fprintf(b, "func (x *%s) Get%s() %s {\n\tif x != nil {\n\t\treturn x.%s\n\t}\n\treturn nil\n}\n\n", name, gn, iface, gn)
		fmt.Fprintf(b, "type %s interface{ %s() }\n\n", iface, iface)
		for _, m := range oneofMembers[on] {
			fmt.Fprintf(b, "// %s is a value of %s.%s.\ntype %s struct {\n\t%s %s %s\n}\n\n", m.wrapper, name, gn, m.wrapper, m.goName, m.goType, tag(m.f))
			fmt.Fprintf(b, "func (*%s) %s() {}\n\n", m.wrapper, iface)
		}
	}
	if len(oneofOrder) > 0 {
		var ws []string
		for _, on := range oneofOrder {
			for _, m := range oneofMembers[on] {
				ws = append(ws, "(*"+m.wrapper+")(nil)")
			}
		}
		fmt.Fprintf(b, "// XXX_OneofWrappers lists the oneofs' value types, for internal/xdsproto/wire.\nfunc (*%s) XXX_OneofWrappers() []any {\n\treturn []any{\n\t\t%s,\n\t}\n}\n\n", name, strings.Join(ws, ",\n\t\t"))
	}
}

func (g *gen) fieldType(p *goPkg, im imports, f protoreflect.FieldDescriptor) string {
	switch {
	case f.IsMap():
		return "map[" + g.elemType(p, im, f.MapKey()) + "]" + g.elemType(p, im, f.MapValue())
	case f.IsList():
		return "[]" + g.elemType(p, im, f)
	}
	t := g.elemType(p, im, f)
	if f.HasPresence() && f.Kind() != protoreflect.MessageKind && f.ContainingOneof() != nil && f.ContainingOneof().IsSynthetic() {
		return "*" + t
	}
	return t
}
