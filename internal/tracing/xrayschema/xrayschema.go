// Package xrayschema checks X-Ray segment documents against AWS's segment
// document schema: the fields a daemon needs, their formats, and the
// App Mesh fields Envoy writes. Tests of every producer of segments (the
// exporter's unit tests, the end-to-end test daemon) share it, so one
// reading of the schema holds everywhere.
package xrayschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"unicode/utf8"
)

// Header starts every datagram sent to an X-Ray daemon.
const Header = `{"format": "json", "version": 1}` + "\n"

// MaxDatagram is the daemon's limit on one datagram.
const MaxDatagram = 64 * 1024

var (
	reTraceID    = regexp.MustCompile(`^1-[0-9a-f]{8}-[0-9a-f]{24}$`)
	reID         = regexp.MustCompile(`^[0-9a-f]{16}$`)
	reAnnotation = regexp.MustCompile(`^[A-Za-z0-9_]{1,500}$`)
	reName       = regexp.MustCompile(`^[\p{L}\p{N}\s_.:/%&#=+\\\-@]{1,200}$`)
)

// Datagram splits one UDP datagram into its header and segment document
// and validates the document; it returns the document.
func Datagram(b []byte) (map[string]any, error) {
	if len(b) > MaxDatagram {
		return nil, fmt.Errorf("datagram: %d bytes, over the daemon's %d", len(b), MaxDatagram)
	}
	doc, ok := bytes.CutPrefix(b, []byte(Header))
	if !ok {
		return nil, fmt.Errorf("datagram: does not start with the header %q", Header)
	}
	return Document(doc)
}

// Document decodes and validates one segment document (a segment, or an
// independent subsegment with "type": "subsegment"); it returns every
// problem found, each naming its field.
func Document(doc []byte) (map[string]any, error) {
	if !utf8.Valid(doc) {
		return nil, errors.New("document: not UTF-8")
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, fmt.Errorf("document: not a JSON object: %w", err)
	}
	var errs []error
	check(m, "", true, &errs)
	return m, errors.Join(errs...)
}

// check validates a segment or subsegment at path (empty for the top
// document, "subsegments[i]." below it); top is whether it stands alone
// (and so needs a trace_id).
func check(m map[string]any, path string, top bool, errs *[]error) {
	bad := func(field, format string, a ...any) {
		*errs = append(*errs, fmt.Errorf("%s%s: %s", path, field, fmt.Sprintf(format, a...)))
	}
	str := func(k string) (string, bool) {
		v, present := m[k]
		if !present {
			return "", false
		}
		s, ok := v.(string)
		if !ok {
			bad(k, "a %T, want a string", v)
		}
		return s, ok
	}
	sub := path != "" || m["type"] != nil
	if t, ok := str("type"); ok && t != "subsegment" {
		bad("type", "%q, want \"subsegment\" or absent", t)
	}
	if n, ok := str("name"); !ok {
		bad("name", "required")
	} else if !reName.MatchString(n) {
		bad("name", "%q: 1-200 letters, digits, whitespace or _ . : / %% & # = + \\ - @", n)
	}
	if id, ok := str("id"); !ok {
		bad("id", "required")
	} else if !reID.MatchString(id) {
		bad("id", "%q, want 16 lowercase hex digits", id)
	}
	tid, hasTrace := str("trace_id")
	switch {
	case hasTrace && !reTraceID.MatchString(tid):
		bad("trace_id", "%q, want 1-{8 hex digits}-{24 hex digits}", tid)
	case !hasTrace && top:
		bad("trace_id", "required")
	}
	pid, hasParent := str("parent_id")
	switch {
	case hasParent && !reID.MatchString(pid):
		bad("parent_id", "%q, want 16 lowercase hex digits", pid)
	case !hasParent && top && sub:
		bad("parent_id", "required on an independent subsegment")
	}
	start, ok := m["start_time"].(float64)
	if !ok || start <= 0 {
		bad("start_time", "%v, want a positive number of epoch seconds", m["start_time"])
	}
	inProgress, _ := m["in_progress"].(bool)
	if v, present := m["in_progress"]; present {
		if _, isBool := v.(bool); !isBool {
			bad("in_progress", "a %T, want a boolean", v)
		}
	}
	end, hasEnd := m["end_time"].(float64)
	switch {
	case hasEnd && inProgress:
		bad("end_time", "set on a segment in progress")
	case !hasEnd && !inProgress:
		bad("end_time", "required (or in_progress true)")
	case hasEnd && ok && end < start:
		bad("end_time", "%v before start_time %v", end, start)
	}
	for _, k := range []string{"error", "throttle", "fault"} {
		if v, present := m[k]; present {
			if _, isBool := v.(bool); !isBool {
				bad(k, "a %T, want a boolean", v)
			}
		}
	}
	if ns, ok := str("namespace"); ok && ns != "aws" && ns != "remote" {
		bad("namespace", "%q, want \"aws\" or \"remote\"", ns)
	}
	if ns, _ := m["namespace"].(string); ns != "" && !sub {
		bad("namespace", "only subsegments have one")
	}
	if v, present := m["http"]; present {
		checkHTTP(v, path+"http.", sub, errs)
	}
	if v, present := m["aws"]; present {
		checkAWS(v, path+"aws.", errs)
	}
	if v, present := m["annotations"]; present {
		ann, isMap := v.(map[string]any)
		if !isMap {
			bad("annotations", "a %T, want an object", v)
		}
		for k, v := range ann {
			if !reAnnotation.MatchString(k) {
				bad("annotations."+k, "key: letters, digits and _ only")
			}
			switch v.(type) {
			case string, float64, bool:
			default:
				bad("annotations."+k, "a %T, want a string, number or boolean", v)
			}
		}
	}
	if v, present := m["metadata"]; present {
		if _, isMap := v.(map[string]any); !isMap {
			bad("metadata", "a %T, want an object", v)
		}
	}
	if v, present := m["subsegments"]; present {
		subs, isList := v.([]any)
		if !isList {
			bad("subsegments", "a %T, want an array", v)
		}
		for i, s := range subs {
			sm, isMap := s.(map[string]any)
			p := fmt.Sprintf("%ssubsegments[%d].", path, i)
			if !isMap {
				*errs = append(*errs, fmt.Errorf("%s: a %T, want an object", p, s))
				continue
			}
			check(sm, p, false, errs)
		}
	}
}

func checkHTTP(v any, path string, sub bool, errs *[]error) {
	bad := func(field, format string, a ...any) {
		*errs = append(*errs, fmt.Errorf("%s%s: %s", path, field, fmt.Sprintf(format, a...)))
	}
	h, ok := v.(map[string]any)
	if !ok {
		bad("", "a %T, want an object", v)
		return
	}
	if r, present := h["request"]; present {
		req, ok := r.(map[string]any)
		if !ok {
			bad("request", "a %T, want an object", r)
		}
		for _, k := range []string{"method", "url", "user_agent", "client_ip"} {
			if v, present := req[k]; present {
				if _, isStr := v.(string); !isStr {
					bad("request."+k, "a %T, want a string", v)
				}
			}
		}
		for _, k := range []string{"x_forwarded_for", "traced"} {
			if v, present := req[k]; present {
				if _, isBool := v.(bool); !isBool {
					bad("request."+k, "a %T, want a boolean", v)
				}
			}
		}
		if _, present := req["traced"]; present && !sub {
			bad("request.traced", "only subsegments have it")
		}
	}
	if r, present := h["response"]; present {
		resp, ok := r.(map[string]any)
		if !ok {
			bad("response", "a %T, want an object", r)
		}
		for _, k := range []string{"status", "content_length"} {
			if v, present := resp[k]; present {
				n, isNum := v.(float64)
				if !isNum || n != float64(int64(n)) || n < 0 {
					bad("response."+k, "%v, want a non-negative integer", v)
				}
			}
		}
		if s, ok := resp["status"].(float64); ok && (s < 100 || s > 599) {
			bad("response.status", "%v, not an HTTP status", s)
		}
	}
}

// checkAWS checks the aws object's app_mesh part as App Mesh's Envoy
// writes it: the mesh name and exactly one of the virtual node's or the
// virtual gateway's name.
func checkAWS(v any, path string, errs *[]error) {
	bad := func(field, format string, a ...any) {
		*errs = append(*errs, fmt.Errorf("%s%s: %s", path, field, fmt.Sprintf(format, a...)))
	}
	a, ok := v.(map[string]any)
	if !ok {
		bad("", "a %T, want an object", v)
		return
	}
	am, present := a["app_mesh"]
	if !present {
		return
	}
	m, ok := am.(map[string]any)
	if !ok {
		bad("app_mesh", "a %T, want an object", am)
		return
	}
	if s, _ := m["mesh_name"].(string); s == "" {
		bad("app_mesh.mesh_name", "required, a non-empty string")
	}
	vn, _ := m["virtual_node_name"].(string)
	vg, _ := m["virtual_gateway_name"].(string)
	if (vn == "") == (vg == "") {
		bad("app_mesh", "want exactly one of virtual_node_name and virtual_gateway_name")
	}
}
