package meshmetrics

import (
	"bytes"
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/stats"
)

// forged is an x-meshlens-source naming a workload that does not exist.
const forged = "demo/virtualNode/ghost/server.demo.local"

// The called side finds a certificate caller's edge without allocating
// once the edge exists, and tells the identities apart.
func TestPeerEdge(t *testing.T) {
	cert := func(dns, uri string) *x509.Certificate {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		c := &x509.Certificate{URIs: []*url.URL{u}}
		if dns != "" {
			c.DNSNames = []string{dns}
		}
		return c
	}
	node := cert("a.demo.local", "spiffe://td/mesh/demo/virtualNode/a")
	gw := cert("", "spiffe://td/mesh/demo/virtualGateway/edge")
	other := cert("", "spiffe://td/ns/default/sa/web")
	issued := cert("", "spiffe://demo/virtualNode/b") // the mesh CA's form
	self, err := nodeid.Parse("mesh/demo/virtualNode/server")
	if err != nil {
		t.Fatal(err)
	}
	m := New(nil, self)
	for _, c := range []struct {
		cert                 *x509.Certificate
		src                  string
		mesh, kind, name, sv string
	}{
		{node, forged, "demo", "virtualNode", "a", "server.demo.local"},
		{node, "", "demo", "virtualNode", "a", "unknown"},
		{node, "a/b/c/d/e", "demo", "virtualNode", "a", "d"},
		{node, "a/b/c/bad\x01", "demo", "virtualNode", "a", "unknown"},
		{gw, "x/y/z/svc.demo.local", "demo", "virtualGateway", "edge", "svc.demo.local"},
		{other, forged, "unknown", "unknown", "spiffe://td/ns/default/sa/web", "server.demo.local"},
		{issued, forged, "demo", "virtualNode", "b", "server.demo.local"},
	} {
		l := m.Peer(c.cert, c.src).labels
		if l.srcMesh != c.mesh || l.srcKind != c.kind || l.srcWorkload != c.name || l.dstService != c.sv || l.reporter != "destination" || l.security != "mutual_tls" {
			t.Errorf("%v %q: %+v", c.cert.URIs, c.src, l)
		}
	}
	if n := testing.AllocsPerRun(100, func() { m.Peer(node, forged) }); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

// FuzzInboundEdge: any x-meshlens-source value yields an edge whose
// labels are either the caller's four well-formed parts or "unknown";
// nothing panics, and recording on it works.
func FuzzInboundEdge(f *testing.F) {
	for _, s := range []string{"", "demo/virtualNode/client/greeter.demo.local", "a/b/c", "a/b/c/d/e", "a/b/c/\"", "//x/", "demo/virtualGateway/ingress/greeter.demo.local"} {
		f.Add(s)
	}
	store, err := stats.NewStore(stats.Options{TagRules: []stats.TagRule{}, PrometheusPrefix: "meshlens_", PrometheusSeconds: true})
	if err != nil {
		f.Fatal(err)
	}
	m := New(store, nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "server"})
	f.Fuzz(func(t *testing.T, src string) {
		e := m.Inbound(src)
		l := e.labels
		if e != m.unknown {
			got := l.srcMesh + "/" + l.srcKind + "/" + l.srcWorkload + "/" + l.dstService
			if l.route != unknown || strings.Count(src, "/") > 3 {
				got += "/" + l.route
			}
			if got != src {
				t.Fatalf("edge %+v for %q", l, src)
			}
			if !validLabelValues([]string{l.srcMesh, l.srcKind, l.srcWorkload, l.dstService, l.route}) {
				t.Fatalf("invalid labels %+v", l)
			}
		}
		if l.reporter != "destination" || l.dstWorkload != "server" {
			t.Fatalf("edge %+v", l)
		}
		e.Record(HTTP, 200, time.Millisecond, 1, 2)
		if n := len(*m.inbound.Load()); n > maxInboundSources {
			t.Fatalf("%d inbound sources", n)
		}
	})
}

// FuzzPeerEdge: whatever a certificate's URI SAN and the header say, the
// edge's labels are fit for Prometheus and never exceed the bound.
func FuzzPeerEdge(f *testing.F) {
	for _, s := range [][2]string{
		{"spiffe://td/mesh/demo/virtualNode/a", forged},
		{"spiffe://td/mesh//virtualNode/", "///"},
		{"spiffe://td/mesh/a/virtualGateway/b/c", "a/b/c/d\"e"},
		{"urn:x", ""},
	} {
		f.Add(s[0], s[1])
	}
	self, _ := nodeid.Parse("mesh/demo/virtualNode/server")
	m := New(nil, self)
	f.Fuzz(func(t *testing.T, uri, src string) {
		u, err := url.Parse(uri)
		if err != nil {
			return
		}
		l := m.Peer(&x509.Certificate{URIs: []*url.URL{u}}, src).labels
		if !validLabelValues([]string{l.srcMesh, l.srcKind, l.srcWorkload, l.dstService, l.route}) {
			t.Fatalf("%q %q: labels %+v", uri, src, l)
		}
	})
}

func meshProm(t *testing.T, store *stats.Store) string {
	t.Helper()
	var b bytes.Buffer
	if err := store.WritePrometheus(&b, nil, true); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The calling side labels its series with the route, sends the route to
// the called side, which labels its own; beyond the cap, routes count on
// the destination's overflow series.
func TestRouteLabelAndOverflow(t *testing.T) {
	store, err := stats.NewStore(stats.Options{TagRules: []stats.TagRule{}, PrometheusPrefix: "meshlens_", PrometheusSeconds: true})
	if err != nil {
		t.Fatal(err)
	}
	m := New(store, nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "front"})
	m.SetMaxRoutes(2)
	a := m.Outbound("greeter.demo.local", "r-a", "demo", "greeter-v1")
	b := m.Outbound("greeter.demo.local", "gw/r-b", "demo", "greeter-v1")
	c := m.Outbound("greeter.demo.local", "r-c", "demo", "greeter-v1")
	d := m.Outbound("greeter.demo.local", "r-d", "demo", "greeter-v1")
	if c != d || c.labels.route != Overflow || a.labels.route != "r-a" {
		t.Fatalf("edges beyond the cap: %+v %+v, want one overflow edge", c.labels, d.labels)
	}
	if m.Outbound("greeter.demo.local", "r-a", "demo", "greeter-v1") != a {
		t.Error("an existing route's edge was not reused")
	}
	for _, e := range []*Edge{a, b, c, d} {
		e.Record(HTTP, 200, time.Millisecond, 0, 0)
	}
	prom := meshProm(t, store)
	for _, want := range []string{`route="r-a"`, `route="gw/r-b"`} {
		if !strings.Contains(prom, want) {
			t.Errorf("no series with %s in\n%s", want, prom)
		}
	}
	if !strings.Contains(prom, `route="__overflow__",connection_security_policy="unknown",response_code="200",protocol="http"} 2`) {
		t.Errorf("overflow series does not count both routes beyond the cap:\n%s", prom)
	}

	// The called side reads the route from the header, slashes and all.
	srv := New(store, nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "greeter-v1"})
	in := srv.Inbound(b.Header()[0])
	if in.labels.security != "none" || a.labels.security != unknown {
		t.Errorf("plaintext inbound security %q, outbound %q; want none and unknown", in.labels.security, a.labels.security)
	}
	if in.labels.route != "gw/r-b" || in.labels.dstService != "greeter.demo.local" || in.labels.srcWorkload != "front" {
		t.Errorf("inbound labels %+v from %q", in.labels, b.Header()[0])
	}
	if old := srv.Inbound("demo/virtualNode/front/greeter.demo.local"); old.labels.route != unknown {
		t.Errorf("a four-field header: route %q, want unknown", old.labels.route)
	}
}

// A series whose count has not moved for the idle timeout leaves the
// outputs, and a later request brings it back from zero; a busy series
// stays.
func TestEvictIdleSeries(t *testing.T) {
	store, err := stats.NewStore(stats.Options{TagRules: []stats.TagRule{}, PrometheusPrefix: "meshlens_", PrometheusSeconds: true})
	if err != nil {
		t.Fatal(err)
	}
	m := New(store, nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "front"})
	idle := m.Outbound("old.demo.local", "r", "demo", "old")
	busy := m.Outbound("new.demo.local", "r", "demo", "new")
	idle.Record(HTTP, 200, time.Millisecond, 0, 0)
	busy.Record(HTTP, 200, time.Millisecond, 0, 0)
	t0 := time.Now()
	m.EvictIdle(t0, time.Minute) // first sight: both moved
	busy.Record(HTTP, 200, time.Millisecond, 0, 0)
	if n := m.EvictIdle(t0.Add(30*time.Second), time.Minute); n != 0 {
		t.Fatalf("evicted %d series before the timeout", n)
	}
	busy.Record(HTTP, 200, time.Millisecond, 0, 0)
	if n := m.EvictIdle(t0.Add(61*time.Second), time.Minute); n != 1 {
		t.Fatalf("evicted %d series, want the idle one", n)
	}
	prom := meshProm(t, store)
	if strings.Contains(prom, "old.demo.local") || !strings.Contains(prom, "new.demo.local") {
		t.Fatalf("after eviction:\n%s", prom)
	}
	idle.Record(HTTP, 200, time.Millisecond, 0, 0)
	if prom := meshProm(t, store); !strings.Contains(prom, `destination_service="old.demo.local",destination_workload="old",route="r",connection_security_policy="unknown",response_code="200",protocol="http"} 1`) {
		t.Errorf("the evicted series did not come back from zero:\n%s", prom)
	}
}
