package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/metricshistory"
)

const meshYAML = `kind: VirtualNode
mesh: demo
name: front
spec:
  backends: [{virtualService: {virtualServiceName: svc.demo.local}}, {virtualService: {virtualServiceName: idle.demo.local}}]
  listeners: [{portMapping: {port: 8080, protocol: http}, outlierDetection: {baseEjectionDuration: {unit: s, value: 10}, interval: {unit: s, value: 10}, maxEjectionPercent: 50, maxServerErrors: 5}}]
---
kind: VirtualNode
mesh: demo
name: v1
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: VirtualNode
mesh: demo
name: v2
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: VirtualRouter
mesh: demo
name: svc
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
kind: Route
mesh: demo
virtualRouter: svc
name: all
spec:
  httpRoute:
    match: {prefix: /}
    action: {weightedTargets: [{virtualNode: v1, weight: 3}, {virtualNode: v2, weight: 1}]}
    retryPolicy: {maxRetries: 2, perRetryTimeout: {unit: ms, value: 500}, httpRetryEvents: [server-error]}
---
kind: VirtualService
mesh: demo
name: svc.demo.local
spec: {provider: {virtualRouter: {virtualRouterName: svc}}}
---
kind: VirtualService
mesh: demo
name: idle.demo.local
spec: {provider: {virtualNode: {virtualNodeName: v1}}}
`

type lookup []*v1alpha1.Resource

func (l lookup) Get(k v1alpha1.Key) *v1alpha1.Resource {
	for _, r := range l {
		if r.Key() == k {
			return r
		}
	}
	return nil
}

func (l lookup) List(kind v1alpha1.Kind, mesh, parent string) []*v1alpha1.Resource {
	var out []*v1alpha1.Resource
	for _, r := range l {
		if r.Kind == kind && (mesh == "" || r.Mesh == mesh) && (parent == "" || r.VirtualRouter == parent || r.VirtualGateway == parent) {
			out = append(out, r)
		}
	}
	return out
}

func testHandler(t testing.TB, now time.Time) (*Handler, *metricshistory.Store) {
	t.Helper()
	res, err := v1alpha1.Decode([]byte(meshYAML))
	if err != nil {
		t.Fatal(err)
	}
	hist := metricshistory.New(metricshistory.Options{Now: func() time.Time { return now }})
	return &Handler{Resources: func() v1alpha1.Lookup { return lookup(res) }, Metrics: hist}, hist
}

func src(workload, svc, node string) metricshistory.Labels {
	return metricshistory.Labels{Reporter: "source", SourceMesh: "demo", SourceKind: "virtualNode", SourceWorkload: workload,
		DestinationMesh: "demo", DestinationService: svc, DestinationWorkload: node, Route: "all", Protocol: "http"}
}

// The graph puts observed traffic beside the configuration: the split
// against the router's weights, idle backends, unknown callers, badges.
func TestGraph(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h, hist := testHandler(t, now)
	hist.Add(now, []metricshistory.Sample{
		{Labels: src("front", "svc.demo.local", "v1"), Requests: 500, Errors: 50},
		{Labels: src("front", "svc.demo.local", "v2"), Requests: 100},
		{Labels: metricshistory.Labels{Reporter: "destination", SourceMesh: "unknown", SourceKind: "unknown", SourceWorkload: "unknown",
			DestinationMesh: "demo", DestinationService: "svc.demo.local", DestinationWorkload: "v1", Route: "unknown", Protocol: "http", Security: "none"}, Requests: 60},
		{Labels: metricshistory.Labels{Reporter: "destination", SourceMesh: "demo", SourceKind: "virtualNode", SourceWorkload: "front",
			DestinationMesh: "demo", DestinationService: "svc.demo.local", DestinationWorkload: "v1", Route: "all", Protocol: "http", Security: "mutual_tls"}, Requests: 500},
	})
	g, err := h.Graph(context.Background(), "demo", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	edges := map[string]Edge{}
	for _, e := range g.Edges {
		edges[e.ID] = e
	}
	busy := edges["demo/virtualNode/front->demo/virtualService/svc.demo.local"]
	if busy.RPS != 10 || busy.ErrorRatio != 50.0/600 || busy.Health != "failing" || busy.Idle {
		t.Errorf("busy edge = %+v, want 600 requests in 60 s, 8%% errors, failing", busy)
	}
	if len(busy.Split) != 2 || busy.Split[0].VirtualNode != "v1" || *busy.Split[0].ConfiguredShare != 0.75 ||
		busy.Split[0].ObservedShare != 500.0/600 || *busy.Split[1].ConfiguredShare != 0.25 {
		t.Errorf("split = %+v, want v1 0.83 observed / 0.75 configured, v2 / 0.25", busy.Split)
	}
	if busy.MTLS == nil || !*busy.MTLS {
		t.Errorf("front -> svc mtls = %v, want true (the called side verified every caller)", busy.MTLS)
	}
	idle := edges["demo/virtualNode/front->demo/virtualService/idle.demo.local"]
	if !idle.Idle || idle.Health != "idle" {
		t.Errorf("configured backend without traffic = %+v, want idle", idle)
	}
	unk := edges["unknown->demo/virtualService/svc.demo.local"]
	if !unk.UnknownSource || unk.RPS != 1 || len(unk.Split) != 0 || unk.MTLS == nil || *unk.MTLS {
		t.Errorf("unknown-source edge = %+v, want 1 rps, no split", unk)
	}
	nodes := map[string]Node{}
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	svc := nodes["demo/virtualService/svc.demo.local"]
	if strings.Join(svc.Versions, ",") != "v1,v2" || svc.Router != "svc" || len(svc.Routes) != 1 || strings.Join(svc.Badges, ",") != "retries" {
		t.Errorf("service node = %+v", svc)
	}
	if b := nodes["demo/virtualNode/front"].Badges; strings.Join(b, ",") != "outlierDetection" {
		t.Errorf("front badges = %v", b)
	}

	// Over HTTP: idle quantiles are null, not NaN (which JSON cannot say).
	srv := httptest.NewServer(mux(h))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/console/graph?mesh=demo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw struct{ Edges []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %v", resp.Status, err)
	}
	for _, e := range raw.Edges {
		if e["idle"] == true && e["p99"] != nil {
			t.Errorf("idle edge p99 = %v, want null", e["p99"])
		}
	}
}

func mux(h *Handler) *http.ServeMux {
	m := http.NewServeMux()
	h.Register(m)
	return m
}

// graph/stream pushes graphs as server-sent events, and turns away
// clients beyond the bound.
func TestGraphStream(t *testing.T) {
	h, _ := testHandler(t, time.Now())
	h.Interval = 50 * time.Millisecond
	srv := httptest.NewServer(mux(h))
	defer srv.Close()
	open := func() *http.Response {
		resp, err := http.Get(srv.URL + "/v1/console/graph/stream")
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var held []*http.Response
	defer func() {
		for _, r := range held {
			r.Body.Close()
		}
	}()
	first := open()
	held = append(held, first)
	if ct := first.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(first.Body)
	sc.Buffer(nil, 1<<20)
	var graphs int
	for graphs < 2 && sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var g Graph
			if err := json.Unmarshal([]byte(line), &g); err != nil {
				t.Fatalf("event data: %v", err)
			}
			graphs++
		}
	}
	if graphs < 2 {
		t.Fatalf("%d graphs pushed: %v", graphs, sc.Err())
	}
	for range MaxStreamClients - 1 {
		held = append(held, open())
	}
	over := open()
	held = append(held, over)
	if over.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("client %d: %s, want 503", MaxStreamClients+1, over.Status)
	}
}

// BenchmarkGraph builds the graph of a synthetic mesh of 200 nodes and
// 1000 edges from a full history.
func BenchmarkGraph(b *testing.B) {
	now := time.Unix(1_700_000_000, 0)
	h, hist := testHandler(b, now)
	fillSynthetic(hist, now, 200, 1000, 6)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Graph(context.Background(), "", time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// An instance's summary is the worst of its callers' views: one caller's
// ejection marks it ejected though another sees it healthy.
func TestInstancesMergeCallersViews(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ep := func(addr, hc string, ejected bool) metricshistory.EndpointView {
		return metricshistory.EndpointView{Mesh: "demo", VirtualNode: "v1", Cluster: "cds_v1", Address: addr, HealthCheck: hc, Ejected: ejected, EDSHealthy: true}
	}
	reports := []metricshistory.NodeReport{
		{ID: "mesh/demo/virtualNode/a", Connected: true, LastReport: now, Endpoints: []metricshistory.EndpointView{ep("10.0.0.1:80", "healthy", false), ep("10.0.0.2:80", "healthy", false)}},
		{ID: "mesh/demo/virtualNode/b", Connected: true, LastReport: now, Endpoints: []metricshistory.EndpointView{ep("10.0.0.1:80", "healthy", true), ep("10.0.0.2:80", "failed", false),
			{Mesh: "demo", VirtualNode: "other", Address: "10.0.0.9:80", HealthCheck: "none", EDSHealthy: true}}},
	}
	got := Instances(reports, "demo", "v1")
	if len(got) != 2 {
		t.Fatalf("instances %+v, want the two of v1", got)
	}
	if got[0].Address != "10.0.0.1:80" || got[0].Health != "ejected" || len(got[0].Observers) != 2 || got[0].Observers[1].Proxy != "mesh/demo/virtualNode/b" || !got[0].Observers[1].Ejected {
		t.Errorf("first instance %+v, want ejected by b", got[0])
	}
	if got[1].Health != "unhealthy" {
		t.Errorf("second instance %+v, want unhealthy (b's health check fails)", got[1])
	}
}
