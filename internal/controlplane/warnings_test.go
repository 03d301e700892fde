package controlplane

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/store"
)

// acmMesh has a node whose backend trusts ACM Private CA and a listener
// with an ACM certificate: both are kept, neither can be enforced.
const acmMesh = `
kind: Mesh
name: m
---
kind: VirtualNode
mesh: m
name: app
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: app.example}}
---
kind: VirtualService
mesh: m
name: app.m.local
spec: {provider: {virtualNode: {virtualNodeName: app}}}
---
kind: VirtualNode
mesh: m
name: client
spec:
  listeners:
    - portMapping: {port: 9090, protocol: http}
      tls:
        mode: STRICT
        certificate: {acm: {certificateArn: "arn:aws:acm:us-west-2:123456789012:certificate/abc"}}
  serviceDiscovery: {dns: {hostname: client.example}}
  backends:
    - virtualService:
        virtualServiceName: app.m.local
        clientPolicy:
          tls:
            validation:
              trust: {acm: {certificateAuthorityArns: ["arn:aws:acm-pca:us-west-2:123456789012:certificate-authority/ca"]}}
`

const (
	acmTrustWarning = "VirtualNode m/client: spec.backends[0].virtualService.clientPolicy.tls.validation.trust.acm: ACM Private CA is not available in meshlens; traffic to app.m.local is refused rather than sent in plaintext"
	acmCertWarning  = "VirtualNode m/client: spec.listeners[0].tls.certificate.acm: ACM certificates are not available without the mesh CA (meshlens server --ca-key-file); the listener on port 9090 is not served rather than served without TLS"
)

// TestAPIWarnings: what cannot be enforced comes back with the apply (and
// its dry run) in warnings, on GET and list in Warning headers, and in
// describe, without any data plane connected.
func TestAPIWarnings(t *testing.T) {
	hs := newTestServer(t, 0)
	want := []string{acmTrustWarning, acmCertWarning}
	apply := func(query string) (restv1.ApplyResponse, http.Header) {
		t.Helper()
		resp, err := http.Post(hs.URL+"/v1/apply"+query, "application/yaml", strings.NewReader(acmMesh))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out restv1.ApplyResponse
		if resp.StatusCode != 200 {
			t.Fatalf("apply%s: %s %+v", query, resp.Status, apiErr(t, resp))
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out, resp.Header
	}
	headerWarnings := func(h http.Header) []string {
		var out []string
		for _, v := range h.Values("Warning") {
			msg, ok := restv1.ParseWarning(v)
			if !ok {
				t.Fatalf("malformed Warning header %q", v)
			}
			out = append(out, msg)
		}
		return out
	}
	check := func(what string, got []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s warnings =\n%q\nwant\n%q", what, got, want)
		}
	}

	dry, h := apply("?dryRun=true")
	check("dry run", dry.Warnings)
	check("dry run headers", headerWarnings(h))
	out, h := apply("")
	check("apply", out.Warnings)
	check("apply headers", headerWarnings(h))

	get := func(path string) (*http.Response, http.Header) {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return resp, resp.Header
	}
	resp, h := get("/v1/meshes/m/virtualNodes/client")
	resp.Body.Close()
	check("GET", headerWarnings(h))
	resp, h = get("/v1/meshes/m/virtualNodes")
	resp.Body.Close()
	check("list", headerWarnings(h))
	resp, h = get("/v1/meshes/m/virtualNodes/app")
	resp.Body.Close()
	if w := headerWarnings(h); len(w) != 0 {
		t.Errorf("GET of a node without warnings: %q", w)
	}

	resp, _ = get("/v1/meshes/m/virtualNodes/client?view=describe")
	var d restv1.Description
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var described []string
	for _, w := range d.Warnings {
		described = append(described, "VirtualNode m/client: "+w)
	}
	check("describe", described)

	// PUT answers as apply does.
	client := acmMesh[strings.Index(acmMesh, "kind: VirtualNode\nmesh: m\nname: client"):]
	req, _ := http.NewRequest(http.MethodPut, hs.URL+"/v1/meshes/m/virtualNodes/client", strings.NewReader(client))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var put restv1.ApplyResponse
	if err := json.NewDecoder(resp.Body).Decode(&put); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check("PUT", put.Warnings)

	// Applying the same documents again still warns: the warnings are
	// about the resources, not about the change.
	again, _ := apply("")
	check("apply again", again.Warnings)
}

// TestApplyWarnsAboutOtherResources: an apply answers with the warnings
// it caused on resources it did not name.
func TestApplyWarnsAboutOtherResources(t *testing.T) {
	hs := newTestServer(t, 0)
	post := func(body string) restv1.ApplyResponse {
		t.Helper()
		resp, err := http.Post(hs.URL+"/v1/apply", "application/yaml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("apply: %s %+v", resp.Status, apiErr(t, resp))
		}
		var out restv1.ApplyResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	post(`
kind: Mesh
name: m
---
kind: VirtualNode
mesh: m
name: app
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: app.example}}
---
kind: VirtualNode
mesh: m
name: bare
spec: {}
---
kind: VirtualService
mesh: m
name: app.m.local
spec: {provider: {virtualNode: {virtualNodeName: app}}}
---
kind: VirtualNode
mesh: m
name: client
spec:
  backends: [{virtualService: {virtualServiceName: app.m.local}}]
`)
	// The service's new provider has no listener: the node that calls it
	// can no longer reach it, and the apply says so though it did not
	// name that node.
	out := post(`
kind: VirtualService
mesh: m
name: app.m.local
spec: {provider: {virtualNode: {virtualNodeName: bare}}}
`)
	want := []string{"VirtualNode m/client: spec.backends[0].virtualService.virtualServiceName: virtual service app.m.local has no provider listener: not routed"}
	if !slices.Equal(out.Warnings, want) {
		t.Errorf("warnings = %q, want %q", out.Warnings, want)
	}
}

// TestApplyWarningsAfterPush: an apply computes its warnings only after
// the xDS server has pushed the state the apply made and its streams went
// quiet (the data plane got the push and ACKed it), so that translating
// the whole mesh for them does not hold up the push; the apply still
// answers with them.
func TestApplyWarningsAfterPush(t *testing.T) {
	var mu sync.Mutex
	var pushedAt []uint64   // the pushed store revision when each apply's warnings started
	var started []time.Time // when each apply's warnings started
	var cp *runningCP
	cp = startCP(t, Config{}, func(s *Server) {
		// A quiet window well over a loaded machine's scheduling delays,
		// so that "the node ACKed before the warnings" holds under -race
		// and parallel tests too (the production window is 25 ms).
		s.streamsQuiet = 500 * time.Millisecond
		s.beforeApplyWarnings = func() {
			l, _ := s.xds.Pushed()
			var rev uint64
			if p, ok := l.(*store.Snapshot); ok {
				rev = p.Revision()
			}
			mu.Lock()
			pushedAt = append(pushedAt, rev)
			started = append(started, time.Now())
			mu.Unlock()
		}
	})
	c := dialEDS(t, cp.s.XDSAddr(), "mesh/m/virtualNode/client")
	// plain calls app without a client policy: moving app's port changes
	// its cluster, so its stream gets a response to each apply.
	plainDoc := acmMesh + `---
kind: VirtualNode
mesh: m
name: plain
spec:
  serviceDiscovery: {dns: {hostname: plain.example}}
  backends: [{virtualService: {virtualServiceName: app.m.local}}]
`
	plain := dialEDS(t, cp.s.XDSAddr(), "mesh/m/virtualNode/plain")
	for i, doc := range []string{plainDoc, strings.Replace(plainDoc, "port: 8080", "port: 8081", 1)} {
		if i == 1 {
			// The streams of the first apply's nodes are configured.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if n, _ := plain.lastAck(); n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the plain node's stream got no configuration")
				}
			}
		}
		n0, _ := plain.lastAck()
		out, err := cp.api.Apply(context.Background(), []byte(doc), false)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got, at := pushedAt[i], started[i]
		mu.Unlock()
		if got < out.Revision {
			t.Fatalf("apply %d (revision %d): warnings computed when revision %d was pushed", i, out.Revision, got)
		}
		if n, acked := plain.lastAck(); i == 0 {
			// The streams were still connecting.
		} else if n == n0 {
			t.Fatalf("apply %d: the plain node's stream got no response before the apply answered", i)
		} else if acked.After(at) {
			t.Fatalf("apply %d: warnings started %s before the plain node ACKed the push", i, acked.Sub(at))
		}
		if !slices.Contains(out.Warnings, acmTrustWarning) {
			t.Fatalf("apply %d: warnings %q lack %q", i, out.Warnings, acmTrustWarning)
		}
	}
	if err := c.streamErr(); err != nil {
		t.Fatal(err)
	}
}

// Meshes stored before applies refused names that differ only in case
// are each warned of where they are read: they share a trust domain.
func TestMeshCaseWarnings(t *testing.T) {
	mesh := func(name string) *v1alpha1.Resource {
		return &v1alpha1.Resource{Kind: v1alpha1.KindMesh, Name: name, MeshSpec: &v1alpha1.MeshSpec{}}
	}
	snap := store.NewSnapshot(1, []*v1alpha1.Resource{mesh("Shop"), mesh("shop"), mesh("demo")})
	keys := []v1alpha1.Key{{Kind: v1alpha1.KindMesh, Name: "Shop"}, {Kind: v1alpha1.KindMesh, Name: "demo"}, {Kind: v1alpha1.KindMesh, Name: "shop"}}
	got := (&Server{}).readWarnings(snap, keys)
	if len(got) != 2 || !strings.HasPrefix(got[0], "Mesh Shop: name: differs from mesh shop only in case") ||
		!strings.HasPrefix(got[1], "Mesh shop: name: differs from mesh Shop only in case") || !strings.Contains(got[0], "spiffe://shop") {
		t.Fatalf("warnings = %q", got)
	}
	if w := (&Server{}).readWarnings(snap, keys[1:2]); w != nil {
		t.Fatalf("mesh demo warned: %q", w)
	}
}
