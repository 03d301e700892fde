// Package consoleui serves the meshlens console, the single-page web
// front-end under /ui/ on the control plane's API address. The page is
// built from web/console (Vite and TypeScript) into dist/, which is
// committed and embedded here, so a control plane binary shows the
// console with no front-end toolchain on the machine; scripts/
// check-console.sh fails when dist/ differs from a rebuild of the
// sources.
//
// The handler serves dist/ with the content type of each file's
// extension, long-lived caching for the content-hashed assets and none
// for index.html, index.html for any other path under /ui/ (the page
// routes by the URL's hash, and an old bookmark still lands on the
// page), and a Content-Security-Policy that allows scripts only from the
// same origin: the page has no inline script.
package consoleui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// Prefix is where the console is served.
const Prefix = "/ui/"

// CSP is the console's Content-Security-Policy: everything from the
// control plane itself, no inline or evaluated script, no framing.
// Styles allow 'unsafe-inline' because the graph and plot libraries set
// element styles from script.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// Options configure the handler.
type Options struct {
	// Auth: the API needs a token. The page's preload of /v1/meshes,
	// which the browser sends without one, is then left out of
	// index.html: it would only be answered 401 (the console calls the
	// API with the signed-in token).
	Auth bool
}

// preloadMeshes is index.html's preload of the first API call.
var preloadMeshes = regexp.MustCompile(`\s*<link rel="preload" href="/v1/meshes"[^>]*>`)

// Handler serves the console under Prefix; mount it at Prefix.
func Handler(opts Options) http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic("consoleui: the embedded bundle has no dist directory: " + err.Error())
	}
	h := &handler{files: sub}
	if opts.Auth {
		page, err := fs.ReadFile(sub, "index.html")
		if err != nil {
			panic("consoleui: the embedded bundle has no index.html: " + err.Error())
		}
		h.index = preloadMeshes.ReplaceAll(page, nil)
	}
	return h
}

// contentTypes are the types of the files a Vite build writes, fixed here
// rather than read from the machine's mime.types, which may differ.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
	".json":  "application/json",
	".txt":   "text/plain; charset=utf-8",
}

type handler struct {
	files fs.FS
	index []byte // index.html as served, when it differs from the bundle's
}

// read returns a file of the bundle as served.
func (h *handler) read(name string) ([]byte, error) {
	if name == "index.html" && h.index != nil {
		return h.index, nil
	}
	return fs.ReadFile(h.files, name)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", CSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "the console is read with GET", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(r.URL.Path, Prefix)), "/")
	if name == "" {
		name = "index.html"
	}
	body, err := h.read(name)
	if err != nil {
		if strings.HasPrefix(name, "assets/") {
			// A missing asset is a real 404: answering the page in its
			// place would hand a script tag HTML.
			http.Error(w, "no such console asset: "+name, http.StatusNotFound)
			return
		}
		name = "index.html"
		if body, err = h.read(name); err != nil {
			http.Error(w, "the console bundle has no index.html", http.StatusInternalServerError)
			return
		}
	}
	ctype, ok := contentTypes[path.Ext(name)]
	if !ok {
		ctype = "application/octet-stream"
	}
	hdr.Set("Content-Type", ctype)
	if strings.HasPrefix(name, "assets/") {
		// Vite names every asset by a hash of its content.
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
