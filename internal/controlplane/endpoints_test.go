package controlplane

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/registry"
)

const meshesAB = `
kind: Mesh
name: a
---
kind: Mesh
name: b
---
kind: VirtualNode
mesh: a
name: x
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: a.local, serviceName: x}}
---
kind: VirtualService
mesh: a
name: x.a.local
spec: {provider: {virtualNode: {virtualNodeName: x}}}
---
kind: VirtualNode
mesh: a
name: c
spec:
  backends: [{virtualService: {virtualServiceName: x.a.local}}]
---
kind: VirtualNode
mesh: b
name: yy
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  serviceDiscovery: {awsCloudMap: {namespaceName: b.local, serviceName: yy}}
`

// TestEndpointChangeAfterRegistrationInAnotherMesh: a registration that
// changes no connected proxy's view (mesh b) must not hide the next one
// that does (mesh a).
func TestEndpointChangeAfterRegistrationInAnotherMesh(t *testing.T) {
	t.Parallel()
	cp := startCP(t, Config{})
	cp.apply(t, meshesAB)
	c := dialEDS(t, cp.s.XDSAddr(), "mesh/a/virtualNode/c")
	eventually(t, 10*time.Second, func() string { return converged(t, cp, c, "a", "x") })
	ctx := context.Background()
	if _, err := cp.api.Register(ctx, "b", "yy", "i1", restv1.Instance{Address: "10.0.2.1", Port: 9080}); err != nil {
		t.Fatal(err)
	}
	// Let the control plane apply the change in mesh b on its own.
	time.Sleep(500 * time.Millisecond)
	if _, err := cp.api.Register(ctx, "a", "x", "i1", restv1.Instance{Address: "10.0.1.1", Port: 9080}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 6*time.Second, func() string {
		if got, _ := c.endpoints("cds_egress_a_x_http_9080"); len(got) != 1 {
			return fmt.Sprintf("c's endpoints of x: %v, want 10.0.1.1:9080", got)
		}
		return converged(t, cp, c, "a", "x")
	})
}

// TestConcurrentRegistrationsAllReachProxies: instances registered at full
// speed from many goroutines all reach the proxy, including the ones that
// land while the control plane reads the registry.
func TestConcurrentRegistrationsAllReachProxies(t *testing.T) {
	t.Parallel()
	cp := startCP(t, Config{})
	cp.apply(t, meshesAB)
	c := dialEDS(t, cp.s.XDSAddr(), "mesh/a/virtualNode/c")
	eventually(t, 10*time.Second, func() string { return converged(t, cp, c, "a", "x") })
	const workers, each = 8, 250
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				in := registry.Instance{Mesh: "a", VirtualNode: "x", ID: fmt.Sprintf("w%d-%d", w, i),
					Address: fmt.Sprintf("10.1.%d.%d", w, i), Port: 9080, NamespaceName: "a.local", ServiceName: "x", TTLSeconds: 3600}
				if _, err := cp.s.registry.Register(in); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	eventually(t, 10*time.Second, func() string {
		got, _ := c.endpoints("cds_egress_a_x_http_9080")
		if len(got) != workers*each {
			return fmt.Sprintf("the proxy has %d of %d registered instances", len(got), workers*each)
		}
		return ""
	})
}

// TestDNSResolvedWhenApplied: a dns node's hostname is resolved when the
// node is applied, not at the next re-resolution interval.
func TestDNSResolvedWhenApplied(t *testing.T) {
	t.Parallel()
	res := newFakeResolver()
	res.set("db.example", []string{"192.0.2.10"})
	cp := startCP(t, Config{Resolver: res, DNSInterval: time.Hour})
	cp.apply(t, `
kind: Mesh
name: m
---
kind: VirtualNode
mesh: m
name: c
spec:
  backends: [{virtualService: {virtualServiceName: db.m.local}}]
`)
	c := dialEDS(t, cp.s.XDSAddr(), "mesh/m/virtualNode/c")
	// Give the resolver its first round (with no hostname) before the
	// dns node exists.
	time.Sleep(200 * time.Millisecond)
	cp.apply(t, `
kind: VirtualNode
mesh: m
name: db
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: db.example}}
---
kind: VirtualService
mesh: m
name: db.m.local
spec: {provider: {virtualNode: {virtualNodeName: db}}}
`)
	eventually(t, 5*time.Second, func() string {
		if got, _ := c.endpoints("cds_egress_m_db_http_9080"); !slices.Equal(got, []string{"192.0.2.10:9080 healthy"}) {
			return fmt.Sprintf("the proxy's endpoints of db: %v", got)
		}
		return ""
	})
}

// TestIPPreferenceAndResponseType: the mesh's IP preference is the
// default, a node's own overrides it; dns answers and registered instances
// (with Cloud Map's address attributes) are filtered by it; a dns
// responseType of LOADBALANCER keeps one address. Describe and the proxy
// agree.
func TestIPPreferenceAndResponseType(t *testing.T) {
	t.Parallel()
	res := newFakeResolver()
	mixed := []string{"192.0.2.2", "192.0.2.1", "2001:db8::2", "2001:db8::1"}
	res.set("mixed.example", mixed)
	res.set("v4.example", []string{"192.0.2.7", "192.0.2.8"})
	cp := startCP(t, Config{Resolver: res, DNSInterval: time.Hour})
	node := func(name, sd string) string {
		return fmt.Sprintf(`---
kind: VirtualNode
mesh: m
name: %s
spec:
  listeners: [{portMapping: {port: 9080, protocol: http}}]
  serviceDiscovery: %s
---
kind: VirtualService
mesh: m
name: %s.m.local
spec: {provider: {virtualNode: {virtualNodeName: %s}}}
`, name, sd, name, name)
	}
	cases := []struct {
		node, sd string
		want     []string
	}{
		{"mesh-default", `{dns: {hostname: mixed.example}}`, []string{"192.0.2.1", "192.0.2.2"}},
		{"v6-only", `{dns: {hostname: mixed.example, ipPreference: IPv6_ONLY}}`, []string{"2001:db8::1", "2001:db8::2"}},
		{"v6-preferred", `{dns: {hostname: mixed.example, ipPreference: IPv6_PREFERRED}}`, []string{"2001:db8::1", "2001:db8::2"}},
		{"v6-preferred-fallback", `{dns: {hostname: v4.example, ipPreference: IPv6_PREFERRED}}`, []string{"192.0.2.7", "192.0.2.8"}},
		{"v6-only-none", `{dns: {hostname: v4.example, ipPreference: IPv6_ONLY}}`, nil},
		{"v4-lb", `{dns: {hostname: mixed.example, ipPreference: IPv4_PREFERRED, responseType: LOADBALANCER}}`, []string{"192.0.2.1"}},
		{"all-endpoints", `{dns: {hostname: mixed.example, responseType: ENDPOINTS}}`, []string{"192.0.2.1", "192.0.2.2"}},
		{"cm-default", `{awsCloudMap: {namespaceName: ns, serviceName: svc}}`, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{"cm-v6-preferred", `{awsCloudMap: {namespaceName: ns, serviceName: svc, ipPreference: IPv6_PREFERRED}}`, []string{"2001:db8::a", "2001:db8::b", "10.0.0.3"}},
		{"cm-v6-only", `{awsCloudMap: {namespaceName: ns, serviceName: svc, ipPreference: IPv6_ONLY}}`, []string{"2001:db8::a", "2001:db8::b"}},
	}
	doc := "kind: Mesh\nname: m\nspec: {serviceDiscovery: {ipPreference: IPv4_ONLY}}\n"
	client := "---\nkind: VirtualNode\nmesh: m\nname: c\nspec:\n  backends:\n"
	for _, tc := range cases {
		doc += node(tc.node, tc.sd)
		client += fmt.Sprintf("  - virtualService: {virtualServiceName: %s.m.local}\n", tc.node)
	}
	cp.apply(t, doc+client)
	ctx := context.Background()
	for i, in := range []restv1.Instance{
		{Address: "10.0.0.1", Attributes: map[string]string{registry.AttrIPv6: "2001:db8::a"}},
		{Address: "2001:db8::b", Attributes: map[string]string{registry.AttrIPv4: "10.0.0.2"}},
		{Address: "10.0.0.3"},
	} {
		in.Port, in.NamespaceName, in.ServiceName = 9080, "ns", "svc"
		if _, err := cp.api.Register(ctx, "m", "cm-default", fmt.Sprint(i), in); err != nil {
			t.Fatal(err)
		}
	}
	c := dialEDS(t, cp.s.XDSAddr(), "mesh/m/virtualNode/c")
	for _, tc := range cases {
		t.Run(tc.node, func(t *testing.T) {
			want := []string{}
			for _, a := range tc.want {
				want = append(want, endpointString(a, 9080, true))
			}
			slices.Sort(want)
			if got := cp.describedEndpoints(t, "m", tc.node); !slices.Equal(got, want) {
				t.Errorf("describe lists %v, want %v", got, want)
			}
			eventually(t, 5*time.Second, func() string { return converged(t, cp, c, "m", tc.node) })
		})
	}
}

// TestRegistrationWhileReadingIsNotMissed: an instance registered just
// after the control plane read the registry (and before it waits for the
// next change) reaches the proxy.
func TestRegistrationWhileReadingIsNotMissed(t *testing.T) {
	t.Parallel()
	var once sync.Once
	armed := make(chan struct{})
	var cp *runningCP
	afterRead := func() {
		select {
		case <-armed:
		default:
			return
		}
		once.Do(func() {
			in := registry.Instance{Mesh: "a", VirtualNode: "x", ID: "late", Address: "10.0.1.9", Port: 9080,
				NamespaceName: "a.local", ServiceName: "x"}
			if _, err := cp.s.registry.Register(in); err != nil {
				t.Error(err)
			}
		})
	}
	cp = startCP(t, Config{}, func(s *Server) { s.afterRead = afterRead })
	cp.apply(t, meshesAB)
	c := dialEDS(t, cp.s.XDSAddr(), "mesh/a/virtualNode/c")
	eventually(t, 10*time.Second, func() string { return converged(t, cp, c, "a", "x") })
	close(armed)
	// Any change makes the control plane read the registry; the hook
	// registers "late" right after that read.
	if _, err := cp.api.Register(context.Background(), "b", "yy", "i1", restv1.Instance{Address: "10.0.2.1", Port: 9080}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		if got, _ := c.endpoints("cds_egress_a_x_http_9080"); !slices.Equal(got, []string{"10.0.1.9:9080 healthy"}) {
			return fmt.Sprintf("the proxy's endpoints of x: %v, want the instance registered during the read", got)
		}
		return ""
	})
}
