package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/export"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
	"github.com/meshlens/meshlens/internal/tracing/sampling"
	"github.com/meshlens/meshlens/internal/tracing/xrayschema"
)

// spanRecorder is a tracing.Exporter that keeps every span.
type spanRecorder struct {
	mu    sync.Mutex
	spans []tracing.SpanData
}

func (r *spanRecorder) Export(d tracing.SpanData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, d)
}

// meshTrace records one request through the mesh with real Tracers, the
// demo's first hops: the gateway's server span, its client span to the
// greeter virtual service, and greeter's server span under that client
// span, each with the mesh's attributes. Times are whole milliseconds
// (Zipkin and Jaeger keep microseconds) and nest. Each call is a new
// trace.
func meshTrace(t testing.TB) []tracing.SpanData {
	t.Helper()
	smp, err := sampling.New(sampling.Config{Percent: 100})
	if err != nil {
		t.Fatal(err)
	}
	rec := &spanRecorder{}
	gwTracer := tracing.New(tracing.Config{Sampler: smp, Exporters: []tracing.Exporter{rec},
		Resource: tracing.Resource{ServiceName: "gateway", Mesh: "demo", VirtualGateway: "gateway"}})
	greeterTracer := tracing.New(tracing.Config{Sampler: smp, Exporters: []tracing.Exporter{rec},
		Resource: tracing.Resource{ServiceName: "greeter", Mesh: "demo", VirtualNode: "greeter"}})

	t0 := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

	gw := gwTracer.Begin(propagation.SpanContext{}, "greeter-route", t0)
	if gw.Span == nil {
		t.Fatal("100% sampling did not sample")
	}
	gw.Span.SetHTTPRequest("GET", "/greet?name=ann", "curl/8.5")
	gw.Span.SetHTTPRoute("/greet")
	gw.Span.SetServerAddress("localhost", 8080)
	gw.Span.SetPeer(netip.MustParseAddrPort("127.0.0.1:50000"))
	gw.Span.SetVirtualService("greeter.demo.local")
	gw.Span.SetUpstreamCluster("cds_greeter")

	c := gw.Span.StartClient(1, ms(1))
	c.SetServerAddress("greeter.demo.local", 8080)
	c.SetPeer(netip.MustParseAddrPort("127.0.0.1:9080"))

	g := greeterTracer.Begin(c.Context(), "greet", ms(2))
	g.Span.SetHTTPRequest("GET", "/greet?name=ann", "curl/8.5")
	g.Span.SetHTTPRoute("/greet")
	g.Span.SetServerAddress("greeter.demo.local", 8080)
	g.Span.SetPeer(netip.MustParseAddrPort("127.0.0.1:41000"))
	g.Span.SetVirtualService("greeter.demo.local")
	g.Span.SetAttr(tracing.String("meshlens.test", "child"))
	g.Span.SetStatusCode(200)
	g.Span.End(ms(8))

	c.SetStatusCode(200)
	c.End(ms(9))
	gw.Span.SetStatusCode(200)
	gw.Span.End(ms(10))

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.spans) != 3 {
		t.Fatalf("recorded %d spans, want 3", len(rec.spans))
	}
	return append([]tracing.SpanData(nil), rec.spans...)
}

func traceIDHex(spans []tracing.SpanData) string { return hex.EncodeToString(spans[0].TraceID[:]) }

// wantTree is the common form of spans as the tracer made them.
func wantTree(spans []tracing.SpanData) []CollectorSpan {
	var out []CollectorSpan
	for i := range spans {
		d := &spans[i]
		cs := CollectorSpan{
			TraceID: hex.EncodeToString(d.TraceID[:]), SpanID: hex.EncodeToString(d.SpanID[:]),
			Name: d.DisplayName(), Kind: d.Kind.String(), Service: d.Resource.ServiceName,
			Start: d.Start, Duration: d.End.Sub(d.Start), Attrs: map[string]string{},
		}
		if d.ParentID != [8]byte{} {
			cs.ParentID = hex.EncodeToString(d.ParentID[:])
		}
		for _, a := range d.Attributes(nil) {
			cs.Attrs[a.Key] = a.Value()
		}
		out = append(out, cs)
	}
	sortSpans(out)
	return out
}

// compareTrees checks that a collector stored the tree that was sent:
// the same spans with the same trace, parent and span ids, names, kinds,
// services, start times and durations, every attribute sent (collectors
// add their own), and children inside their parents' time.
func compareTrees(t testing.TB, got, want []CollectorSpan) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("stored %d spans, sent %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	byID := map[string]CollectorSpan{}
	for _, s := range got {
		byID[s.SpanID] = s
	}
	for _, w := range want {
		g, ok := byID[w.SpanID]
		if !ok {
			t.Errorf("span %s (%s) not stored; stored %+v", w.SpanID, w.Name, got)
			continue
		}
		if g.TraceID != w.TraceID || g.ParentID != w.ParentID || g.Name != w.Name || g.Kind != w.Kind || g.Service != w.Service {
			t.Errorf("span %s: stored trace %s parent %q name %q kind %q service %q, sent trace %s parent %q name %q kind %q service %q",
				w.SpanID, g.TraceID, g.ParentID, g.Name, g.Kind, g.Service, w.TraceID, w.ParentID, w.Name, w.Kind, w.Service)
		}
		if !g.Start.Equal(w.Start) || g.Duration != w.Duration {
			t.Errorf("span %s (%s): stored start %s duration %s, sent %s %s", w.SpanID, w.Name, g.Start, g.Duration, w.Start, w.Duration)
		}
		for k, v := range w.Attrs {
			if g.Attrs[k] != v {
				t.Errorf("span %s (%s): attribute %s stored %q, sent %q", w.SpanID, w.Name, k, g.Attrs[k], v)
			}
		}
	}
	for _, s := range got {
		p, ok := byID[s.ParentID]
		if s.ParentID == "" || !ok {
			continue
		}
		if s.Start.Before(p.Start) || s.Start.Add(s.Duration).After(p.Start.Add(p.Duration)) {
			t.Errorf("span %s (%s) [%s +%s] is not inside its parent %s (%s) [%s +%s]",
				s.SpanID, s.Name, s.Start, s.Duration, p.SpanID, p.Name, p.Start, p.Duration)
		}
	}
}

type spanCounter struct{ atomic.Uint64 }

func (c *spanCounter) Add(n uint64) { c.Uint64.Add(n) }

// spanExporter is what every exporter of internal/tracing/export is.
type spanExporter interface {
	Export(tracing.SpanData)
	Shutdown(context.Context) error
}

// exportOptions are fast-flushing options whose counters the caller
// reads after exportAll.
func exportOptions(sent, failed *spanCounter) export.Options {
	return export.Options{FlushInterval: 10 * time.Millisecond, MaxRetries: 5,
		Stats: export.Stats{Sent: sent, Dropped: failed, Failed: failed}}
}

// exportAll hands spans to exp and shuts it down, which sends them.
func exportAll(t testing.TB, exp spanExporter, spans []tracing.SpanData) {
	t.Helper()
	for _, d := range spans {
		exp.Export(d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatalf("exporter shutdown: %v", err)
	}
}

// newCollectorExporter makes an exporter of protocol ("otlp-grpc",
// "otlp-http" or "zipkin") to c.
func newCollectorExporter(t testing.TB, protocol string, c *Collector, o export.Options) spanExporter {
	t.Helper()
	var exp spanExporter
	var err error
	switch protocol {
	case "otlp-grpc":
		exp, err = export.NewOTLPGRPC(export.OTLPGRPCConfig{Endpoint: c.OTLPGRPC, Options: o})
	case "otlp-http":
		exp, err = export.NewOTLPHTTP(export.OTLPHTTPConfig{URL: c.OTLPHTTP, Options: o})
	case "zipkin":
		exp, err = export.NewZipkin(export.ZipkinConfig{URL: c.Zipkin, Options: o})
	default:
		t.Fatalf("no exporter %q", protocol)
	}
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

// TestExportToRealCollectors: a gateway → greeter span tree exported with
// each of meshlens's OTLP/gRPC, OTLP/HTTP and Zipkin exporters to a real
// Jaeger v2 and a real OpenTelemetry Collector is stored as the same
// tree: ids, parents, names, kinds, services, timings and attributes.
func TestExportToRealCollectors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *Collector
	}{
		{"jaeger", StartJaeger},
		{"otelcol", StartOtelcol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := tc.start(t)
			for _, protocol := range []string{"otlp-grpc", "otlp-http", "zipkin"} {
				t.Run(protocol, func(t *testing.T) {
					spans := meshTrace(t)
					var sent, failed spanCounter
					exportAll(t, newCollectorExporter(t, protocol, c, exportOptions(&sent, &failed)), spans)
					if sent.Load() != 3 || failed.Load() != 0 {
						t.Fatalf("%s exporter: sent %d, failed or dropped %d; want 3 sent", protocol, sent.Load(), failed.Load())
					}
					want := wantTree(spans)
					if protocol == "zipkin" {
						// Zipkin's model lower-cases span names.
						for i := range want {
							want[i].Name = strings.ToLower(want[i].Name)
						}
					}
					got := c.WaitTrace(t, traceIDHex(spans), 3, 30*time.Second)
					compareTrees(t, got, want)
					if g, w := Outline(BuildTree(got)), Outline(BuildTree(want)); g != w {
						t.Errorf("stored tree:\n%swant:\n%s", g, w)
					}
				})
			}
		})
	}
}

// XRayDaemon is a stand-in X-Ray daemon on UDP loopback that checks
// every datagram against the segment document schema.
type XRayDaemon struct {
	// Addr is the daemon's host:port.
	Addr string
	mu   sync.Mutex
	docs []map[string]any
	errs []error
}

// StartXRayDaemon listens on a loopback UDP port until the test ends.
func StartXRayDaemon(t testing.TB) *XRayDaemon {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &XRayDaemon{Addr: pc.LocalAddr().String()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2*xrayschema.MaxDatagram)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			doc, err := xrayschema.Datagram(buf[:n])
			d.mu.Lock()
			if err != nil {
				d.errs = append(d.errs, fmt.Errorf("datagram %q: %w", buf[:n], err))
			}
			if doc != nil {
				d.docs = append(d.docs, doc)
			}
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return d
}

// Wait waits for n segment documents of trace (X-Ray's 1-… form) and
// returns them; every document that broke the schema fails the test.
func (d *XRayDaemon) Wait(t testing.TB, trace string, n int, timeout time.Duration) []map[string]any {
	t.Helper()
	var docs []map[string]any
	eventually(t, timeout, fmt.Sprintf("X-Ray daemon gets %d segments of %s", n, trace), func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		docs = docs[:0]
		for _, doc := range d.docs {
			if doc["trace_id"] == trace {
				docs = append(docs, doc)
			}
		}
		if len(docs) < n {
			return fmt.Errorf("%d so far", len(docs))
		}
		return nil
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, err := range d.errs {
		t.Errorf("X-Ray segment document: %v", err)
	}
	return docs
}

// docField reads a nested field of a decoded document, "a.b.c".
func docField(doc map[string]any, p string) any {
	var v any = doc
	for _, k := range strings.Split(p, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestXRayDaemonSegments: the X-Ray exporter sends the gateway → greeter
// tree as three documents a test daemon finds valid against the segment
// document schema: the gateway's segment, its remote subsegment for the
// call, and greeter's segment whose parent is that subsegment, with the
// trace id in X-Ray's form, http request and response, App Mesh's aws
// fields and the mesh's annotations.
func TestXRayDaemonSegments(t *testing.T) {
	t.Parallel()
	daemon := StartXRayDaemon(t)
	spans := meshTrace(t)
	var sent, failed spanCounter
	exp, err := export.NewXRay(export.XRayConfig{Address: daemon.Addr, Options: exportOptions(&sent, &failed)})
	if err != nil {
		t.Fatal(err)
	}
	exportAll(t, exp, spans)
	trace := propagation.FormatXRayTraceID(spans[0].TraceID)
	docs := daemon.Wait(t, trace, 3, 30*time.Second)
	if sent.Load() != 3 || failed.Load() != 0 || len(docs) != 3 {
		t.Fatalf("sent %d, failed %d, daemon got %d documents: %v", sent.Load(), failed.Load(), len(docs), docs)
	}
	byName := map[string]map[string]any{}
	for _, d := range docs {
		byName[d["name"].(string)] = d
	}
	gw, call, greeter := byName["demo/gateway"], byName["greeter.demo.local"], byName["demo/greeter"]
	if gw == nil || call == nil || greeter == nil {
		t.Fatalf("segments named %v, want demo/gateway, greeter.demo.local and demo/greeter", docs)
	}
	for _, c := range []struct {
		doc   map[string]any
		field string
		want  any
	}{
		{gw, "parent_id", nil},
		{gw, "type", nil},
		{gw, "origin", "AWS::AppMesh::Proxy"},
		{gw, "aws.app_mesh.mesh_name", "demo"},
		{gw, "aws.app_mesh.virtual_gateway_name", "gateway"},
		{gw, "http.request.method", "GET"},
		{gw, "http.request.client_ip", "127.0.0.1"},
		{gw, "http.response.status", float64(200)},
		{gw, "annotations.meshlens_route", "greeter-route"},
		{gw, "annotations.meshlens_virtual_service", "greeter.demo.local"},
		{call, "type", "subsegment"},
		{call, "namespace", "remote"},
		{call, "parent_id", gw["id"]},
		{call, "http.request.traced", true},
		{call, "http.response.status", float64(200)},
		{call, "annotations.meshlens_attempt", float64(1)},
		{greeter, "parent_id", call["id"]},
		{greeter, "type", nil},
		{greeter, "aws.app_mesh.virtual_node_name", "greeter"},
		{greeter, "http.request.url", "http://greeter.demo.local/greet"},
		{greeter, "annotations.meshlens_route", "greet"},
	} {
		if got := docField(c.doc, c.field); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %s = %v, want %v", c.doc["name"], c.field, got, c.want)
		}
	}
	within := func(child, parent map[string]any) {
		if child["start_time"].(float64) < parent["start_time"].(float64) || child["end_time"].(float64) > parent["end_time"].(float64) {
			t.Errorf("%s [%v, %v] not within %s [%v, %v]", child["name"], child["start_time"], child["end_time"],
				parent["name"], parent["start_time"], parent["end_time"])
		}
	}
	within(call, gw)
	within(greeter, call)
}

// normalJaeger is a Jaeger trace with the parts whose order or naming
// the API leaves free made canonical: spans by id, each with its process
// inline instead of a process id, tags, references and process tags
// sorted.
func normalJaeger(tr *JaegerTraceData) []map[string]any {
	var out []map[string]any
	sortKV := func(kvs []JaegerKV) []string {
		var s []string
		for _, kv := range kvs {
			s = append(s, kv.Key+"("+kv.Type+")="+string(kv.Value))
		}
		sort.Strings(s)
		return s
	}
	for _, s := range tr.Spans {
		refs := append([]JaegerReference(nil), s.References...)
		sort.Slice(refs, func(i, j int) bool { return refs[i].RefType+refs[i].SpanID < refs[j].RefType+refs[j].SpanID })
		var logs []string
		for _, l := range s.Logs {
			logs = append(logs, fmt.Sprint(l.Timestamp, sortKV(l.Fields)))
		}
		sort.Strings(logs)
		p := tr.Processes[s.ProcessID]
		out = append(out, map[string]any{
			"traceID": s.TraceID, "spanID": s.SpanID, "operationName": s.OperationName,
			"references": refs, "flags": s.Flags, "startTime": s.StartTime, "duration": s.Duration,
			"tags": sortKV(s.Tags), "logs": logs, "warnings": len(s.Warnings),
			"process": map[string]any{"serviceName": p.ServiceName, "tags": sortKV(p.Tags)},
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["spanID"].(string) < out[j]["spanID"].(string) })
	return out
}

// TestTraceStoreAnswersAsJaeger: the same spans exported over OTLP/gRPC
// to meshlens's built-in trace store and to a real Jaeger v2 give the
// same answer from GET /api/traces/{id}, modulo the order of spans, tags,
// references and processes and the naming of process ids.
func TestTraceStoreAnswersAsJaeger(t *testing.T) {
	t.Parallel()
	j := StartJaeger(t)
	s := startServer(t, t.TempDir())
	spans := meshTrace(t)
	for _, endpoint := range []string{j.OTLPGRPC, s.xds} {
		var sent, failed spanCounter
		exp, err := export.NewOTLPGRPC(export.OTLPGRPCConfig{Endpoint: endpoint, Options: exportOptions(&sent, &failed)})
		if err != nil {
			t.Fatal(err)
		}
		exportAll(t, exp, spans)
		if sent.Load() != 3 || failed.Load() != 0 {
			t.Fatalf("export to %s: sent %d, failed %d", endpoint, sent.Load(), failed.Load())
		}
	}
	id := traceIDHex(spans)
	j.WaitTrace(t, id, 3, 30*time.Second)
	var fromJaeger, fromMeshlens *JaegerTraceData
	eventually(t, 30*time.Second, "both answer /api/traces/"+id, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		if fromJaeger, err = JaegerTrace(ctx, j.Query, id); err != nil {
			return err
		}
		if fromMeshlens, err = JaegerTrace(ctx, s.URL(), id); err != nil {
			return err
		}
		if fromJaeger == nil || fromMeshlens == nil || len(fromMeshlens.Spans) < 3 {
			return fmt.Errorf("not yet: jaeger %v meshlens %v", fromJaeger != nil, fromMeshlens != nil)
		}
		return nil
	})
	if fromJaeger.TraceID != fromMeshlens.TraceID {
		t.Errorf("traceID: jaeger %q, meshlens %q", fromJaeger.TraceID, fromMeshlens.TraceID)
	}
	want, got := normalJaeger(fromJaeger), normalJaeger(fromMeshlens)
	if len(want) != len(got) {
		t.Fatalf("jaeger has %d spans, meshlens %d", len(want), len(got))
	}
	for i := range want {
		for k, w := range want[i] {
			if g := got[i][k]; !reflect.DeepEqual(g, w) {
				wj, _ := json.Marshal(w)
				gj, _ := json.Marshal(g)
				t.Errorf("span %s %s:\n  jaeger   %s\n  meshlens %s", want[i]["spanID"], k, wj, gj)
			}
		}
	}
}

// TestBuildTree: the common tree puts each span under its parent in
// start order, whatever order the store answered in, and a span whose
// parent was not stored at the top.
func TestBuildTree(t *testing.T) {
	t.Parallel()
	spans := wantTree(meshTrace(t))
	want := "gateway server GET /greet\n  gateway client GET /greet\n    greeter server GET /greet\n"
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}} {
		var in []CollectorSpan
		for _, i := range order {
			in = append(in, spans[i])
		}
		if got := Outline(BuildTree(in)); got != want {
			t.Errorf("order %v:\n%swant:\n%s", order, got, want)
		}
	}
	orphan := spans[2]
	if got := Outline(BuildTree([]CollectorSpan{orphan})); got != "greeter server GET /greet\n" {
		t.Errorf("orphan: %q", got)
	}
}
