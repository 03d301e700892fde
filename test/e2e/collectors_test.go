package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The real trace collectors the tracing tests export to, as
// scripts/install-test-deps.sh builds them into $(go env GOPATH)/bin
// (TestCollectorVersionsMatchInstallScript keeps the two in step).
const (
	jaegerVersion  = "v1.75.0"
	otelcolVersion = "v0.161.0"
)

// requireCollectorsEnv, when set (make test and CI set it), turns a
// missing collector binary into a failure instead of a skip.
const requireCollectorsEnv = "MESHLENS_REQUIRE_COLLECTORS"

// collectorBinary finds a collector built by the install script, or the
// path in env when set. It skips the test when the binary is missing,
// unless requireCollectorsEnv is set: then it fails, so that CI never
// passes by skipping.
func collectorBinary(t testing.TB, env, name string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		path = filepath.Join(goBin(), name)
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("%s is not built (scripts/install-test-deps.sh builds it; %s overrides the path): %v", name, env, err)
		if os.Getenv(requireCollectorsEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// CollectorSpan is one span as a collector stored it, in the form every
// collector's reader gives, so that trees read from different stores
// compare.
type CollectorSpan struct {
	// TraceID, SpanID and ParentID are lowercase hex; ParentID is empty
	// for a root.
	TraceID, SpanID, ParentID string
	Name                      string
	// Kind is "server", "client" or "" (internal or unknown).
	Kind string
	// Service is the resource's service.name (Jaeger's process).
	Service  string
	Start    time.Time
	Duration time.Duration
	// Attrs are the span's attributes (Jaeger's tags) as text: numbers
	// in decimal, booleans as true/false.
	Attrs map[string]string
}

// TraceReader returns the spans a collector has stored for one trace
// (hex id): none, without error, while it has not stored any yet.
type TraceReader func(ctx context.Context, traceID string) ([]CollectorSpan, error)

// Collector is a real trace collector running on loopback.
type Collector struct {
	// Name says which one ("jaeger", "otelcol").
	Name string
	// OTLPGRPC is the OTLP/gRPC receiver's host:port; OTLPHTTP the
	// OTLP/HTTP traces URL (.../v1/traces); Zipkin the Zipkin v2 spans
	// URL (.../api/v2/spans).
	OTLPGRPC, OTLPHTTP, Zipkin string
	// Query is Jaeger's query API base URL (http://host:port); empty for
	// the OpenTelemetry Collector.
	Query string
	// Read reads back what the collector stored.
	Read TraceReader
	logs *syncBuffer
}

// WaitTrace polls Read until the trace has want spans; it fails the test
// after timeout and returns the spans ordered by start time, then id.
func (c *Collector) WaitTrace(t testing.TB, traceID string, want int, timeout time.Duration) []CollectorSpan {
	t.Helper()
	var spans []CollectorSpan
	eventually(t, timeout, fmt.Sprintf("%s stores %d spans of trace %s", c.Name, want, traceID), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		spans, err = c.Read(ctx, traceID)
		if err != nil {
			return err
		}
		if len(spans) < want {
			return fmt.Errorf("%d spans so far", len(spans))
		}
		return nil
	})
	sortSpans(spans)
	return spans
}

func sortSpans(spans []CollectorSpan) {
	sort.Slice(spans, func(i, j int) bool {
		if !spans[i].Start.Equal(spans[j].Start) {
			return spans[i].Start.Before(spans[j].Start)
		}
		return spans[i].SpanID < spans[j].SpanID
	})
}

// TraceTree is a stored trace as a tree: each span under its parent,
// children in start order. A span whose parent was not stored is a root.
type TraceTree struct {
	Span     CollectorSpan
	Children []*TraceTree
}

// BuildTree arranges spans as trees, roots and children in start order.
func BuildTree(spans []CollectorSpan) []*TraceTree {
	spans = append([]CollectorSpan(nil), spans...)
	sortSpans(spans)
	nodes := map[string]*TraceTree{}
	for _, s := range spans {
		nodes[s.SpanID] = &TraceTree{Span: s}
	}
	var roots []*TraceTree
	for _, s := range spans {
		n := nodes[s.SpanID]
		if p, ok := nodes[s.ParentID]; ok && s.ParentID != "" {
			p.Children = append(p.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	return roots
}

// Outline draws trees one span a line, indented by depth, as
// "service kind name": the shape that stores must agree on.
func Outline(roots []*TraceTree) string {
	var b strings.Builder
	var walk func(n *TraceTree, depth int)
	walk = func(n *TraceTree, depth int) {
		fmt.Fprintf(&b, "%s%s %s %s\n", strings.Repeat("  ", depth), n.Span.Service, n.Span.Kind, n.Span.Name)
		for _, c := range n.Children {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

// readyLine is what every collector built on the OpenTelemetry
// Collector's service (Jaeger v2 is one) logs once all its components
// run.
const readyLine = "Everything is ready"

// startTool runs a collector with the config that config makes from
// fresh loopback ports, and waits until it logs readyLine. The ports come
// from toolAddr, so another process may take one first: the tool then
// exits, and it is started again with new ports, three times at most.
// The process is stopped when the test ends.
func startTool(t testing.TB, name, bin string, config func(dir string) string) *syncBuffer {
	t.Helper()
	var last string
	for try := 0; try < 3; try++ {
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfgPath, []byte(config(dir)), 0o600); err != nil {
			t.Fatal(err)
		}
		logs := &syncBuffer{}
		cmd := exec.Command(bin, "--config", cfgPath)
		cmd.Stdout, cmd.Stderr = logs, logs
		// The collectors' own telemetry goes nowhere: left on, its SDK
		// would export to the default localhost:4317.
		cmd.Env = append(os.Environ(), "OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none")
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		ready := false
		deadline := time.After(60 * time.Second)
	wait:
		for {
			select {
			case <-done:
				break wait
			case <-deadline:
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("%s not ready within 60s; logs:\n%s", name, logs)
			case <-time.After(25 * time.Millisecond):
				if strings.Contains(logs.String(), readyLine) {
					ready = true
					break wait
				}
			}
		}
		if !ready {
			last = logs.String()
			continue
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("%s logs:\n%s", name, logs)
			}
		})
		return logs
	}
	t.Fatalf("%s exited before it was ready, three times; last logs:\n%s", name, last)
	return nil
}

// StartJaeger runs Jaeger v2 (all-in-one: OTLP gRPC and HTTP and Zipkin
// receivers, in-memory storage, the query API) on loopback ports.
func StartJaeger(t testing.TB) *Collector {
	t.Helper()
	bin := collectorBinary(t, "MESHLENS_JAEGER", "jaeger-"+jaegerVersion)
	c := &Collector{Name: "jaeger"}
	c.logs = startTool(t, c.Name, bin, func(string) string {
		grpcAddr, httpAddr, zipkinAddr, queryAddr, queryGRPC := toolAddr(t), toolAddr(t), toolAddr(t), toolAddr(t), toolAddr(t)
		c.OTLPGRPC = grpcAddr
		c.OTLPHTTP = "http://" + httpAddr + "/v1/traces"
		c.Zipkin = "http://" + zipkinAddr + "/api/v2/spans"
		c.Query = "http://" + queryAddr
		return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp, zipkin]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
  zipkin:
    endpoint: %s
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, queryAddr, queryGRPC, grpcAddr, httpAddr, zipkinAddr)
	})
	c.Read = func(ctx context.Context, traceID string) ([]CollectorSpan, error) {
		tr, err := JaegerTrace(ctx, c.Query, traceID)
		if err != nil || tr == nil {
			return nil, err
		}
		return tr.Common(), nil
	}
	return c
}

// StartOtelcol runs the OpenTelemetry Collector with the otlp (gRPC and
// HTTP) and zipkin receivers and the file exporter writing OTLP JSON
// lines to a file in a temporary directory.
func StartOtelcol(t testing.TB) *Collector {
	t.Helper()
	bin := collectorBinary(t, "MESHLENS_OTELCOL", "otelcol-meshlens-"+otelcolVersion)
	c := &Collector{Name: "otelcol"}
	var out string
	c.logs = startTool(t, c.Name, bin, func(dir string) string {
		grpcAddr, httpAddr, zipkinAddr := toolAddr(t), toolAddr(t), toolAddr(t)
		c.OTLPGRPC = grpcAddr
		c.OTLPHTTP = "http://" + httpAddr + "/v1/traces"
		c.Zipkin = "http://" + zipkinAddr + "/api/v2/spans"
		out = filepath.Join(dir, "traces.jsonl")
		return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
  zipkin:
    endpoint: %s
exporters:
  file:
    path: %s
    flush_interval: 50ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp, zipkin]
      exporters: [file]
`, grpcAddr, httpAddr, zipkinAddr, out)
	})
	c.Read = func(_ context.Context, traceID string) ([]CollectorSpan, error) {
		f, err := os.Open(out)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		spans, err := ReadOTLPJSONLines(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", out, err)
		}
		var mine []CollectorSpan
		for _, s := range spans {
			if s.TraceID == traceID {
				mine = append(mine, s)
			}
		}
		return mine, nil
	}
	return c
}

// JaegerResponse is the answer of Jaeger's GET /api/traces/{id}, which
// meshlens's trace store gives too.
type JaegerResponse struct {
	Data   []JaegerTraceData `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

// JaegerTraceData is one trace in Jaeger's JSON model.
type JaegerTraceData struct {
	TraceID   string                   `json:"traceID"`
	Spans     []JaegerSpan             `json:"spans"`
	Processes map[string]JaegerProcess `json:"processes"`
	Warnings  []string                 `json:"warnings"`
}

// JaegerSpan is a span in Jaeger's JSON model.
type JaegerSpan struct {
	TraceID       string            `json:"traceID"`
	SpanID        string            `json:"spanID"`
	OperationName string            `json:"operationName"`
	References    []JaegerReference `json:"references"`
	Flags         int               `json:"flags"`
	StartTime     int64             `json:"startTime"`
	Duration      int64             `json:"duration"`
	Tags          []JaegerKV        `json:"tags"`
	Logs          []struct {
		Timestamp int64      `json:"timestamp"`
		Fields    []JaegerKV `json:"fields"`
	} `json:"logs"`
	ProcessID string   `json:"processID"`
	Warnings  []string `json:"warnings"`
}

// JaegerReference is a span reference (CHILD_OF, FOLLOWS_FROM).
type JaegerReference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// JaegerProcess is a span's process: its service and resource tags.
type JaegerProcess struct {
	ServiceName string     `json:"serviceName"`
	Tags        []JaegerKV `json:"tags"`
}

// JaegerKV is a tag; Value is kept as its JSON text.
type JaegerKV struct {
	Key   string          `json:"key"`
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// Text is the tag's value as text.
func (kv JaegerKV) Text() string { return jsonText(kv.Value) }

// jsonText is a JSON scalar as text: a string unquoted, others as they
// are written.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// JaegerTrace gets one trace from a Jaeger query API at base (Jaeger's
// or meshlens's): nil, without error, when it is not (yet) there.
func JaegerTrace(ctx context.Context, base, traceID string) (*JaegerTraceData, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/traces/"+traceID, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/api/traces/%s: %s: %s", base, traceID, resp.Status, body)
	}
	var r JaegerResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("GET %s/api/traces/%s: %w", base, traceID, err)
	}
	if len(r.Data) == 0 {
		return nil, nil
	}
	return &r.Data[0], nil
}

// Common converts the trace to the common form.
func (tr *JaegerTraceData) Common() []CollectorSpan {
	var out []CollectorSpan
	for _, s := range tr.Spans {
		cs := CollectorSpan{
			TraceID: s.TraceID, SpanID: s.SpanID, Name: s.OperationName,
			Service:  tr.Processes[s.ProcessID].ServiceName,
			Start:    time.UnixMicro(s.StartTime),
			Duration: time.Duration(s.Duration) * time.Microsecond,
			Attrs:    map[string]string{},
		}
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" {
				cs.ParentID = r.SpanID
			}
		}
		for _, kv := range s.Tags {
			cs.Attrs[kv.Key] = kv.Text()
		}
		switch k := cs.Attrs["span.kind"]; k {
		case "server", "client":
			cs.Kind = k
		}
		out = append(out, cs)
	}
	return out
}

// otlpJSON is the part of OTLP's JSON encoding (TracesData, as the
// file exporter writes one per line) that the tests read. Ids are hex,
// 64-bit integers decimal strings, as OTLP/JSON has them.
type otlpJSON struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []otlpKV `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Spans []struct {
				TraceID           string          `json:"traceId"`
				SpanID            string          `json:"spanId"`
				ParentSpanID      string          `json:"parentSpanId"`
				Name              string          `json:"name"`
				Kind              int             `json:"kind"`
				StartTimeUnixNano json.RawMessage `json:"startTimeUnixNano"`
				EndTimeUnixNano   json.RawMessage `json:"endTimeUnixNano"`
				Attributes        []otlpKV        `json:"attributes"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type otlpKV struct {
	Key   string `json:"key"`
	Value struct {
		StringValue *string         `json:"stringValue"`
		IntValue    json.RawMessage `json:"intValue"`
		BoolValue   *bool           `json:"boolValue"`
		DoubleValue *float64        `json:"doubleValue"`
	} `json:"value"`
}

func (kv otlpKV) text() string {
	v := kv.Value
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		return jsonText(v.IntValue)
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	case v.DoubleValue != nil:
		return strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64)
	}
	return ""
}

func unixNanos(raw json.RawMessage) (time.Time, error) {
	n, err := strconv.ParseInt(jsonText(raw), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %s: %w", raw, err)
	}
	return time.Unix(0, n), nil
}

// ReadOTLPJSONLines reads the OpenTelemetry Collector file exporter's
// output: one OTLP JSON TracesData a line. A last line without its
// newline is still being written and is left out.
func ReadOTLPJSONLines(r io.Reader) ([]CollectorSpan, error) {
	var out []CollectorSpan
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var td otlpJSON
		if err := json.Unmarshal(line, &td); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		for _, rs := range td.ResourceSpans {
			service := ""
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.name" {
					service = kv.text()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					start, err := unixNanos(s.StartTimeUnixNano)
					if err != nil {
						return nil, fmt.Errorf("line %d: span %s: start: %w", n, s.SpanID, err)
					}
					end, err := unixNanos(s.EndTimeUnixNano)
					if err != nil {
						return nil, fmt.Errorf("line %d: span %s: end: %w", n, s.SpanID, err)
					}
					cs := CollectorSpan{
						TraceID: strings.ToLower(s.TraceID), SpanID: strings.ToLower(s.SpanID),
						ParentID: strings.ToLower(s.ParentSpanID), Name: s.Name, Service: service,
						Start: start, Duration: end.Sub(start), Attrs: map[string]string{},
					}
					switch s.Kind {
					case 2:
						cs.Kind = "server"
					case 3:
						cs.Kind = "client"
					}
					for _, kv := range s.Attributes {
						cs.Attrs[kv.Key] = kv.text()
					}
					out = append(out, cs)
				}
			}
		}
	}
}

// TestCollectorVersionsMatchInstallScript: the versions the tests look
// for are the ones the install script builds.
func TestCollectorVersionsMatchInstallScript(t *testing.T) {
	script, err := os.ReadFile("../../scripts/install-test-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"JAEGER_VERSION": jaegerVersion, "OTELCOL_VERSION": otelcolVersion} {
		m := regexp.MustCompile(`(?m)^` + name + `=(\S+)$`).FindSubmatch(script)
		if m == nil || string(m[1]) != want {
			t.Errorf("install-test-deps.sh sets %s to %q, the tests look for %q", name, m, want)
		}
	}
	manifest, err := os.ReadFile("../../test/collectors/otelcol-builder.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`gomod: \S+ (v\S+)`).FindAllSubmatch(manifest, -1) {
		if string(m[1]) != otelcolVersion {
			t.Errorf("collector manifest module at %s, want every one at %s", m[1], otelcolVersion)
		}
	}
}
