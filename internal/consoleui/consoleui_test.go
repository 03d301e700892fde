package consoleui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// The embedded bundle's page, its hashed assets, the SPA fallback and the
// security headers.
func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle(Prefix, Handler(Options{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	page := get(t, srv.URL+"/ui/")
	assets := regexp.MustCompile(`/ui/assets/[A-Za-z0-9_.-]+\.(js|css)`).FindAllString(page.body, -1)
	if len(assets) < 2 {
		t.Fatalf("index.html names %d assets, want a script and a stylesheet:\n%s", len(assets), page.body)
	}
	if strings.Contains(page.body, "<script>") || regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`).MatchString(page.body) {
		t.Errorf("index.html has an inline script, which the CSP would block:\n%s", page.body)
	}

	tests := []struct {
		path, ctype, cache string
		status             int
	}{
		{"/ui/", "text/html; charset=utf-8", "no-cache", 200},
		{"/ui/index.html", "text/html; charset=utf-8", "no-cache", 200},
		{"/ui/graph/deep/link", "text/html; charset=utf-8", "no-cache", 200},
		{"/ui/assets/missing.js", "text/plain; charset=utf-8", "", 404},
	}
	for _, a := range assets {
		ctype := "text/javascript; charset=utf-8"
		if strings.HasSuffix(a, ".css") {
			ctype = "text/css; charset=utf-8"
		}
		tests = append(tests, struct {
			path, ctype, cache string
			status             int
		}{a, ctype, "public, max-age=31536000, immutable", 200})
	}
	for _, tc := range tests {
		r := get(t, srv.URL+tc.path)
		if r.status != tc.status || r.hdr.Get("Content-Type") != tc.ctype || r.hdr.Get("Cache-Control") != tc.cache {
			t.Errorf("GET %s: %d %q %q, want %d %q %q", tc.path, r.status, r.hdr.Get("Content-Type"), r.hdr.Get("Cache-Control"), tc.status, tc.ctype, tc.cache)
		}
		if csp := r.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP %q", tc.path, csp)
		}
		if r.hdr.Get("X-Content-Type-Options") != "nosniff" || r.hdr.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", tc.path, r.hdr)
		}
	}

	resp, err := http.Post(srv.URL+"/ui/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /ui/: %s allow %q", resp.Status, resp.Header.Get("Allow"))
	}
}

// A path that climbs out of /ui/ reaches no file outside the bundle,
// even when it reaches the handler uncleaned.
func TestHandlerPathClimb(t *testing.T) {
	for _, p := range []string{"/ui/../../etc/passwd", "/ui/assets/../../../go.mod", "/ui/%2e%2e/consoleui.go"} {
		req := httptest.NewRequest("GET", "/ui/", nil)
		req.URL.Path = p
		rec := httptest.NewRecorder()
		Handler(Options{}).ServeHTTP(rec, req)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "<title>meshlens console</title>") {
			t.Errorf("GET %s: %d %.80q, want the console's page", p, rec.Code, rec.Body.String())
		}
	}
}

// Every file the build wrote has a fixed content type: none would be
// served as application/octet-stream.
func TestEveryFileHasAType(t *testing.T) {
	err := fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		i := strings.LastIndex(p, ".")
		if i < 0 || contentTypes[p[i:]] == "" {
			t.Errorf("%s: no content type for its extension", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type answer struct {
	status int
	hdr    http.Header
	body   string
}

func get(t *testing.T, url string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.URL.Opaque = strings.TrimPrefix(url, "http:") // keep ../ unresolved
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return answer{resp.StatusCode, resp.Header, b.String()}
}

// With tokens on, index.html leaves out its preload of /v1/meshes, which
// the browser would send without the token only to be answered 401;
// without them the preload stays, and the rest of the page is the same.
func TestAuthPageHasNoTokenlessPreload(t *testing.T) {
	serve := func(opts Options) string {
		rec := httptest.NewRecorder()
		Handler(opts).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /ui/ %+v: %d", opts, rec.Code)
		}
		return rec.Body.String()
	}
	open, auth := serve(Options{}), serve(Options{Auth: true})
	if !strings.Contains(open, `rel="preload" href="/v1/meshes"`) {
		t.Fatalf("the page without tokens lost its preload:\n%s", open)
	}
	if strings.Contains(auth, "/v1/meshes") {
		t.Fatalf("the page with tokens still preloads /v1/meshes:\n%s", auth)
	}
	if got := preloadMeshes.ReplaceAllString(open, ""); got != auth {
		t.Fatalf("the pages differ beyond the preload:\n%s\n---\n%s", open, auth)
	}
	if !strings.Contains(auth, `rel="modulepreload"`) {
		t.Fatalf("the module preloads went too:\n%s", auth)
	}
}
