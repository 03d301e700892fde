package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// The console benchmark (bench/cmd/consolebench, which `make bench` runs
// with its hard limits) completes on its synthetic mesh of 200 virtual
// nodes and 1000 edges, fed to a real control plane over the metrics
// service, in a real chromium: the graph paints every edge, a live update
// paints, and the run reports its numbers. The limits here are loose (a
// shared CI machine is slow and noisy); the bench holds the real ones.
func TestConsoleBenchmarkCompletes(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser over a 1000-edge graph")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, nodeErr := exec.LookPath("node")
	_, chromeErr := os.Stat(chromium)
	if nodeErr != nil || chromeErr != nil {
		if os.Getenv("MESHLENS_REQUIRE_BROWSER") != "" {
			t.Fatalf("MESHLENS_REQUIRE_BROWSER is set but node (%v) or %s (%v) is missing: run scripts/install-test-deps.sh", nodeErr, chromium, chromeErr)
		}
		t.Skipf("node (%v) or %s (%v) missing; set MESHLENS_REQUIRE_BROWSER to make this a failure", nodeErr, chromium, chromeErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/consolebench", "-repo", root, "-meshlens", binary, "-chromium", chromium,
		"-runs", "1", "-updates", "1", "-max-first-paint", "60s", "-max-update", "30s")
	cmd.Dir = filepath.Join(root, "bench")
	out, err := cmd.CombinedOutput()
	t.Logf("consolebench:\n%s", out)
	if err != nil {
		t.Fatalf("consolebench: %v", err)
	}
	for _, want := range []string{`\(400 graph nodes, drawn as \d+: [^)]*\), 1000 edges with traffic`, `first paint of the graph \| \d+ ms`, `a live update painted \| \d+ ms`, `resident memory at the end: \d+ MB`} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("the report has no %q", want)
		}
	}
}
