package archtest

import (
	"slices"
	"strings"
	"testing"
)

// TestModuleBoundaries checks every rule against the module's real import
// graph, transitively, for every package.
func TestModuleBoundaries(t *testing.T) {
	module, g, err := Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	// The loader saw the packages the rules are about, below the top
	// level too.
	for _, p := range []string{"internal/proxy", "internal/proxy/table", "internal/proxy/xdsclient", "internal/xds", "internal/controlplane", "api/rest/v1", "internal/stats/statsd"} {
		if _, ok := g[module+"/"+p]; !ok {
			t.Errorf("graph has no package %s", p)
		}
	}
	for _, v := range Check(module, g, Rules) {
		t.Error(v)
	}
}

const mod = "example.com/m"

// graph builds a Graph from "from: to to ..." lines of module-relative
// paths.
func graph(lines ...string) Graph {
	g := Graph{}
	for _, l := range lines {
		from, tos, _ := strings.Cut(l, ":")
		from = mod + "/" + strings.TrimSpace(from)
		g[from] = nil
		for _, to := range strings.Fields(tos) {
			g[from] = append(g[from], mod+"/"+to)
			if _, ok := g[mod+"/"+to]; !ok {
				g[mod+"/"+to] = nil
			}
		}
	}
	return g
}

// A clean graph of the module's shape, every rule's patterns matched.
var clean = []string{
	"cmd/meshlens: internal/cli",
	"cmd/meshlens-proxy: internal/proxycmd",
	"internal/proxycmd: internal/sidecar",
	"internal/cli: internal/proxycmd internal/sidecar internal/controlplane internal/apiclient internal/demo",
	"internal/demo: internal/console internal/consoleui internal/tracestore internal/metricshistory",
	"internal/sidecar: internal/proxy internal/apiclient internal/xdsmeta internal/stats",
	"internal/apiclient: api/rest/v1 api/mesh/v1alpha1",
	"api/rest/v1: api/mesh/v1alpha1",
	"internal/proxy: internal/proxy/table internal/proxy/xdsclient internal/stats",
	"internal/proxy/xdsclient: internal/proxy/table",
	"internal/proxy/table: internal/xdsmeta",
	"internal/controlplane: internal/xds internal/store internal/registry api/rest/v1",
	"internal/xds: internal/xdsmeta api/mesh/v1alpha1",
	"internal/store: api/mesh/v1alpha1",
	"internal/registry:",
	"internal/stats: internal/stats/statsd",
}

// Each rule fails when it is broken, directly or through other packages,
// from the top package or one below it.
func TestCheckFailsWhenARuleIsBroken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra []string
		want  []string // each a violation line's chain
	}{
		{"clean", nil, nil},
		{"proxy imports xds", []string{"internal/proxy: internal/xds"},
			[]string{"internal/proxy -> internal/xds", "internal/sidecar -> internal/proxy -> internal/xds"}},
		{"proxy subpackage imports the store through a helper",
			[]string{"internal/proxy/table: internal/nodeid", "internal/nodeid: internal/store"},
			[]string{
				"internal/proxy -> internal/proxy/table -> internal/nodeid -> internal/store",
				"internal/proxy/table -> internal/nodeid -> internal/store",
				"internal/proxy/xdsclient -> internal/proxy/table -> internal/nodeid -> internal/store",
				"internal/sidecar -> internal/proxy -> internal/proxy/table -> internal/nodeid -> internal/store",
			}},
		{"sidecar imports the API server", []string{"internal/sidecar: internal/controlplane"},
			[]string{
				"internal/sidecar -> internal/controlplane",
				"internal/sidecar -> internal/controlplane -> internal/xds",
				"internal/sidecar -> internal/controlplane -> internal/store",
				"internal/sidecar -> internal/controlplane -> internal/registry",
			}},
		{"control plane imports the proxy's table", []string{"internal/xds: internal/proxy/table"},
			[]string{
				"internal/controlplane -> internal/xds -> internal/proxy/table",
				"internal/xds -> internal/proxy/table",
			}},
		{"public api imports internal", []string{"api/rest/v1: internal/registry"},
			[]string{
				"api/rest/v1 -> internal/registry",
				// and the sidecar now reaches the registry through its
				// client.
				"internal/sidecar -> internal/apiclient -> api/rest/v1 -> internal/registry",
			}},
		{"stats imports routing", []string{"internal/stats/statsd: internal/proxy/table"},
			[]string{
				"internal/stats -> internal/stats/statsd -> internal/proxy/table",
				"internal/stats -> internal/stats/statsd -> internal/proxy/table -> internal/xdsmeta",
				"internal/stats/statsd -> internal/proxy/table",
				"internal/stats/statsd -> internal/proxy/table -> internal/xdsmeta",
			}},
		{"the sidecar pulls in the console", []string{"internal/sidecar: internal/consoleui"},
			[]string{
				"cmd/meshlens-proxy -> internal/proxycmd -> internal/sidecar -> internal/consoleui",
				"internal/proxycmd -> internal/sidecar -> internal/consoleui",
			}},
		{"xdsmeta imports a side", []string{"internal/xdsmeta: internal/xds"},
			[]string{
				// It also breaks the data plane's rule for every package
				// that imports xdsmeta: not counted here.
				"internal/xdsmeta -> internal/xds",
				"internal/proxy/table -> internal/xdsmeta -> internal/xds",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := graph(append(slices.Clone(clean), tc.extra...)...)
			got := Check(mod, g, Rules)
			var chains []string
			for _, v := range got {
				chain, why, ok := strings.Cut(v, ": ")
				if !ok || why == "" {
					t.Errorf("violation without a reason: %q", v)
				}
				chains = append(chains, chain)
			}
			for _, w := range tc.want {
				if !slices.Contains(chains, w) {
					t.Errorf("no violation %q in:\n%s", w, strings.Join(got, "\n"))
				}
			}
			if len(tc.want) == 0 && len(got) > 0 {
				t.Errorf("violations in a clean graph:\n%s", strings.Join(got, "\n"))
			}
			if tc.name != "xdsmeta imports a side" && len(got) != len(tc.want) {
				t.Errorf("%d violations, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
		})
	}
}

// A rule whose pattern matches no package checks nothing: it is reported,
// so a renamed package cannot silently switch a rule off.
func TestCheckReportsPatternsMatchingNothing(t *testing.T) {
	t.Parallel()
	g := graph(clean...)
	got := Check(mod, g, []Rule{{From: []string{"internal/prxy/..."}, Not: []string{"internal/xds"}, Why: "typo"}})
	if len(got) != 1 || !strings.Contains(got[0], "internal/prxy/... matches no package") {
		t.Fatalf("%q", got)
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, pkg string
		want         bool
	}{
		{"internal/xds", mod + "/internal/xds", true},
		{"internal/xds", mod + "/internal/xds/xdsgrpctest", false},
		{"internal/xds", mod + "/internal/xdsmeta", false},
		{"internal/xds/...", mod + "/internal/xds/xdsgrpctest", true},
		{"internal/xds/...", mod + "/internal/xds", true},
		{"internal/xds/...", mod + "/internal/xdsmeta", false},
		{"internal/...", mod + "/internal", true},
		{"internal/...", "other.com/m/internal/x", false},
		{"api/...", mod + "/apis/x", false},
	} {
		if got := match(mod, tc.pattern, tc.pkg); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.pkg, got, tc.want)
		}
	}
}
