package ratelimit

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	"golang.org/x/net/http/httpguts"
)

// headerOp is one compiled HeaderValueOption.
type headerOp struct {
	key    string // canonical MIME form
	value  string
	action corev3.HeaderValueOption_HeaderAppendAction
}

// compileHeaders compiles response_headers_to_add or
// request_headers_to_add_when_not_enforced. Envoy's %COMMAND% substitution
// is not implemented, so a value with a '%' other than the "%%" escape is
// refused rather than sent verbatim.
func compileHeaders(in []*corev3.HeaderValueOption, field string) ([]headerOp, error) {
	var out []headerOp
	for i, o := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		h := o.GetHeader()
		if h == nil {
			return nil, fmt.Errorf("%s.header: missing", f)
		}
		key := h.GetKey()
		if strings.HasPrefix(key, ":") || !httpguts.ValidHeaderFieldName(key) {
			return nil, fmt.Errorf("%s.header.key: %q is not a header name this filter can set", f, key)
		}
		if len(h.GetRawValue()) > 0 {
			return nil, fmt.Errorf("%s.header.raw_value: not supported, use value", f)
		}
		v, err := unescapePercent(h.GetValue())
		if err != nil {
			return nil, fmt.Errorf("%s.header.value: %w", f, err)
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("%s.header.value: not a valid header value", f)
		}
		if v == "" && !o.GetKeepEmptyValue() {
			continue
		}
		action := o.GetAppendAction()
		//lint:ignore SA1019 Envoy still honours the deprecated append, so a control plane may send it.
		if a := o.GetAppend(); a != nil {
			if a.GetValue() {
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			} else {
				action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			}
		}
		out = append(out, headerOp{key: textproto.CanonicalMIMEHeaderKey(key), value: v, action: action})
	}
	return out, nil
}

func unescapePercent(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	if strings.Contains(strings.ReplaceAll(v, "%%", ""), "%") {
		return "", fmt.Errorf("%q: %%COMMAND%% substitution is not supported (write %%%% for a literal %%)", v)
	}
	return strings.ReplaceAll(v, "%%", "%"), nil
}

func applyHeaders(ops []headerOp, h http.Header) {
	for _, op := range ops {
		_, exists := h[op.key]
		switch op.action {
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !exists {
				h[op.key] = []string{op.value}
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h[op.key] = []string{op.value}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if exists {
				h[op.key] = []string{op.value}
			}
		default:
			h[op.key] = append(h[op.key], op.value)
		}
	}
}
