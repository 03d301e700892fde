package meshmetrics

import (
	"crypto/x509"
	"net/url"
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
		{node, "a/b/c/d/e", "demo", "virtualNode", "a", "unknown"},
		{node, "a/b/c/bad\x01", "demo", "virtualNode", "a", "unknown"},
		{gw, "x/y/z/svc.demo.local", "demo", "virtualGateway", "edge", "svc.demo.local"},
		{other, forged, "unknown", "unknown", "spiffe://td/ns/default/sa/web", "server.demo.local"},
	} {
		l := m.Peer(c.cert, c.src).labels
		if l.srcMesh != c.mesh || l.srcKind != c.kind || l.srcWorkload != c.name || l.dstService != c.sv || l.reporter != "destination" {
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
			if l.srcMesh+"/"+l.srcKind+"/"+l.srcWorkload+"/"+l.dstService != src {
				t.Fatalf("edge %+v for %q", l, src)
			}
			if !validLabelValues([]string{l.srcMesh, l.srcKind, l.srcWorkload, l.dstService}) {
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
		if !validLabelValues([]string{l.srcMesh, l.srcKind, l.srcWorkload, l.dstService}) {
			t.Fatalf("%q %q: labels %+v", uri, src, l)
		}
	})
}
