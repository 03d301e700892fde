package emf

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/stats"
)

var fixedTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func newStore(t *testing.T) *stats.Store {
	t.Helper()
	s, err := stats.NewStore(stats.Options{FixedTags: []stats.Tag{
		{Name: stats.TagExtMesh, Value: "demo"}, {Name: stats.TagExtVirtualNode, Value: "greeter-v1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validate checks one document against the schema in testdata and the
// rules the schema cannot express.
func validate(t *testing.T, schema map[string]any, line []byte) map[string]any {
	t.Helper()
	var doc any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	if err := checkSchema(schema, doc, "$"); err != nil {
		t.Fatalf("%v\n%s", err, line)
	}
	root := doc.(map[string]any)
	aws := root["_aws"].(map[string]any)
	for _, d := range aws["CloudWatchMetrics"].([]any) {
		dir := d.(map[string]any)
		for _, set := range dir["Dimensions"].([]any) {
			for _, k := range set.([]any) {
				v, ok := root[k.(string)].(string)
				if !ok || v == "" || len(v) > 1024 {
					t.Fatalf("dimension %q is not a top-level string of 1-1024 bytes\n%s", k, line)
				}
			}
		}
		for _, m := range dir["Metrics"].([]any) {
			name := m.(map[string]any)["Name"].(string)
			switch v := root[name].(type) {
			case json.Number:
			case []any:
				if len(v) == 0 || len(v) > MaxValuesPerMetric {
					t.Fatalf("metric %q has %d values\n%s", name, len(v), line)
				}
				for _, x := range v {
					if _, ok := x.(json.Number); !ok {
						t.Fatalf("metric %q has a non-number %v\n%s", name, x, line)
					}
				}
			default:
				t.Fatalf("metric %q is not a top-level number or array of numbers\n%s", name, line)
			}
		}
	}
	if len(line) > 256*1024 {
		t.Fatalf("document of %d bytes exceeds CloudWatch Logs' event size", len(line))
	}
	return root
}

// checkSchema validates v against the subset of JSON Schema the EMF
// schema uses: type, required, properties, items, min/maxItems,
// min/maxLength, minimum, enum.
func checkSchema(schema map[string]any, v any, path string) error {
	if typ, ok := schema["type"].(string); ok {
		if !hasType(v, typ) {
			return fmt.Errorf("%s: %T is not a %s", path, v, typ)
		}
	}
	if enum, ok := schema["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || fmt.Sprint(e) == fmt.Sprint(v)
		}
		if !found {
			return fmt.Errorf("%s: %v not in %v", path, v, enum)
		}
	}
	if min, ok := schema["minimum"].(float64); ok {
		if n, err := v.(json.Number).Float64(); err != nil || n < min {
			return fmt.Errorf("%s: %v below %v", path, v, min)
		}
	}
	if s, ok := v.(string); ok {
		if min, ok := schema["minLength"].(float64); ok && float64(len([]rune(s))) < min {
			return fmt.Errorf("%s: %q shorter than %v", path, s, min)
		}
		if max, ok := schema["maxLength"].(float64); ok && float64(len([]rune(s))) > max {
			return fmt.Errorf("%s: %q longer than %v", path, s, max)
		}
	}
	if obj, ok := v.(map[string]any); ok {
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if _, ok := obj[r.(string)]; !ok {
					return fmt.Errorf("%s: missing %s", path, r)
				}
			}
		}
		if props, ok := schema["properties"].(map[string]any); ok {
			for k, sub := range props {
				if x, ok := obj[k]; ok {
					if err := checkSchema(sub.(map[string]any), x, path+"."+k); err != nil {
						return err
					}
				}
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if min, ok := schema["minItems"].(float64); ok && float64(len(arr)) < min {
			return fmt.Errorf("%s: %d items, minimum %v", path, len(arr), min)
		}
		if max, ok := schema["maxItems"].(float64); ok && float64(len(arr)) > max {
			return fmt.Errorf("%s: %d items, maximum %v", path, len(arr), max)
		}
		if items, ok := schema["items"].(map[string]any); ok {
			for i, x := range arr {
				if err := checkSchema(items, x, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func hasType(v any, typ string) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	}
	return false
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "emf.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	return schema
}

func TestSchemaValidatorRejects(t *testing.T) {
	t.Parallel()
	schema := loadSchema(t)
	for _, doc := range []string{
		`{}`,
		`{"_aws":{"Timestamp":"now","CloudWatchMetrics":[]}}`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"","Dimensions":[[]],"Metrics":[]}]}}`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[{"Name":"m","Unit":"Furlongs"}]}]}}`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Metrics":[]}]}}`,
		`{"_aws":{"Timestamp":1.5,"CloudWatchMetrics":[]}}`,
	} {
		var v any
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if err := checkSchema(schema, v, "$"); err == nil {
			t.Errorf("accepted %s", doc)
		}
	}
}

func TestDocuments(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ext := s.ScopeWithTags("appmesh.", []stats.Tag{
		{Name: stats.TagExtTargetVirtualNode, Value: "greeting-v1"},
		{Name: stats.TagExtTargetVirtualService, Value: "greeting.demo.local"},
	})
	ext.Counter("RequestCountPerTarget").Add(8)
	ext.Counter("HTTPCode_Target_2XX_Count").Add(7)
	rt := ext.Histogram("TargetResponseTime", stats.Milliseconds)
	for _, v := range []uint64{3, 3, 12, 250} {
		rt.Record(v)
	}
	big := s.Scope("cluster.c.").Histogram("upstream_rq_time", stats.Milliseconds)
	for v := range uint64(1000) {
		big.Record(v)
	}
	s.Scope("server.").Gauge("live").Set(1)
	s.Scope("cluster.c.").Histogram("idle", stats.Milliseconds) // no samples: left out

	var out bytes.Buffer
	sink := New(&out, Options{Namespace: "AppMesh"})
	if err := sink.Flush(context.Background(), s.Snapshot(fixedTime)); err != nil {
		t.Fatal(err)
	}
	schema := loadSchema(t)
	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 3 {
		t.Fatalf("%d documents, want 3 (one per tag set):\n%s", len(lines), out.String())
	}
	found := map[string]map[string]any{}
	for _, l := range lines {
		doc := validate(t, schema, l)
		aws := doc["_aws"].(map[string]any)
		if ts, _ := aws["Timestamp"].(json.Number).Int64(); ts != fixedTime.UnixMilli() {
			t.Errorf("timestamp %v", ts)
		}
		for k := range doc {
			found[k] = doc
		}
	}
	ext1 := found["envoy.appmesh.RequestCountPerTarget"]
	if ext1 == nil || ext1["envoy.appmesh.RequestCountPerTarget"].(json.Number).String() != "8" ||
		ext1["TargetVirtualNode"] != "greeting-v1" || ext1["Mesh"] != "demo" {
		t.Errorf("extension document = %v", ext1)
	}
	dir := ext1["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
	dims := dir["Dimensions"].([]any)[0].([]any)
	if !slices.Equal(dims, []any{"TargetVirtualNode", "TargetVirtualService", "Mesh", "VirtualNode"}) {
		t.Errorf("dimensions = %v", dims)
	}
	if dir["Namespace"] != "AppMesh" {
		t.Errorf("namespace = %v", dir["Namespace"])
	}
	vals := ext1["envoy.appmesh.TargetResponseTime"].([]any)
	if fmt.Sprint(vals) != "[3 3 12 255]" {
		t.Errorf("response time values = %v", vals)
	}
	// 1000 samples become 100 evenly spaced quantiles.
	bigDoc := found["envoy.cluster.upstream_rq_time"]
	bv := bigDoc["envoy.cluster.upstream_rq_time"].([]any)
	if len(bv) != MaxValuesPerMetric {
		t.Errorf("%d values for a busy histogram", len(bv))
	}
	first, _ := bv[0].(json.Number).Float64()
	last, _ := bv[len(bv)-1].(json.Number).Float64()
	if first < 0 || first > 10 || last < 980 || last > 1000 {
		t.Errorf("quantile values span %v..%v, want about 5..995", first, last)
	}
	if found["envoy.cluster.idle"] != nil {
		t.Error("histogram without samples written")
	}
	if live := found["envoy.server.live"]; live == nil || live["envoy.server.live"].(json.Number).String() != "1" {
		t.Errorf("gauge document = %v", live)
	}
}

func TestDocumentLimits(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	// 250 counters with identical tags: three documents of at most 100.
	sc := s.Scope("cluster.c.")
	for i := range 250 {
		sc.Counter(fmt.Sprintf("c%03d", i)).Inc()
	}
	// 40 tags: 30 dimensions, the rest plain members.
	var tags []stats.Tag
	for i := range 40 {
		tags = append(tags, stats.Tag{Name: fmt.Sprintf("T%02d", i), Value: "v"})
	}
	s.ScopeWithTags("wide.", tags).Counter("x").Inc()
	// A metric named like a dimension is left out.
	s.ScopeWithTags("", []stats.Tag{{Name: "envoy.clash", Value: "v"}}).Counter("clash").Inc()

	docs := New(nil, Options{}).Documents(s.Snapshot(fixedTime))
	schema := loadSchema(t)
	counts := map[string]int{}
	for _, d := range docs {
		doc := validate(t, schema, d)
		dir := doc["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
		metrics := dir["Metrics"].([]any)
		dims := dir["Dimensions"].([]any)[0].([]any)
		counts[fmt.Sprint(len(dims))] += len(metrics)
		if _, ok := doc["T39"]; ok && len(dims) != MaxDimensions {
			t.Errorf("wide document has %d dimensions", len(dims))
		}
		for _, m := range metrics {
			if m.(map[string]any)["Name"] == "envoy.clash" {
				t.Error("metric named like its dimension written")
			}
		}
	}
	if counts["3"] != 250 {
		t.Errorf("cluster counters written: %d, want 250", counts["3"])
	}
	if len(docs) != 3+1+0 {
		t.Errorf("%d documents, want 4", len(docs))
	}
}

func TestInclude(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	s.Scope("cluster.c.").Counter("upstream_rq_total").Inc()
	s.Scope("server.").Gauge("live").Set(1)
	docs := New(nil, Options{Include: regexp.MustCompile(`^cluster\.`)}).Documents(s.Snapshot(fixedTime))
	if len(docs) != 1 || !bytes.Contains(docs[0], []byte("envoy.cluster.upstream_rq_total")) {
		t.Errorf("documents: %s", docs)
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestGoldenDocuments pins the documents of a small sidecar's flush.
func TestGoldenDocuments(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	sc := s.Scope("cluster.cds_egress_demo_greeting-v1_http_9080.")
	codes := sc.CodeCounters("upstream_rq")
	for _, c := range []int{200, 200, 503} {
		codes.Inc(c)
	}
	sc.Gauge("membership_healthy").Set(2)
	h := sc.Histogram("upstream_rq_time", stats.Milliseconds)
	for _, v := range []uint64{4, 4, 12, 130} {
		h.Record(v)
	}
	ext := s.ScopeWithTags("appmesh.", []stats.Tag{
		{Name: stats.TagExtTargetVirtualNode, Value: "greeting-v1"},
		{Name: stats.TagExtTargetVirtualService, Value: "greeting.demo.local"},
	})
	ext.Counter("RequestCountPerTarget").Add(3)
	ext.Counter("HTTPCode_Target_2XX_Count").Add(2)
	ext.Counter("HTTPCode_Target_5XX_Count").Add(1)
	var b bytes.Buffer
	if err := New(&b, Options{}).Flush(context.Background(), s.Snapshot(fixedTime)); err != nil {
		t.Fatal(err)
	}
	schema := loadSchema(t)
	for _, l := range bytes.Split(bytes.TrimSuffix(b.Bytes(), []byte("\n")), []byte("\n")) {
		validate(t, schema, l)
	}
	path := filepath.Join("testdata", "emf.golden")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("emf.golden differs (run with -update and review the diff)\n--- got ---\n%s", b.String())
	}
}
