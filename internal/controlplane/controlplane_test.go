package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/registry"
	"github.com/meshlens/meshlens/internal/store"
)

func mustDecode(t testing.TB, doc string) []*v1alpha1.Resource {
	t.Helper()
	rs, err := v1alpha1.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

const nodes = `
kind: VirtualNode
mesh: m
name: v1
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: ns, serviceName: greeting, attributes: [{key: version, value: v1}]}}
---
kind: VirtualNode
mesh: m
name: dns
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: db.example}}
---
kind: VirtualNode
mesh: m
name: plain
spec:
  backends: [{virtualService: {virtualServiceName: x.m.local}}]
`

func TestEndpointSelection(t *testing.T) {
	snap := store.NewSnapshot(1, mustDecode(t, nodes))
	reg := registry.New(nil)
	for _, in := range []registry.Instance{
		{Mesh: "m", VirtualNode: "v1", ID: "a", Address: "10.0.0.1", Port: 9080, HealthStatus: registry.Healthy, NamespaceName: "ns", ServiceName: "greeting", Attributes: map[string]string{"version": "v1"}},
		{Mesh: "m", VirtualNode: "v2", ID: "b", Address: "10.0.0.2", Port: 9080, HealthStatus: registry.Healthy, NamespaceName: "ns", ServiceName: "greeting", Attributes: map[string]string{"version": "v2"}},
		{Mesh: "m", VirtualNode: "v1", ID: "c", Address: "10.0.0.3", Port: 9081, HealthStatus: registry.Unhealthy, NamespaceName: "ns", ServiceName: "greeting", Attributes: map[string]string{"version": "v1"}},
		{Mesh: "m", VirtualNode: "plain", ID: "d", Address: "10.0.0.4", Port: 1234, HealthStatus: registry.Healthy},
	} {
		if _, err := reg.Register(in); err != nil {
			t.Fatal(err)
		}
	}
	v := &endpointView{
		lookup:    snap,
		instances: reg.View(),
		dns:       map[string][]string{"db.example": {"192.0.2.1", "192.0.2.2"}},
	}
	got := v.Endpoints("m", "v1")
	if len(got) != 2 || got[0].Address != "10.0.0.1" || !got[0].Healthy || got[1].Address != "10.0.0.3" || got[1].Healthy {
		t.Errorf("awsCloudMap selection by attributes: %+v", got)
	}
	if got := v.Endpoints("m", "dns"); len(got) != 2 || got[0].Port != 8080 || got[1].Address != "192.0.2.2" {
		t.Errorf("dns: %+v", got)
	}
	if got := v.Endpoints("m", "plain"); len(got) != 1 || got[0].Port != 1234 {
		t.Errorf("no service discovery: %+v", got)
	}
	if got := v.Endpoints("m", "missing"); got != nil {
		t.Errorf("missing node: %+v", got)
	}
}

func TestResolverKeepsLastGoodAnswer(t *testing.T) {
	r := newResolver(slog.New(slog.NewTextHandler(io.Discard, nil)), 0, nil)
	fail := false
	r.lookup = func(_ context.Context, host string) ([]string, error) {
		if fail {
			return nil, errors.New("SERVFAIL")
		}
		return []string{"192.0.2.9", "192.0.2.1"}, nil
	}
	r.Resolve(context.Background(), []string{"db.example"})
	select {
	case <-r.Changed():
	default:
		t.Fatal("a new answer must signal a change")
	}
	if got := r.Snapshot()["db.example"]; len(got) != 2 || got[0] != "192.0.2.1" {
		t.Fatalf("answer %v (want sorted)", got)
	}
	fail = true
	r.Resolve(context.Background(), []string{"db.example"})
	if got := r.Snapshot()["db.example"]; len(got) != 2 {
		t.Fatalf("a failed lookup dropped the last good answer: %v", got)
	}
	select {
	case <-r.Changed():
		t.Fatal("keeping an answer is not a change")
	default:
	}
	r.Resolve(context.Background(), nil)
	if len(r.Snapshot()) != 0 {
		t.Fatal("hosts no longer named must be dropped")
	}
}

func newTestServer(t *testing.T, maxBody int64) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := New(ctx, Config{DataDir: t.TempDir(), APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", MaxBodyBytes: maxBody,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.apiLn.Close(); s.xdsLn.Close(); s.store.Close() })
	hs := httptest.NewServer(s.api())
	t.Cleanup(hs.Close)
	return hs
}

func apiErr(t *testing.T, resp *http.Response) restv1.Error {
	t.Helper()
	defer resp.Body.Close()
	var e restv1.Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestAPIErrors(t *testing.T) {
	hs := newTestServer(t, 1024)
	post := func(body string) *http.Response {
		resp, err := http.Post(hs.URL+"/v1/apply", "application/yaml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	cases := []struct {
		name   string
		resp   *http.Response
		status int
		code   string
		msg    string
	}{
		{"too large", post("kind: Mesh\nname: m\n# " + strings.Repeat("x", 2048) + "\n"), 413, restv1.CodeTooLarge, "larger than the limit of 1024 bytes"},
		{"empty", post("# nothing\n"), 400, restv1.CodeBadRequest, "no documents"},
		{"invalid", post("kind: Mesh\nname: m\nspec: {egressFilter: {type: SOME}}\n"), 400, restv1.CodeBadRequest, "spec.egressFilter.type"},
		{"missing mesh", post("kind: VirtualRouter\nmesh: nope\nname: r\nspec: {listeners: [{portMapping: {port: 1, protocol: http}}]}\n"), 400, restv1.CodeBadRequest, "nope"},
	}
	for _, c := range cases {
		e := apiErr(t, c.resp)
		if c.resp.StatusCode != c.status || e.Code != c.code || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s: %d %+v, want %d %s containing %q", c.name, c.resp.StatusCode, e, c.status, c.code, c.msg)
		}
	}
	for _, path := range []string{"/v1/meshes/m/pods", "/v1/nothing", "/v1/meshes/m/virtualNodes/x"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		if e := apiErr(t, resp); resp.StatusCode != 404 || e.Code != restv1.CodeNotFound {
			t.Errorf("GET %s: %d %+v", path, resp.StatusCode, e)
		}
	}
}

func TestAPIPutMustMatchPath(t *testing.T) {
	hs := newTestServer(t, 0)
	req, _ := http.NewRequest(http.MethodPut, hs.URL+"/v1/meshes/a", strings.NewReader("kind: Mesh\nname: b\n"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if e := apiErr(t, resp); resp.StatusCode != 400 || !strings.Contains(e.Message, "the document is Mesh b but the path names Mesh a") {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
	req, _ = http.NewRequest(http.MethodPut, hs.URL+"/v1/meshes/a", strings.NewReader("kind: Mesh\nname: a\n"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("PUT mesh a: %s", resp.Status)
	}
	// dryRun validates against the state without writing.
	resp, err = http.Post(hs.URL+"/v1/apply?dryRun=true", "application/yaml", strings.NewReader("kind: Mesh\nname: c\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, _ = http.Get(hs.URL + "/v1/meshes/c")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("dry run wrote mesh c: GET %s", resp.Status)
	}
}

func TestPickFamily(t *testing.T) {
	answer := []string{"192.0.2.1", "2001:db8::1", "192.0.2.2"}
	v4only := []string{"192.0.2.1"}
	cases := []struct {
		addrs []string
		pref  string
		want  []string
	}{
		{answer, "", answer},
		{answer, ipv4Only, []string{"192.0.2.1", "192.0.2.2"}},
		{answer, ipv6Only, []string{"2001:db8::1"}},
		{answer, ipv4Preferred, []string{"192.0.2.1", "192.0.2.2"}},
		{answer, ipv6Preferred, []string{"2001:db8::1"}},
		{v4only, ipv6Preferred, v4only},
		{v4only, ipv6Only, nil},
	}
	for _, c := range cases {
		if got := pickFamily(c.addrs, c.pref); !slices.Equal(got, c.want) {
			t.Errorf("pickFamily(%v, %q) = %v, want %v", c.addrs, c.pref, got, c.want)
		}
	}
	in := &registry.Instance{Address: "2001:db8::1", Attributes: map[string]string{registry.AttrIPv4: "10.0.0.1"}}
	for pref, want := range map[string]string{"": "2001:db8::1", ipv4Only: "10.0.0.1", ipv6Only: "2001:db8::1", ipv4Preferred: "10.0.0.1", ipv6Preferred: "2001:db8::1"} {
		if got := pickAddress(in, pref); got != want {
			t.Errorf("pickAddress(%q) = %q, want %q", pref, got, want)
		}
	}
	if got := pickAddress(&registry.Instance{Address: "10.0.0.1"}, ipv6Only); got != "" {
		t.Errorf("an IPv4-only instance under IPv6_ONLY: %q, want none", got)
	}
}
