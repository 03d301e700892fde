package controlplane

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/meshlens/meshlens/internal/registry"
	"github.com/meshlens/meshlens/internal/store"
)

// BenchmarkEndpointChange is what one registration costs the control
// plane before translation: a new endpoint view, then every virtual node's
// endpoints read from it twice (once to compare with what the proxies were
// built from, once to build), in a mesh of 1000 nodes with 10 registered
// instances each.
func BenchmarkEndpointChange(b *testing.B) {
	const nodes, perNode = 1000, 10
	var doc strings.Builder
	doc.WriteString("kind: Mesh\nname: scale\n")
	for i := range nodes {
		fmt.Fprintf(&doc, "---\nkind: VirtualNode\nmesh: scale\nname: n-%d\nspec:\n  listeners: [{portMapping: {port: 8080, protocol: http}}]\n"+
			"  serviceDiscovery: {awsCloudMap: {namespaceName: scale.local, serviceName: n-%d, attributes: [{key: zone, value: a}]}}\n", i, i)
	}
	snap := store.NewSnapshot(1, mustDecode(b, doc.String()))
	s := &Server{registry: registry.New(nil), dns: newResolver(slog.New(slog.NewTextHandler(io.Discard, nil)), 0, nil)}
	reg := func(node, id int) {
		in := registry.Instance{Mesh: "scale", VirtualNode: fmt.Sprintf("n-%d", node), ID: fmt.Sprint(id),
			Address: fmt.Sprintf("10.%d.%d.%d", id>>16&255, id>>8&255, id&255), Port: 8080,
			NamespaceName: "scale.local", ServiceName: fmt.Sprintf("n-%d", node), Attributes: map[string]string{"zone": "a"}, TTLSeconds: 3600}
		if _, err := s.registry.Register(in); err != nil {
			b.Fatal(err)
		}
	}
	id := 0
	for n := range nodes {
		for range perNode {
			reg(n, id)
			id++
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		reg(id%nodes, id)
		id++
		v := s.endpointView(snap)
		for range 2 {
			for n := range nodes {
				if len(v.Endpoints("scale", fmt.Sprintf("n-%d", n))) == 0 {
					b.Fatal("no endpoints")
				}
			}
		}
	}
}
