package xds

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// acmPolicy trusts an ACM Private CA, optionally on some ports only or
// not enforced.
func acmPolicy(enforce *bool, ports ...int) *v1alpha1.ClientPolicy {
	return &v1alpha1.ClientPolicy{TLS: &v1alpha1.ClientPolicyTLS{
		Enforce: enforce, Ports: ports,
		Validation: &v1alpha1.TLSValidationContext{Trust: &v1alpha1.TLSValidationContextTrust{
			ACM: &v1alpha1.TLSValidationACMTrust{CertificateAuthorityArns: []string{"arn:aws:acm-pca:us-west-2:123456789012:certificate-authority/ca"}},
		}},
	}}
}

// TestACMTrustRefusesTraffic: a backend whose enforced client policy
// trusts ACM Private CA gets a cluster without endpoints (never a
// plaintext cluster with the backend's instances), for sidecars, proxyless
// clients and gateways, and a warning names the field.
func TestACMTrustRefusesTraffic(t *testing.T) {
	t.Parallel()
	base := loadMesh(t, "testdata/mesh.yaml")
	no := false
	const red = "cds_egress_demo_colors-red_http_8080"
	cases := []struct {
		name    string
		policy  *v1alpha1.ClientPolicy
		refused bool
	}{
		{"ACM trust", acmPolicy(nil), true},
		{"ACM trust on the backend's port", acmPolicy(nil, 8080), true},
		{"ACM trust on another port", acmPolicy(nil, 9999), false},
		{"ACM trust not enforced", acmPolicy(&no), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := base.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "client"}).DeepCopy()
			client.VirtualNodeSpec.BackendDefaults = &v1alpha1.BackendDefaults{ClientPolicy: tc.policy}
			gw := base.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualGateway, Mesh: "demo", Name: "ingress-gw"}).DeepCopy()
			gw.VirtualGatewaySpec.BackendDefaults = &v1alpha1.VirtualGatewayBackendDefaults{ClientPolicy: tc.policy}
			l := base.With(base.Revision()+1, []*v1alpha1.Resource{client, gw}, nil)
			views := map[string]*View{
				"sidecar":   Translate(l, fixtureEndpoints(), nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "client"}, FlavourEnvoy),
				"proxyless": Translate(l, fixtureEndpoints(), nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "client"}, FlavourProxyless),
				"gateway":   Translate(l, fixtureEndpoints(), nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualGateway, Name: "ingress-gw"}, FlavourEnvoy),
			}
			for what, v := range views {
				for _, c := range []struct {
					name string
					port int
				}{{red, 8080}, {"cds_egress_demo_db_tcp_5432", 5432}} {
					if what != "sidecar" && c.port == 5432 {
						continue // TCP backends are a sidecar's only
					}
					refused := tc.refused && (len(tc.policy.TLS.Ports) == 0 || slices.Contains(tc.policy.TLS.Ports, c.port))
					n, named := endpointsOf(v, c.name), namedByRoutes(t, v)[c.name]
					switch {
					case refused && n > 0:
						t.Errorf("%s: %s has %d endpoints: traffic trusting ACM would be sent in plaintext", what, c.name, n)
					case !refused && (n == 0 || (!named && c.port == 8080 && what != "proxyless")):
						t.Errorf("%s: %s has %d endpoints (named by a route: %v), want the backend's instances", what, c.name, n, named)
					}
				}
				if tc.refused && what != "proxyless" && !refusesWithBody(v, "trusts ACM Private CA") {
					t.Errorf("%s: no route answers 503 saying the request is refused", what)
				}
			}
			w := Warnings(l, "demo")
			note := "spec.backendDefaults.clientPolicy.tls.validation.trust.acm: ACM Private CA is not available in meshlens; traffic to backends that use the defaults"
			for _, k := range []v1alpha1.Key{client.Key(), gw.Key()} {
				has := slices.ContainsFunc(w[k], func(s string) bool { return strings.HasPrefix(s, note) })
				if has != (tc.refused || len(tc.policy.TLS.Ports) > 0) {
					t.Errorf("warnings of %s = %q, want the ACM note: %v", k, w[k], tc.refused)
				}
			}
		})
	}
}

// TestWarnings: notes reach the resource they are about, with the field
// path, without any data plane connected.
func TestWarnings(t *testing.T) {
	t.Parallel()
	l := loadMesh(t, "testdata/mesh.yaml")
	gw := l.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualGateway, Mesh: "demo", Name: "ingress-gw"}).DeepCopy()
	gw.VirtualGatewaySpec.Listeners[0].HealthCheck = &v1alpha1.HealthCheckPolicy{Protocol: "http", Path: "/ping"}
	l = l.With(l.Revision()+1, []*v1alpha1.Resource{gw}, nil)
	w := Warnings(l, "")
	want := map[v1alpha1.Key][]string{
		gw.Key(): {
			"spec.listeners[0].healthCheck: kept, not translated: the gateway's own health check is not configured in its data plane",
		},
		// greeter's client policies use TLS, which a proxyless client of
		// greeter would not apply.
		{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "greeter"}: {
			"spec.backendDefaults.clientPolicy.tls: proxyless gRPC clients do not apply client policy TLS: their calls to the backends it covers are plaintext",
			"spec.backends[0].virtualService.clientPolicy.tls: proxyless gRPC clients do not apply client policy TLS: their calls to the backends it covers are plaintext",
			"spec.backends[4].virtualService.virtualServiceName: virtual service missing.demo.local has no provider listener: not routed",
		},
		{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "acm-node"}: {
			"spec.backends[0].virtualService.clientPolicy.tls.validation.trust.acm: ACM Private CA is not available in meshlens; traffic to colors.demo.local is refused rather than sent in plaintext",
			"spec.listeners[0].tls.certificate.acm: ACM certificates are not available without the mesh CA (meshlens server --ca-key-file); the listener on port 8080 is not served rather than served without TLS",
		},
		{Kind: v1alpha1.KindRoute, Mesh: "demo", Parent: "colors", Name: "nowhere"}: {
			"spec.httpRoute.action.weightedTargets[0]: target virtual node ghost has no matching listener: the target is dropped",
		},
		{Kind: v1alpha1.KindGatewayRoute, Mesh: "demo", Parent: "ingress-gw", Name: "v2"}: {
			"spec.httpRoute.match: route regex of colors.demo.local matches regular expressions that cannot be combined with this match and rewrite: that route is skipped",
		},
	}
	for k, ws := range want {
		if !slices.Equal(w[k], ws) {
			t.Errorf("warnings of %s =\n%q\nwant\n%q", k, w[k], ws)
		}
	}
	if ws := w[v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "colors-red"}]; len(ws) != 0 {
		t.Errorf("colors-red has warnings %q, want none", ws)
	}
}

// endpointsOf counts the endpoints of a cluster's load assignment in v
// (none when it has no load assignment).
func endpointsOf(v *View, cluster string) int {
	for _, cla := range v.Endpoints {
		if cla.ClusterName == cluster {
			return countEndpoints(cla)
		}
	}
	return 0
}

// namedByRoutes lists the clusters v's HTTP routes send to.
func namedByRoutes(t *testing.T, v *View) map[string]bool {
	out := map[string]bool{}
	for _, rc := range v.Routes {
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				a := rt.GetRoute()
				if c := a.GetCluster(); c != "" {
					out[c] = true
				}
				for _, wc := range a.GetWeightedClusters().GetClusters() {
					out[wc.Name] = true
				}
			}
		}
	}
	return out
}

// refusesWithBody reports whether some route of v answers 503 with a body
// holding text.
func refusesWithBody(v *View, text string) bool {
	for _, rc := range v.Routes {
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				if d := rt.GetDirectResponse(); d.GetStatus() == 503 && strings.Contains(d.GetBody().GetInlineString(), text) {
					return true
				}
			}
		}
	}
	return false
}

// TestACMRefusalWinsOverASharedCluster: when a backend without a policy
// and a backend trusting ACM reach the same target, the cluster they share
// is refused, whichever comes first: the ACM backend's traffic never goes
// out in plaintext through the other's cluster.
func TestACMRefusalWinsOverASharedCluster(t *testing.T) {
	t.Parallel()
	base := loadMesh(t, "testdata/mesh.yaml")
	docs := mustDecodeResources(t, `
kind: VirtualRouter
mesh: demo
name: dbr
spec:
  listeners: [{portMapping: {port: 6000, protocol: tcp}}]
---
kind: Route
mesh: demo
virtualRouter: dbr
name: to-db
spec:
  tcpRoute:
    action: {weightedTargets: [{virtualNode: db, weight: 1}]}
---
kind: VirtualService
mesh: demo
name: dbr.demo.local
spec: {provider: {virtualRouter: {virtualRouterName: dbr}}}
---
kind: VirtualNode
mesh: demo
name: both
spec:
  backends:
    - virtualService: {virtualServiceName: db.demo.local}
    - virtualService:
        virtualServiceName: dbr.demo.local
        clientPolicy:
          tls:
            validation:
              trust: {acm: {certificateAuthorityArns: ["arn:aws:acm-pca:us-west-2:123456789012:certificate-authority/ca"]}}
`)
	l := base.With(base.Revision()+1, docs, nil)
	v := Translate(l, fixtureEndpoints(), nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "both"}, FlavourEnvoy)
	if n := endpointsOf(v, "cds_egress_demo_db_tcp_5432"); n != 0 {
		t.Fatalf("the cluster shared with an ACM-trusting backend has %d endpoints", n)
	}
}

func mustDecodeResources(t *testing.T, doc string) []*v1alpha1.Resource {
	t.Helper()
	rs, err := v1alpha1.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestServerWarnings: the server's warnings, which take the notes of the
// views it built for connected data planes, are the package's Warnings
// for the input it serves, for an endpoint-only change of it, for a
// resource change, and for an input it never served; and they are ready
// once Pushed reports the input.
func TestServerWarnings(t *testing.T) {
	s, addr := startServer(t, Options{Debounce: 10 * time.Millisecond})
	base := loadMesh(t, "testdata/mesh.yaml")
	client := base.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: "demo", Name: "client"}).DeepCopy()
	client.VirtualNodeSpec.BackendDefaults = &v1alpha1.BackendDefaults{ClientPolicy: acmPolicy(nil)}
	l1 := base.With(base.Revision()+1, []*v1alpha1.Resource{client}, nil)
	pushed := func(l v1alpha1.Lookup) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			got, later := s.Pushed()
			if got == l {
				return
			}
			select {
			case <-later:
			case <-deadline:
				t.Fatalf("input never pushed")
			}
		}
	}
	check := func(what string, l v1alpha1.Lookup, wantNotes bool) {
		t.Helper()
		for _, mesh := range []string{"demo", ""} {
			got, want := s.Warnings(l, mesh), Warnings(l, mesh)
			if !maps.EqualFunc(got, want, slices.Equal) {
				t.Fatalf("%s, mesh %q: server warnings\n%v\nwant\n%v", what, mesh, got, want)
			}
			if wantNotes && len(got) == 0 {
				t.Fatalf("%s: no warnings at all", what)
			}
		}
	}
	s.Update(l1, fixtureEndpoints())
	var clients []*adsClient
	for _, id := range []string{"mesh/demo/virtualNode/client", "mesh/demo/virtualNode/greeter", "mesh/demo/virtualGateway/ingress-gw"} {
		c := dialADS(t, addr, id)
		c.until(10*time.Second, id+" configured", c.synced)
		clients = append(clients, c)
	}
	pushed(l1)
	check("served input", l1, true)

	s.Update(l1, staticEndpoints{})
	pushed(l1)
	check("endpoint change", l1, true)

	l2 := base.With(base.Revision()+2, nil, nil)
	s.Update(l2, fixtureEndpoints())
	pushed(l2)
	check("resource change", l2, false)
	check("an input no longer served", l1, true)
	for _, c := range clients {
		select {
		case err := <-c.errs:
			t.Fatal(err)
		default:
		}
	}
}
