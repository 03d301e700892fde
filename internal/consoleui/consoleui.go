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

// Handler serves the console under Prefix; mount it at Prefix.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic("consoleui: the embedded bundle has no dist directory: " + err.Error())
	}
	return &handler{files: sub}
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
	body, err := fs.ReadFile(h.files, name)
	if err != nil {
		if strings.HasPrefix(name, "assets/") {
			// A missing asset is a real 404: answering the page in its
			// place would hand a script tag HTML.
			http.Error(w, "no such console asset: "+name, http.StatusNotFound)
			return
		}
		name = "index.html"
		if body, err = fs.ReadFile(h.files, name); err != nil {
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
