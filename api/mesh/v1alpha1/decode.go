package v1alpha1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	yamlv2 "go.yaml.in/yaml/v2"
	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// Documents are decoded in two steps: the input is split into documents,
// each turned into JSON (YAML through sigs.k8s.io/yaml, as Kubernetes
// does), and each JSON document is then recognised by its keys as the
// meshlens form (kind), App Mesh's API input or describe-* output
// (meshName, or a single key such as virtualNode), or CloudFormation
// (Resources, or Type and Properties) and mapped onto Resources.
//
// sigs.k8s.io/yaml drops YAML tags silently (`MeshName: !Ref Mesh` would
// become the literal string "Mesh"), so a document that may hold a tag is
// also parsed with go.yaml.in/yaml/v3, whose node tree keeps tags and line
// numbers, to refuse them with the path they are at.

// ErrInputTooLarge is returned by DecodeReader for input over its limit.
var ErrInputTooLarge = errors.New("input too large")

// DocumentError is a problem with one document of an input. Documents are
// numbered from 1 in input order, skipping empty ones; each element of a
// top-level list counts as a document.
type DocumentError struct {
	Index int
	// Name says what the document holds when that is known, such as
	// "VirtualNode demo/greeter".
	Name string
	Err  error
}

func (e *DocumentError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("document %d: %v", e.Index, e.Err)
	}
	return fmt.Sprintf("document %d (%s): %v", e.Index, e.Name, e.Err)
}

// Unwrap returns the underlying error, often FieldErrors or a *FieldError.
func (e *DocumentError) Unwrap() error { return e.Err }

// Decode reads every resource in data: meshlens documents in YAML (several
// separated by --- lines) or JSON (one object, a list of objects, or a
// stream of objects), App Mesh's API input (--cli-input-json) and
// describe-* output, and CloudFormation templates or single
// AWS::AppMesh::* resources. Resources come in document order (a
// template's in Kinds order). Decode does not validate them; see
// DecodeAndValidate. On error it reports every document that failed, each
// as a *DocumentError, joined with errors.Join.
func Decode(data []byte) ([]*Resource, error) {
	ds, errs := decodeAll(data)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := make([]*Resource, len(ds))
	for i, d := range ds {
		out[i] = d.r
	}
	return out, nil
}

// DecodeReader is Decode for a reader, reading at most limit bytes (no
// limit when limit <= 0); more is an error wrapping ErrInputTooLarge.
func DecodeReader(r io.Reader, limit int64) ([]*Resource, error) {
	if limit > 0 {
		r = io.LimitReader(r, limit+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	if limit > 0 && int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrInputTooLarge, limit)
	}
	return Decode(data)
}

// DecodeAndValidate decodes data and validates every resource, and checks
// that no two documents define the same resource. It reports the problems
// of every document, decoding and validation alike, in document order.
func DecodeAndValidate(data []byte) ([]*Resource, error) {
	ds, errs := decodeAll(data)
	seen := map[Key]int{}
	for _, d := range ds {
		if err := d.r.Validate(); err != nil {
			errs = append(errs, &DocumentError{Index: d.index, Name: d.name, Err: err})
		}
		k := d.r.Key()
		if first, dup := seen[k]; dup {
			errs = append(errs, &DocumentError{Index: d.index, Name: d.name, Err: fmt.Errorf("%s is also defined by document %d", k, first)})
		} else {
			seen[k] = d.index
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b error) int { return docIndex(a) - docIndex(b) })
		return nil, errors.Join(errs...)
	}
	out := make([]*Resource, len(ds))
	for i, d := range ds {
		out[i] = d.r
	}
	return out, nil
}

func docIndex(err error) int {
	var de *DocumentError
	if errors.As(err, &de) {
		return de.Index
	}
	return 0
}

// Encode writes resources as "yaml" (documents separated by ---) or
// "json" (one object for one resource, otherwise a list).
func Encode(w io.Writer, rs []*Resource, format string) error {
	switch strings.ToLower(format) {
	case "json":
		var v any = rs
		switch len(rs) {
		case 0:
			v = []*Resource{}
		case 1:
			v = rs[0]
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("write json: %w", err)
		}
		return nil
	case "yaml", "yml":
		var buf bytes.Buffer
		for i, r := range rs {
			b, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("encode %s: %w", r.Key(), err)
			}
			y, err := JSONToYAML(b)
			if err != nil {
				return fmt.Errorf("encode %s as yaml: %w", r.Key(), err)
			}
			if i > 0 {
				buf.WriteString("---\n")
			}
			buf.Write(y)
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("write yaml: %w", err)
		}
		return nil
	}
	return fmt.Errorf("unknown output format %q: want yaml or json", format)
}

// JSONToYAML turns JSON text into YAML, keeping the keys in their JSON
// order (kind, mesh and name first, fields in the order App Mesh
// documents them) rather than sorting them as sigs.k8s.io/yaml.JSONToYAML
// does. Strings holding characters a YAML reader refuses raw (DEL, the
// C1 controls but NEL, U+FFFE and U+FFFF, which encoding/json leaves
// unescaped) are written with escapes, so they read back as they were
// instead of failing with "control characters are not allowed".
//
// j is a JSON object or a list of objects. A string holding U+0085
// (next line) is an error: YAML would read it back as a line break.
func JSONToYAML(j []byte) ([]byte, error) {
	var v any
	if t := bytes.TrimSpace(j); len(t) > 0 && t[0] == '[' {
		var l []yamlv2.MapSlice
		if err := yamlv2.Unmarshal(escapeForYAML(j), &l); err != nil {
			return nil, err
		}
		v = l
	} else {
		var m yamlv2.MapSlice
		if err := yamlv2.Unmarshal(escapeForYAML(j), &m); err != nil {
			return nil, err
		}
		v = m
	}
	var generic any
	if (bytes.ContainsRune(j, nel) || bytes.Contains(bytes.ToLower(j), []byte(`\u0085`))) && json.Unmarshal(j, &generic) == nil {
		if path, ok := findRune(generic, "", nel); ok {
			if path == "" {
				path = "a value"
			}
			return nil, fmt.Errorf("%s holds U+0085 (next line), which YAML reads as a line break: write it as JSON", path)
		}
	}
	return yamlv2.Marshal(v)
}

// escapeForYAML returns j with every character a YAML reader refuses
// raw or reads as a line break inside a string (NEL, LS and PS, which a
// JSON writer other than encoding/json may leave raw) written as a
// \uXXXX escape; j itself when it has none. In JSON text such characters
// occur only inside strings, where the escape means the same character
// (in YAML's double-quoted scalars too).
func escapeForYAML(j []byte) []byte {
	var out []byte // nil while nothing needed escaping
	for i := 0; i < len(j); {
		r, size := utf8.DecodeRune(j[i:])
		if yamlRefusesRaw(r) || r == nel || r == '\u2028' || r == '\u2029' {
			if out == nil {
				out = append(make([]byte, 0, len(j)+16), j[:i]...)
			}
			out = fmt.Appendf(out, `\u%04x`, r)
		} else if out != nil {
			out = append(out, j[i:i+size]...)
		}
		i += size
	}
	if out == nil {
		return j
	}
	return out
}

// yamlRefusesRaw reports whether r is outside YAML's printable set and
// not one that encoding/json escapes anyway (the C0 controls).
func yamlRefusesRaw(r rune) bool {
	return r == 0x7f || (r >= 0x80 && r <= 0x9f && r != 0x85) || r == 0xfffe || r == 0xffff
}

// ---- splitting the input into documents ----

// decoded is one resource and the document it came from.
type decoded struct {
	r     *Resource
	index int
	name  string
}

// rawDoc is one document as JSON, or the error that kept it from being one.
type rawDoc struct {
	json []byte
	tags []yamlTag // local YAML tags, such as CloudFormation's !Ref
	err  error
}

func decodeAll(data []byte) ([]decoded, []error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var docs []rawDoc
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		var jerr error
		docs, jerr = jsonDocuments(data)
		if jerr != nil {
			// Perhaps YAML flow style ({kind: Mesh, ...}): if the very
			// first document is not JSON, use YAML when it reads cleanly.
			// Otherwise report the JSON error, after the documents before it.
			var ydocs []rawDoc
			if len(docs) == 0 {
				ydocs = yamlDocuments(data)
			}
			if len(ydocs) == 0 || slices.ContainsFunc(ydocs, func(d rawDoc) bool { return d.err != nil }) {
				docs = append(docs, rawDoc{err: jerr})
			} else {
				docs = ydocs
			}
		}
	} else {
		docs = yamlDocuments(data)
	}

	var out []decoded
	var errs []error
	n := 0
	for _, d := range docs {
		if d.err != nil {
			n++
			errs = append(errs, &DocumentError{Index: n, Err: d.err})
			continue
		}
		items, err := expandList(d.json)
		if err != nil {
			n++
			errs = append(errs, &DocumentError{Index: n, Err: err})
			continue
		}
		for _, item := range items {
			n++
			ds, err := decodeObject(item, d.tags, n)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, d := range ds {
				if fe := refuseNEL(d.r); fe != nil {
					errs = append(errs, &DocumentError{Index: d.index, Name: d.name, Err: fe})
					continue
				}
				out = append(out, d)
			}
		}
	}
	return out, errs
}

// nel is U+0085 (next line). YAML reads it as a line break, and the YAML
// writer of Encode leaves it raw, so a value holding it would not read
// back as it was written: Decode refuses it, naming the field.
const nel = '\u0085'

// refuseNEL finds the first field of r (in the meshlens form's names)
// whose name or value holds NEL.
func refuseNEL(r *Resource) *FieldError {
	b, err := json.Marshal(r)
	if err != nil || !bytes.ContainsRune(b, nel) {
		return nil
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	if path, ok := findRune(v, "", nel); ok {
		return &FieldError{Path: path, Message: "holds U+0085 (next line), which YAML reads as a line break: not allowed"}
	}
	return nil
}

// findRune is the path of the first string or key of v, in sorted key
// order, that holds c.
func findRune(v any, path string, c rune) (string, bool) {
	switch x := v.(type) {
	case string:
		return path, strings.ContainsRune(x, c)
	case map[string]any:
		for _, k := range sortedKeys(x) {
			p := field(path, k)
			if strings.ContainsRune(k, c) {
				return p, true
			}
			if p, ok := findRune(x[k], p, c); ok {
				return p, true
			}
		}
	case []any:
		for i, e := range x {
			if p, ok := findRune(e, index(path, i), c); ok {
				return p, true
			}
		}
	}
	return "", false
}

// jsonDocuments reads a stream of JSON values.
func jsonDocuments(data []byte) ([]rawDoc, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs []rawDoc
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return docs, fmt.Errorf("line %d: invalid JSON: %s", lineAt(data, se.Offset), se.Error())
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return docs, fmt.Errorf("line %d: invalid JSON: unexpected end of input", lineAt(data, int64(len(data))))
			}
			return docs, fmt.Errorf("invalid JSON: %w", err)
		}
		docs = append(docs, rawDoc{json: raw})
	}
}

func lineAt(data []byte, offset int64) int {
	offset = min(max(offset, 0), int64(len(data)))
	return 1 + bytes.Count(data[:offset], []byte("\n"))
}

// yamlChunk is the text of one YAML document and its first line.
type yamlChunk struct {
	text []byte
	line int
}

// splitYAML splits a YAML stream at its document markers: --- (which may
// be followed by content on the same line) and the end marker "...".
func splitYAML(data []byte) []yamlChunk {
	var chunks []yamlChunk
	cur := yamlChunk{line: 1}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			line, data = data, nil
		}
		bare := bytes.TrimRight(line, " \t\r\n")
		switch {
		case string(bare) == "---" || string(bare) == "...":
			chunks = append(chunks, cur)
			cur = yamlChunk{line: lineNo + 1}
		case bytes.HasPrefix(line, []byte("--- ")) || bytes.HasPrefix(line, []byte("---\t")):
			chunks = append(chunks, cur)
			cur = yamlChunk{line: lineNo, text: append([]byte("    "), line[4:]...)}
		case bytes.HasPrefix(line, []byte("%YAML")) || bytes.HasPrefix(line, []byte("%TAG")):
			// Directives belong to the next document; they change nothing
			// the converter needs.
			cur.text = append(cur.text, '\n')
		default:
			cur.text = append(cur.text, line...)
		}
	}
	return append(chunks, cur)
}

var yamlLine = regexp.MustCompile(`\bline (\d+)\b`)

// yamlDocuments converts each non-empty YAML document to JSON.
func yamlDocuments(data []byte) []rawDoc {
	var docs []rawDoc
	for _, c := range splitYAML(data) {
		j, err := yaml.YAMLToJSON(c.text)
		if err != nil {
			docs = append(docs, rawDoc{err: yamlError(err, c.line)})
			continue
		}
		if s := string(bytes.TrimSpace(j)); s == "null" || s == "" {
			continue // only comments or whitespace
		}
		if err := trailingContent(c.text, c.line); err != nil {
			docs = append(docs, rawDoc{err: err})
			continue
		}
		d := rawDoc{json: j}
		if bytes.IndexByte(c.text, '!') >= 0 {
			d.tags = findTags(c.text, c.line)
		}
		docs = append(docs, d)
	}
	return docs
}

// trailingContent refuses a flow collection followed by more content on
// its document ({...}{...}), which the YAML 1.1 converter silently drops.
func trailingContent(text []byte, firstLine int) error {
	if t := bytes.TrimSpace(text); len(t) == 0 || t[0] != '{' && t[0] != '[' {
		return nil
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(text))
	var n yamlv3.Node
	if dec.Decode(&n) != nil {
		return nil // the converter accepted it; let it be
	}
	var rest yamlv3.Node
	if err := dec.Decode(&rest); err != io.EOF {
		what := "mapping"
		if bytes.TrimSpace(text)[0] == '[' {
			what = "list"
		}
		return fmt.Errorf("invalid YAML: unexpected content after the %s that starts on line %d", what, n.Line+firstLine-1)
	}
	return nil
}

// yamlError makes the YAML library's message relative to the whole input.
func yamlError(err error, firstLine int) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(yamlLine.FindStringSubmatch(m)[1])
		return "line " + strconv.Itoa(n+firstLine-1)
	})
	return fmt.Errorf("invalid YAML: %s", msg)
}

// yamlTag is a local tag (such as !Ref) on a node of a YAML document.
type yamlTag struct {
	path string // CloudFormation-style path: Resources.Mesh.Properties.MeshName
	tag  string
	line int
}

// findTags lists the local tags of a YAML document; standard tags (!!str)
// are fine. A document yaml.v3 cannot read yields none: the converter's
// own error is the one reported.
func findTags(text []byte, firstLine int) []yamlTag {
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(text, &root); err != nil {
		return nil
	}
	var out []yamlTag
	var walk func(n *yamlv3.Node, path string)
	walk = func(n *yamlv3.Node, path string) {
		if n == nil {
			return
		}
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") && n.Tag != "!" {
			out = append(out, yamlTag{path: path, tag: n.Tag, line: n.Line + firstLine - 1})
		}
		switch n.Kind {
		case yamlv3.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yamlv3.SequenceNode:
			for i, c := range n.Content {
				walk(c, index(path, i))
			}
		case yamlv3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], field(path, n.Content[i].Value))
			}
		}
		// Aliases are not followed: their target was walked where it is
		// defined, and following them could blow up.
	}
	walk(&root, "")
	return out
}

// expandList returns the objects of a document: the document itself, or
// the elements of a top-level list.
func expandList(j []byte) ([]json.RawMessage, error) {
	j = bytes.TrimSpace(j)
	if len(j) == 0 {
		return nil, nil
	}
	var items []json.RawMessage
	if j[0] == '[' {
		if err := json.Unmarshal(j, &items); err != nil {
			return nil, fmt.Errorf("invalid JSON list: %w", err)
		}
	} else {
		items = []json.RawMessage{j}
	}
	for _, it := range items {
		if t := bytes.TrimSpace(it); len(t) == 0 || t[0] != '{' {
			return nil, fmt.Errorf("a document must be an object, not %s", jsonKind(t))
		}
	}
	return items, nil
}

func jsonKind(j []byte) string {
	if len(j) == 0 {
		return "nothing"
	}
	switch j[0] {
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// decodeObject recognises the form of one JSON object and decodes it.
func decodeObject(obj json.RawMessage, tags []yamlTag, idx int) ([]decoded, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(obj, &top); err != nil {
		return nil, &DocumentError{Index: idx, Err: fmt.Errorf("invalid document: %w", err)}
	}
	_, hasResources := top["Resources"]
	_, hasTemplateVersion := top["AWSTemplateFormatVersion"]
	_, hasType := top["Type"]
	switch {
	case hasKey(top, "kind"):
		return decodeMeshlens(obj, tags, idx)
	case hasResources || hasTemplateVersion:
		return decodeTemplate(top, tags, idx)
	case hasType:
		return decodeCFNResource(top, tags, idx, "", "")
	case hasKey(top, "meshName"):
		return decodeAppMeshInput(obj, tags, idx)
	}
	if len(top) == 1 {
		for k, v := range top {
			if kind, ok := describeKinds[k]; ok {
				return decodeAppMeshDescribe(k, kind, v, tags, idx)
			}
		}
	}
	return nil, &DocumentError{Index: idx, Err: errors.New("unknown document format: want a meshlens document (kind, mesh, name, spec), " +
		"App Mesh API input (meshName, spec) or describe-* output ({\"virtualNode\": {...}}), " +
		"or a CloudFormation template (Resources) or resource (Type, Properties)")}
}

func hasKey(m map[string]json.RawMessage, k string) bool { _, ok := m[k]; return ok }

// tagError refuses the first local YAML tag of a document that is not
// CloudFormation, where tags mean nothing.
func tagError(tags []yamlTag) error {
	if len(tags) == 0 {
		return nil
	}
	t := tags[0]
	return &FieldError{Path: t.path, Message: fmt.Sprintf("unsupported YAML tag %s (line %d)", t.tag, t.line)}
}

// decodeMeshlens decodes a document in the meshlens form.
func decodeMeshlens(obj json.RawMessage, tags []yamlTag, idx int) ([]decoded, error) {
	// A tag first: it explains the error the converter's string in its
	// place would cause.
	if err := tagError(tags); err != nil {
		return nil, &DocumentError{Index: idx, Name: peekName(obj), Err: err}
	}
	var r Resource
	err := r.UnmarshalJSON(obj)
	name := resourceName(&r)
	if err != nil {
		err = betterError(err, obj, "", true)
		if name == "" {
			name = peekName(obj)
		}
		return nil, &DocumentError{Index: idx, Name: name, Err: err}
	}
	return []decoded{{r: &r, index: idx, name: name}}, nil
}

// resourceName names a resource for messages once its kind and name are
// known.
func resourceName(r *Resource) string {
	if !r.Kind.Valid() || r.Name == "" {
		return ""
	}
	return r.Key().String()
}

// peekName reads the names of a document leniently, to name it in an
// error that kept it from being decoded.
func peekName(obj json.RawMessage) string {
	var w struct {
		Kind           string `json:"kind"`
		Mesh           string `json:"mesh"`
		Name           string `json:"name"`
		VirtualRouter  string `json:"virtualRouter"`
		VirtualGateway string `json:"virtualGateway"`
	}
	if json.Unmarshal(obj, &w) != nil {
		return ""
	}
	kind, err := ParseKind(w.Kind)
	if err != nil {
		return ""
	}
	return resourceName(&Resource{Kind: kind, Mesh: w.Mesh, Name: w.Name, VirtualRouter: w.VirtualRouter, VirtualGateway: w.VirtualGateway})
}

// ---- locating decode errors ----

// encoding/json reports a type mismatch with a path that leaves out list
// indices (spec.listeners.portMapping.port) and an unknown field with no
// path at all. Once a decode has failed, explain walks the document along
// the Go types to name the field exactly (spec.listeners[1].portMapping).
// It only ever explains a failure: it never decides whether a document
// decodes.

var specTypes = map[Kind]reflect.Type{
	KindMesh:           reflect.TypeFor[MeshSpec](),
	KindVirtualNode:    reflect.TypeFor[VirtualNodeSpec](),
	KindVirtualService: reflect.TypeFor[VirtualServiceSpec](),
	KindVirtualRouter:  reflect.TypeFor[VirtualRouterSpec](),
	KindRoute:          reflect.TypeFor[RouteSpec](),
	KindVirtualGateway: reflect.TypeFor[VirtualGatewaySpec](),
	KindGatewayRoute:   reflect.TypeFor[GatewayRouteSpec](),
}

// betterError returns a located version of err, a failure to decode the
// JSON document obj as a meshlens resource (whole is true) or as the spec
// of kind, or err itself.
func betterError(err error, obj []byte, kind Kind, whole bool) error {
	var v any
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return err
	}
	var fe *FieldError
	if whole {
		fe = explainEnvelope(v)
	} else if t, ok := specTypes[kind]; ok {
		fe = explain(v, t, "spec")
	}
	if fe == nil {
		return err
	}
	return fe
}

func explainEnvelope(v any) *FieldError {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	kindName, _ := m["kind"].(string)
	kind, kerr := ParseKind(kindName)
	envelope := reflect.TypeFor[resourceJSON]()
	for _, k := range sortedKeys(m) {
		f, ok := jsonField(envelope, k)
		if !ok {
			return &FieldError{Message: fmt.Sprintf("unknown field %q", k)}
		}
		if f.Name == "Spec" {
			if kerr != nil {
				continue
			}
			if fe := explain(m[k], specTypes[kind], "spec"); fe != nil {
				return fe
			}
			continue
		}
		if f.Name == "Kind" {
			continue // ParseKind's own error is better
		}
		if fe := explain(m[k], f.Type, jsonName(f)); fe != nil {
			return fe
		}
	}
	return nil
}

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	timeType       = reflect.TypeFor[time.Time]()
)

// explain finds the first value of v (in sorted key order) that does not
// fit the type t, at path.
func explain(v any, t reflect.Type, path string) *FieldError {
	if v == nil {
		return nil // null leaves a field as it is
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	mismatch := func(want string) *FieldError {
		return &FieldError{Path: path, Message: fmt.Sprintf("must be %s, not %s", want, genericKind(v))}
	}
	switch {
	case t == rawMessageType:
		return nil
	case t == timeType:
		if _, ok := v.(string); !ok {
			return mismatch("a string")
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return mismatch("an object")
		}
		for _, k := range sortedKeys(m) {
			f, ok := jsonField(t, k)
			if !ok {
				return &FieldError{Path: path, Message: fmt.Sprintf("unknown field %q", k)}
			}
			if fe := explain(m[k], f.Type, field(path, jsonName(f))); fe != nil {
				return fe
			}
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return mismatch("a list")
		}
		for i, e := range l {
			if fe := explain(e, t.Elem(), index(path, i)); fe != nil {
				return fe
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return mismatch("a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return mismatch("a boolean")
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			return mismatch("a number")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return mismatch("an integer")
		}
		if _, err := strconv.ParseInt(n.String(), 10, t.Bits()); err != nil {
			return &FieldError{Path: path, Message: fmt.Sprintf("must be an integer of %d bits, not %s", t.Bits(), n)}
		}
	}
	return nil
}

// genericKind names the JSON type of a value decoded into any.
func genericKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	}
	return "null"
}

// jsonField finds the field of struct t that encoding/json decodes the
// key into: the exact name, or else one that matches ignoring case.
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for i := range t.NumField() {
		f := t.Field(i)
		name := jsonName(f)
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			if ef, ok := jsonField(f.Type, key); ok {
				return ef, true
			}
			continue
		}
		if name == key {
			return f, true
		}
		if !found && strings.EqualFold(name, key) {
			fold, found = f, true
		}
	}
	return fold, found
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
