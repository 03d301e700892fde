package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshlens/meshlens/internal/tracestore"
)

func otlpRequest(service string, traceByte, spanByte byte) *collectorpb.ExportTraceServiceRequest {
	tid := bytes.Repeat([]byte{traceByte}, 16)
	now := uint64(time.Now().UnixNano())
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: service}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
			TraceId: tid, SpanId: bytes.Repeat([]byte{spanByte}, 8), Name: "GET /", Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: now - 2e6, EndTimeUnixNano: now,
		}}}},
	}}}
}

func exportOTLP(ctx context.Context, addr string, req *collectorpb.ExportTraceServiceRequest) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	_, err = collectorpb.NewTraceServiceClient(cc).Export(ctx, req)
	return err
}

// jaegerGET reads one answer of the Jaeger query API.
func jaegerGET(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, v
}

// TestTraceStoreServed: the control plane takes OTLP on its xDS gRPC
// address and on its API's POST /v1/traces, and answers Jaeger's query
// API on its API address.
func TestTraceStoreServed(t *testing.T) {
	t.Parallel()
	cp := startCP(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := exportOTLP(ctx, cp.s.XDSAddr(), otlpRequest("gateway", 1, 1)); err != nil {
		t.Fatalf("OTLP/gRPC export on the xDS address: %v", err)
	}
	big := otlpRequest("gateway", 9, 9)
	big.ResourceSpans[0].ScopeSpans[0].Spans[0].Name = strings.Repeat("x", 5<<20)
	if err := exportOTLP(ctx, cp.s.XDSAddr(), big); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a 5 MiB OTLP/gRPC export: %v, want ResourceExhausted", err)
	}
	body, _ := proto.Marshal(otlpRequest("greeter", 2, 2))
	resp, err := http.Post("http://"+cp.s.APIAddr()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP/HTTP export: %d", resp.StatusCode)
	}
	api := "http://" + cp.s.APIAddr()
	_, v := jaegerGET(t, api+"/api/services")
	if got, _ := json.Marshal(v["data"]); string(got) != `["gateway","greeter"]` {
		t.Fatalf("services = %s", got)
	}
	code, v := jaegerGET(t, api+"/api/traces?service=greeter")
	data, _ := v["data"].([]any)
	if code != 200 || len(data) != 1 || data[0].(map[string]any)["traceID"] != "02020202020202020202020202020202" {
		t.Fatalf("search = %d %v", code, v)
	}
	if code, _ := jaegerGET(t, api+"/api/traces/0101010101010101"+"0101010101010101"); code != 200 {
		t.Fatalf("trace by id = %d", code)
	}
	resp, err = http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"meshlens_controlplane_tracestore_spans 2\n", "meshlens_controlplane_tracestore_spans_received_total 2\n",
		"meshlens_controlplane_tracestore_services 2\n", "meshlens_controlplane_tracestore_spans_evicted_total 0\n"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestOTLPDisabled: with OTLP off, neither receiver answers, and the
// query API still does (with nothing in it).
func TestOTLPDisabled(t *testing.T) {
	t.Parallel()
	cp := startCP(t, Config{DisableOTLP: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := exportOTLP(ctx, cp.s.XDSAddr(), otlpRequest("gateway", 1, 1))
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("OTLP/gRPC export with OTLP disabled: %v, want Unimplemented", err)
	}
	resp, err := http.Post("http://"+cp.s.APIAddr()+"/v1/traces", "application/x-protobuf", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("OTLP/HTTP export with OTLP disabled: %d, want 404", resp.StatusCode)
	}
	if code, v := jaegerGET(t, "http://"+cp.s.APIAddr()+"/api/services"); code != 200 || v["total"] != 0.0 {
		t.Fatalf("services = %d %v", code, v)
	}
	if got := cp.s.builtinCollector(); got != "" {
		t.Fatalf("builtin collector with OTLP disabled = %q", got)
	}
}

// TestBuiltinTracingCluster: a data plane of a mesh that configures no
// tracing gets the builtin provider's cluster, pointing at an address
// where the control plane takes OTLP exports.
func TestBuiltinTracingCluster(t *testing.T) {
	t.Parallel()
	// A removed cluster is kept for ClusterGrace (10 s by default), which
	// the end of this test waits out.
	cp := startCP(t, Config{ClusterGrace: 100 * time.Millisecond})
	cp.apply(t, "kind: Mesh\nname: demo\nspec: {}\n---\nkind: VirtualNode\nmesh: demo\nname: web\nspec:\n  listeners:\n    - portMapping: {port: 8080, protocol: http}\n  serviceDiscovery:\n    dns: {hostname: web.demo.local}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(cp.s.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "mesh/demo/virtualNode/web", Cluster: "test", UserAgentName: "envoy"}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	var addr string
	for addr == "" {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("no cluster %s: %v", "cds_tracing_meshlens", err)
		}
		for _, a := range resp.Resources {
			cl := &clusterv3.Cluster{}
			if a.UnmarshalTo(cl) != nil || cl.Name != "cds_tracing_meshlens" {
				continue
			}
			sa := cl.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			addr = net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
		}
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
			t.Fatal(err)
		}
	}
	if addr != cp.s.XDSAddr() {
		t.Fatalf("builtin tracing cluster reaches %s, want the xDS address %s", addr, cp.s.XDSAddr())
	}
	if err := exportOTLP(ctx, addr, otlpRequest("demo/web", 3, 3)); err != nil {
		t.Fatalf("export to the builtin cluster's address: %v", err)
	}
	if svcs := cp.s.traces.Services(); len(svcs) != 1 || svcs[0] != "demo/web" {
		t.Fatalf("services = %v", svcs)
	}

	// Turning tracing off in the mesh takes the cluster away.
	cp.apply(t, "kind: Mesh\nname: demo\nspec:\n  meshlens:\n    tracing: {provider: none}\n")
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("cluster %s still there after provider none: %v", "cds_tracing_meshlens", err)
		}
		found := false
		for _, a := range resp.Resources {
			cl := &clusterv3.Cluster{}
			found = found || a.UnmarshalTo(cl) == nil && cl.Name == "cds_tracing_meshlens"
		}
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
			t.Fatal(err)
		}
		if !found {
			return
		}
	}
}

// fixedListener is a listener that only reports an address.
type fixedListener struct {
	net.Listener
	addr net.Addr
}

func (f fixedListener) Addr() net.Addr { return f.addr }

// TestBuiltinCollectorAddress: proxies are given the xDS address, or the
// advertised one; never a wildcard they cannot dial.
func TestBuiltinCollectorAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, listen, advertise, want string
	}{
		{"loopback", "127.0.0.1:15010", "", "127.0.0.1:15010"},
		{"wildcard", "0.0.0.0:15010", "", ""},
		{"wildcard advertised", "0.0.0.0:15010", "cp.mesh.internal:15010", "cp.mesh.internal:15010"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.listen)
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{cfg: Config{OTLPAdvertiseAddr: tc.advertise}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), xdsLn: fixedListener{addr: addr}}
		if got := s.builtinCollector(); got != tc.want {
			t.Errorf("%s: builtin collector = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestBadAdvertiseAddr: a control plane refuses to start with an
// advertised OTLP address proxies could not dial.
func TestBadAdvertiseAddr(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"cp.internal", "cp.internal:0", ":4317"} {
		_, err := New(context.Background(), Config{DataDir: t.TempDir(), APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OTLPAdvertiseAddr: a})
		if err == nil || !strings.Contains(err.Error(), "otlp advertise addr: must be host:port") {
			t.Errorf("OTLPAdvertiseAddr %q: err = %v", a, err)
		}
	}
}

// TestTraceStoreDiskRetention: with a disk budget, spans stored by one
// control plane are answered by the next one on the same data dir.
func TestTraceStoreDiskRetention(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(check func(s *Server)) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := New(ctx, Config{DataDir: dir, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0",
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			TraceStore: tracestore.Options{MaxDiskBytes: 8 << 20}})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		check(s)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	run(func(s *Server) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := exportOTLP(ctx, s.XDSAddr(), otlpRequest("demo/web", 4, 4)); err != nil {
			t.Fatal(err)
		}
	})
	run(func(s *Server) {
		code, v := jaegerGET(t, "http://"+s.APIAddr()+"/api/traces/04040404040404040404040404040404")
		if data, _ := v["data"].([]any); code != 200 || len(data) != 1 {
			t.Fatalf("after a restart: %d %v", code, v)
		}
	})
}
