package xds

import (
	"os"
	"path/filepath"
	"strings"
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
			checkGoldenView(t, v, tc.flavour, tc.name)
		})
	}
}

// TestFilterDocsGolden checks that the xDS shown in docs/filters/*.md is
// what the translation produces: every YAML block after a
// "<!-- golden: NAME -->" line must be a run of consecutive lines of
// testdata/NAME.golden.yaml, indented alike.
func TestFilterDocsGolden(t *testing.T) {
	t.Parallel()
	pages, err := filepath.Glob("../../docs/filters/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages under docs/filters (%v)", err)
	}
	const marker = "<!-- golden: "
	n := 0
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range strings.Split(string(data), marker)[1:] {
			name, rest, _ := strings.Cut(part, " -->\n")
			block, ok := strings.CutPrefix(rest, "```yaml\n")
			if !ok {
				t.Errorf("%s: %s%s --> is not followed by a yaml block", page, marker, name)
				continue
			}
			block, _, _ = strings.Cut(block, "```")
			golden, err := os.ReadFile(filepath.Join("testdata", name+".golden.yaml"))
			if err != nil {
				t.Errorf("%s: %v", page, err)
				continue
			}
			n++
			if !containsLines(string(golden), block) {
				t.Errorf("%s: this block is not in testdata/%s.golden.yaml (run go test -update, then copy the new xDS into the page):\n%s", page, name, block)
			}
		}
	}
	if n < 10 {
		t.Errorf("checked %d blocks, want every block of the four pages", n)
	}
}

// containsLines reports whether the lines of block appear consecutively in
// text, each with the same added indentation.
func containsLines(text, block string) bool {
	lines := strings.Split(text, "\n")
	want := strings.Split(strings.TrimRight(block, "\n"), "\n")
	for i := 0; i+len(want) <= len(lines); i++ {
		indent, ok := strings.CutSuffix(lines[i], want[0])
		if !ok || strings.TrimLeft(indent, " ") != "" {
			continue
		}
		match := true
		for j, w := range want[1:] {
			if lines[i+1+j] != indent+w {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

func TestFractionalPercent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   *float64
		want string
	}{
		{nil, "100/HUNDRED"},
		{ptrTo(0.0), "0/HUNDRED"},
		{ptrTo(5.0), "5/HUNDRED"},
		{ptrTo(0.0001), "1/MILLION"},
		{ptrTo(12.5), "125000/MILLION"},
		{ptrTo(99.9999), "999999/MILLION"},
	}
	for _, tc := range cases {
		fp := fractionalPercent(tc.in)
		if got := itoa32(fp.Numerator) + "/" + fp.Denominator.String(); got != tc.want {
			t.Errorf("fractionalPercent(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
