package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// A real control plane serves the console's page and its bundle under
// /ui/, with a CSP that allows scripts only from itself.
func TestConsoleServedByControlPlane(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := get("/ui/")
	if resp.StatusCode != 200 || !strings.Contains(page, "<title>meshlens console</title>") {
		t.Fatalf("GET /ui/: %s %.200q", resp.Status, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") {
		t.Errorf("GET /ui/: CSP %q", csp)
	}
	script := regexp.MustCompile(`src="(/ui/assets/[^"]+\.js)"`).FindStringSubmatch(page)
	if script == nil {
		t.Fatalf("no script in the page: %s", page)
	}
	resp, body := get(script[1])
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || len(body) < 1000 {
		t.Errorf("GET %s: %s %q, %d bytes", script[1], resp.Status, resp.Header.Get("Content-Type"), len(body))
	}
	// /ui without the slash lands on the page; the API's own 404 stays
	// JSON everywhere else.
	if resp, page := get("/ui"); resp.StatusCode != 200 || !strings.Contains(page, "meshlens console") {
		t.Errorf("GET /ui: %s", resp.Status)
	}
	if resp, body := get("/uix"); resp.StatusCode != 404 || !strings.Contains(body, "no API endpoint") {
		t.Errorf("GET /uix: %s %q", resp.Status, body)
	}
}

// The console in a real browser against a real demo: Debian's chromium,
// driven by web/console/e2e/console.mjs through playwright-core, checks
// the graph (every node and edge of the demo, with rates), the README's
// weight change showing in the edge split, a golden-metrics page, the
// traces page, and a bad spec's validation error with its field path;
// any browser console error or failed request fails it. It saves the
// screenshots the README shows into docs/images when
// MESHLENS_UPDATE_SCREENSHOTS is set, else into the test's temp dir, so a
// test run leaves the repository as it was.
func TestConsoleInBrowser(t *testing.T) {
	runConsoleInBrowser(t, false)
}

// The same pages, checked by the same script, against a demo whose
// control plane reads the console's traffic from a real Prometheus
// (Debian's prometheus) scraping the demo's proxies' /stats/prometheus,
// instead of from its built-in history.
func TestConsoleInBrowserFromPrometheus(t *testing.T) {
	runConsoleInBrowser(t, true)
}

// With --auth-tokens the console asks for a token in a sign-in form: a
// wrong token keeps the form with an error, a token without role read is
// told it needs role read, a read token shows the graph with the mesh's
// nodes (every API call and the graph's update stream carrying it, kept
// in sessionStorage only), and "sign out" forgets it. Checked in chromium
// by web/console/e2e/auth.mjs.
func TestConsoleInBrowserWithTokens(t *testing.T) {
	_, web, node, chromium := browserTools(t)
	s, admin := startAuthServer(t)
	if code, _, body := apiCall(t, s, http.MethodPost, "/v1/apply", admin, authMesh); code != http.StatusOK {
		t.Fatalf("apply: %d %s", code, body)
	}
	adminEnv := []string{"MESHLENS_SERVER=" + s.URL(), "MESHLENS_TOKEN=" + admin}
	read := newToken(t, adminEnv, "--role", "read")
	nodeToken := newToken(t, adminEnv, "--node", "au/greeter")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pw := exec.CommandContext(ctx, node, filepath.Join(web, "e2e", "auth.mjs"))
	pw.Dir = web
	pw.Env = append(os.Environ(), "MESHLENS_CONSOLE_URL="+s.URL(), "MESHLENS_READ_TOKEN="+read,
		"MESHLENS_NODE_TOKEN="+nodeToken, "MESHLENS_NODE_ID=au/virtualNode/greeter", "CHROMIUM="+chromium)
	res, err := pw.CombinedOutput()
	t.Logf("auth.mjs:\n%s", res)
	if err != nil {
		t.Fatalf("auth.mjs: %v", err)
	}
}

// runConsoleInBrowser starts a demo (with withPrometheus, a Prometheus
// first, scraping the proxies' admin addresses the demo will use, and
// the demo's control plane reading from it) and runs
// web/console/e2e/console.mjs against it.
func runConsoleInBrowser(t *testing.T, withPrometheus bool) {
	root, web, node, chromium := browserTools(t)

	base := demoPortBase()
	args := []string{"demo", "--api-port", fmt.Sprint(base), "--xds-port", fmt.Sprint(base + 1),
		"--gateway-port", fmt.Sprint(base + 2), "--port-base", fmt.Sprint(base + 3), "--rps", "5", "--data-dir", t.TempDir()}
	backend, promURL := "built-in history", ""
	if withPrometheus {
		// The demo's admin ports follow from --port-base (app, ingress,
		// egress, admin per instance, then the gateway's admin): Prometheus
		// scrapes them from before the demo starts.
		p := base + 3
		var admins []string
		for _, off := range []int{3, 7, 11, 15, 16} {
			admins = append(admins, fmt.Sprintf("127.0.0.1:%d", p+off))
		}
		promURL = startPrometheus(t, map[string][]string{"/stats/prometheus": admins})
		args = append(args, "--prometheus-url", promURL)
		backend = "Prometheus " + promURL
	}
	cmd := exec.Command(binary, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	consoleLine := regexp.MustCompile(`^\s*console:\s+(http://\S+)/ui/$`)
	ready := make(chan string, 1)
	out := &syncBuffer{}
	go func() {
		sc := bufio.NewScanner(stdout)
		var once sync.Once
		first := ""
		for sc.Scan() {
			line := sc.Text()
			out.Write([]byte(line + "\n"))
			if m := consoleLine.FindStringSubmatch(line); m != nil && first == "" {
				first = m[1]
			}
			if strings.Contains(line, "gateway:") && first == "" {
				first = "-" // the console's URL came after another address
			}
			if strings.HasPrefix(strings.TrimSpace(line), "control plane:") {
				once.Do(func() { ready <- first })
			}
		}
	}()
	var api string
	select {
	case api = <-ready:
	case <-exited:
		t.Fatalf("demo exited: %s\n%s\n%s", cmd.ProcessState, out.String(), logs.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("demo not ready in 90s\n%s\n%s", out.String(), logs.String())
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d", base); api != want {
		t.Fatalf("the demo's first address is %q, want the console at %s/ui/:\n%s", api, want, out.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pw := exec.CommandContext(ctx, node, filepath.Join(web, "e2e", "console.mjs"))
	pw.Dir = web
	shots := t.TempDir()
	if os.Getenv("MESHLENS_UPDATE_SCREENSHOTS") != "" && !withPrometheus {
		shots = filepath.Join(root, "docs", "images")
	}
	pw.Env = append(os.Environ(), "MESHLENS_CONSOLE_URL="+api, "MESHLENS_BIN="+binary,
		"MESHLENS_SCREENSHOTS="+shots, "CHROMIUM="+chromium, "MESHLENS_CONSOLE_BACKEND="+backend)
	pw.Env = append(pw.Env, "MESHLENS_CONSOLE_REQUIRED="+strings.Join(documentedConsoleAPI(t, root), ","))
	res, err := pw.CombinedOutput()
	t.Logf("console.mjs:\n%s", res)
	if err != nil {
		t.Fatalf("console.mjs: %v\ndemo output:\n%s", err, out.String())
	}
	if promURL != "" {
		// What the pages showed came from Prometheus's scrapes of the
		// proxies: it holds their request counters.
		r, err := promQuery(t, promURL, `sum(meshlens_requests_total{reporter="source"})`)
		if err != nil || len(r) != 1 || r[0].float() == 0 {
			t.Fatalf("Prometheus scraped no requests from the demo's proxies: %v %+v", err, r)
		}
	}
}

// browserTools finds what the browser tests need: the repository's
// root, web/console (with its node_modules, installed with npm ci when
// missing), node and chromium; it skips the test when node or chromium is
// missing, or fails it when MESHLENS_REQUIRE_BROWSER is set.
func browserTools(t *testing.T) (root, web, node, chromium string) {
	t.Helper()
	var err error
	root, err = filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	web = filepath.Join(root, "web", "console")
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	node, nodeErr := exec.LookPath("node")
	_, chromeErr := os.Stat(chromium)
	if nodeErr != nil || chromeErr != nil {
		if os.Getenv("MESHLENS_REQUIRE_BROWSER") != "" {
			t.Fatalf("MESHLENS_REQUIRE_BROWSER is set but node (%v) or %s (%v) is missing: run scripts/install-test-deps.sh", nodeErr, chromium, chromeErr)
		}
		t.Skipf("node (%v) or %s (%v) missing; set MESHLENS_REQUIRE_BROWSER to make this a failure", nodeErr, chromium, chromeErr)
	}
	if _, err := os.Stat(filepath.Join(web, "node_modules", "playwright-core")); err != nil {
		npm := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		npm.Dir = web
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", web, err, out)
		}
	}

	return root, web, node, chromium
}

// documentedConsoleAPI lists the endpoints the console reads that
// docs/api.md documents: the browser test requires those to be served,
// and accepts the page's "not available" state only for the others.
func documentedConsoleAPI(t *testing.T, root string) []string {
	doc, err := os.ReadFile(filepath.Join(root, "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if strings.Contains(string(doc), "/v1/console/graph") {
		out = append(out, "/v1/console/graph", "/v1/console/metrics", "/v1/console/top")
	}
	for _, p := range []string{"/v1/console/instances", "/v1/console/validate", "/api/services"} {
		if strings.Contains(string(doc), p) {
			out = append(out, p)
		}
	}
	return out
}
