package tracestore

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// OTLP/HTTP's JSON encoding is protobuf's JSON mapping with one
// exception: trace and span ids are hex strings, not base64. protojson
// reads everything else (enums as names or numbers, 64-bit integers as
// strings or numbers, camelCase or snake_case names), so decodeOTLPJSON
// rewrites the ids in the JSON tree to base64 and hands it on.

// idFields are the OTLP fields that hold ids, in both spellings.
var idFields = map[string]bool{
	"traceId": true, "spanId": true, "parentSpanId": true,
	"trace_id": true, "span_id": true, "parent_span_id": true,
}

// maxJSONDepth bounds nesting (attribute values nest arrays and maps).
const maxJSONDepth = 64

// decodeOTLPJSON reads an ExportTraceServiceRequest in OTLP's JSON
// encoding.
func decodeOTLPJSON(raw []byte) (*collectorpb.ExportTraceServiceRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("not JSON: data after the object")
	}
	if err := hexIDsToBase64(tree, 0); err != nil {
		return nil, err
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return nil, err
	}
	req := &collectorpb.ExportTraceServiceRequest{}
	if err := protojson.Unmarshal(b, req); err != nil {
		return nil, err
	}
	return req, nil
}

func hexIDsToBase64(v any, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && idFields[k] {
				id, err := hex.DecodeString(s)
				if err != nil {
					return fmt.Errorf("%s %q: want hex digits", k, s)
				}
				x[k] = base64.StdEncoding.EncodeToString(id)
				continue
			}
			if err := hexIDsToBase64(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := hexIDsToBase64(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
