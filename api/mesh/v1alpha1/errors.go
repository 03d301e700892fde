package v1alpha1

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// FieldError is a problem with one field, named by its path from the
// document's root, such as spec.listeners[0].portMapping.protocol.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// FieldErrors is every problem found in one resource.
type FieldErrors []*FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// fieldError turns an encoding/json error into a FieldError whose path is
// prefix joined with the JSON field the decoder was in.
func fieldError(prefix string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := join(prefix, te.Field)
		return &FieldError{Path: path, Message: fmt.Sprintf("must be %s, not %s", jsonTypeName(te.Type.Kind().String()), te.Value)}
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &FieldError{Path: prefix, Message: "unknown field " + rest}
	}
	msg = strings.TrimPrefix(msg, "json: ")
	return &FieldError{Path: prefix, Message: msg}
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "uint", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "a list"
	case "struct", "map", "ptr":
		return "an object"
	}
	return goKind
}

func join(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	}
	return prefix + "." + field
}
