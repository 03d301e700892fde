package xds

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// filterCases are the views of testdata/filters.yaml, the mesh that uses
// every filter of the meshlens extension; their golden files show the
// xDS each filter becomes.
var filterCases = []struct {
	name    string
	id      string
	flavour Flavour
}{
	// Listener faults and rate limits in the inbound connection
	// managers' typed_config; the tcp listener's network rate limit
	// before tcp_proxy.
	{"filters_sidecar_api", "mesh/lab/virtualNode/api", FlavourEnvoy},
	// Route faults and rate limits in typed_per_filter_config, the
	// filters in the outbound connection manager with empty
	// listener-wide configurations.
	{"filters_sidecar_client", "mesh/lab/virtualNode/client", FlavourEnvoy},
	// The fault alone: gRPC implements no local rate limit.
	{"filters_proxyless_client", "mesh/lab/virtualNode/client", FlavourProxyless},
	// CORS, gRPC-Web and rate limits on gateway listeners and routes,
	// with the target routes' faults and limits.
	{"filters_gateway", "mesh/lab/virtualGateway/web-gw", FlavourEnvoy},
	// A service that uses no filter: the router alone.
	{"filters_sidecar_store", "mesh/lab/virtualNode/store", FlavourEnvoy},
}

func TestFiltersGolden(t *testing.T) {
	t.Parallel()
	lookup := loadMesh(t, "testdata/filters.yaml")
	// The fixture must be a valid mesh: what validation refuses never
	// reaches translation.
	for _, k := range v1alpha1.Kinds {
		for _, r := range lookup.List(k, "lab", "") {
			if err := r.Validate(); err != nil {
				t.Fatalf("%s: %v", r.Key(), err)
			}
		}
	}
	eps := staticEndpoints{
		"lab/api":   {{Address: "10.9.0.2", Healthy: true}},
		"lab/store": {{Address: "10.9.0.3", Healthy: true}},
	}
	for _, tc := range filterCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id, err := nodeid.Parse(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			v := Translate(lookup, eps, id, tc.flavour)
			validateView(t, v)
			snap, _, err := v.snapshot(newHasher())
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			if tc.flavour == FlavourEnvoy {
				if err := snap.Consistent(); err != nil {
					t.Fatalf("Consistent(): %v", err)
				}
			}
			got := renderView(t, v)
			path := filepath.Join("testdata", tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the translation; run go test ./internal/xds -update and review the diff\n%s", path, firstDiff(string(want), string(got)))
			}
		})
	}
}
