package xds

import (
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// builtinTestCollector stands for the control plane's OTLP address.
const builtinTestCollector = "10.99.0.1:15010"

// tracingCases are the views of testdata/tracing.yaml; their golden
// files show each provider in the connection managers' tracing field
// and the collector's cluster.
var tracingCases = []struct {
	name    string
	id      string
	flavour Flavour
}{
	// No tracing in the mesh: OTLP to the control plane, 1 %.
	{"tracing_builtin", "mesh/builtin/virtualNode/web", FlavourEnvoy},
	// OTLP to a collector by name (STRICT_DNS), custom tags, a route
	// that samples every request.
	{"tracing_otlp_client", "mesh/otlp/virtualNode/client", FlavourEnvoy},
	// A gateway expanding over the route keeps the route's sampling.
	{"tracing_otlp_gateway", "mesh/otlp/virtualGateway/edge", FlavourEnvoy},
	// Proxyless gRPC reads no tracing: nothing changes.
	{"tracing_otlp_proxyless", "mesh/otlp/virtualNode/client", FlavourProxyless},
	// Zipkin v2 JSON to an address (STATIC).
	{"tracing_zipkin", "mesh/zipkin/virtualNode/web", FlavourEnvoy},
	// X-Ray on a gateway: a UDP daemon endpoint, no cluster; the
	// gateway's own 0.5 % replaces the mesh's 5 %.
	{"tracing_xray_gateway", "mesh/xray/virtualGateway/ingress", FlavourEnvoy},
	// provider none: no tracing field, no cluster.
	{"tracing_off", "mesh/quiet/virtualNode/web", FlavourEnvoy},
}

func TestTracingGolden(t *testing.T) {
	t.Parallel()
	lookup := loadMesh(t, "testdata/tracing.yaml")
	for _, k := range v1alpha1.Kinds {
		for _, m := range []string{"", "builtin", "otlp", "zipkin", "xray", "quiet"} {
			for _, r := range lookup.List(k, m, "") {
				if err := r.Validate(); err != nil {
					t.Fatalf("%s: %v", r.Key(), err)
				}
			}
		}
	}
	eps := staticEndpoints{"otlp/api": {{Address: "10.9.0.2", Healthy: true}}}
	for _, tc := range tracingCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id, err := nodeid.Parse(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			tr := newTranslator(lookup, eps)
			tr.builtinCollector = builtinTestCollector
			v := tr.view(id, tc.flavour)
			checkGoldenView(t, v, tc.flavour, tc.name)
		})
	}
}

// TestBuiltinTracingNeedsAnAddress: without the control plane's address
// (Translate, or a control plane whose OTLP is off) the builtin default
// adds no tracing and no cluster.
func TestBuiltinTracingNeedsAnAddress(t *testing.T) {
	t.Parallel()
	lookup := loadMesh(t, "testdata/tracing.yaml")
	id, _ := nodeid.Parse("mesh/builtin/virtualNode/web")
	v := Translate(lookup, nil, id, FlavourEnvoy)
	for _, c := range v.Clusters {
		if c.Name == BuiltinTracingClusterName {
			t.Fatalf("cluster %s without a collector address", c.Name)
		}
	}
	for _, l := range v.Listeners {
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				hcm := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(hcm) == nil && hcm.Tracing != nil {
					t.Fatalf("listener %s has tracing without a collector address", l.Name)
				}
			}
		}
	}
}
