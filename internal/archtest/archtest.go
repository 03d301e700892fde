// Package archtest checks the module's import boundaries: which packages
// may depend on which, followed transitively, so a rule cannot be dodged
// through a package in between or by a subpackage. The rules (Rules) are
// the architecture of docs/architecture.md written as code; the package's
// test loads the real import graph with `go list` and fails on any
// violation, naming the chain of imports that breaks the rule.
//
// Only the packages' own (non-test) imports count: they are what the
// binary links. A test may put both sides of a boundary together, for
// example to check that what the control plane writes the proxy can read.
package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
)

// Rule forbids the packages From from depending, directly or through any
// chain of imports, on the packages Not. A pattern is a path relative to
// the module ("internal/xds" is that package alone; "internal/proxy/..."
// is that package and every package below it).
type Rule struct {
	From []string
	Not  []string
	// Why is the reason in one line, printed with every violation.
	Why string
}

// Rules are the module's boundaries.
var Rules = []Rule{
	{
		From: []string{"internal/proxy/...", "internal/sidecar/..."},
		Not:  []string{"internal/controlplane/...", "internal/xds/...", "internal/store/...", "internal/registry/..."},
		Why:  "the data plane meets the control plane only at xDS (and the REST API through internal/apiclient); it must run, and be replaced, without the server's code",
	},
	{
		From: []string{"internal/xds/...", "internal/controlplane/...", "internal/store/...", "internal/registry/..."},
		Not:  []string{"internal/proxy/...", "internal/sidecar/..."},
		Why:  "the control plane serves any xDS client (Envoy, grpc-go, the meshlens proxy) and must not depend on one of them",
	},
	{
		From: []string{"cmd/meshlens-proxy", "internal/proxycmd"},
		// The control plane's packages are the first rule's, which
		// internal/sidecar already keeps out.
		Not: []string{"internal/cli/...", "internal/console/...", "internal/consoleui/...", "internal/demo/...", "internal/tracestore/...", "internal/metricshistory/..."},
		Why: "meshlens-proxy is the sidecar alone: every package of the server it links is pages an idle sidecar maps for nothing (docs/design.md)",
	},
	{
		From: []string{"api/..."},
		Not:  []string{"internal/..."},
		Why:  "api/ is the public API: code outside the module cannot import internal/, so an api package that does is unusable",
	},
	{
		From: []string{"internal/stats/..."},
		Not:  []string{"internal/proxy/...", "internal/xds/...", "internal/xdsmeta/...", "internal/controlplane/..."},
		Why:  "stats names and counts; it knows no routing, so the proxy's request path and the control plane can both use it",
	},
	{
		From: []string{"internal/xdsmeta/..."},
		Not:  []string{"internal/..."},
		Why:  "the xDS names and metadata are the meeting point of both sides and must pull in neither",
	},
}

// Graph maps each package of the module (its import path) to the
// packages of the module it imports directly. Packages outside the module
// are left out: none of them can import the module's internal packages.
type Graph map[string][]string

// Check returns the violations of rules in g, a module with path module:
// one line per (package, forbidden package) pair with the shortest chain
// of imports between them, and one line per rule pattern that matches no
// package (a rule that checks nothing is a typo). Nil means every rule
// holds.
func Check(module string, g Graph, rules []Rule) []string {
	var out []string
	pkgs := make([]string, 0, len(g))
	for p := range g {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, r := range rules {
		for _, pat := range append(slices.Clone(r.From), r.Not...) {
			if !slices.ContainsFunc(pkgs, func(p string) bool { return match(module, pat, p) }) {
				out = append(out, fmt.Sprintf("rule pattern %s matches no package (%s)", pat, r.Why))
			}
		}
		for _, from := range pkgs {
			if !matchAny(module, r.From, from) {
				continue
			}
			for _, chain := range reach(g, from) {
				to := chain[len(chain)-1]
				if matchAny(module, r.Not, to) {
					out = append(out, fmt.Sprintf("%s: %s", strings.Join(trim(module, chain), " -> "), r.Why))
				}
			}
		}
	}
	return out
}

// reach returns, for every package from depends on, the shortest chain of
// imports from it, in breadth-first order.
func reach(g Graph, from string) [][]string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	var out [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		imps := slices.Clone(g[p])
		slices.Sort(imps)
		for _, q := range imps {
			if _, seen := prev[q]; seen {
				continue
			}
			prev[q] = p
			queue = append(queue, q)
			chain := []string{q}
			for c := p; c != ""; c = prev[c] {
				chain = append(chain, c)
			}
			slices.Reverse(chain)
			out = append(out, chain)
		}
	}
	return out
}

// match reports whether pkg, a full import path, matches pattern, a path
// relative to module, optionally ending in "/...".
func match(module, pattern, pkg string) bool {
	rel, ok := strings.CutPrefix(pkg, module+"/")
	if !ok {
		return false
	}
	if base, tree := strings.CutSuffix(pattern, "/..."); tree {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

func matchAny(module string, patterns []string, pkg string) bool {
	return slices.ContainsFunc(patterns, func(pat string) bool { return match(module, pat, pkg) })
}

// trim shortens import paths to paths relative to the module.
func trim(module string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = strings.TrimPrefix(p, module+"/")
	}
	return out
}

// Load lists the packages of the module in dir with `go list -json ./...`
// and returns the module path and its import graph. A package that does
// not load (a syntax error, a missing import) is an error: a graph with a
// hole could hide a violation.
func Load(dir string) (string, Graph, error) {
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Module,Error", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list in %s: %w: %s", dir, err, stderr.String())
	}
	type pkg struct {
		ImportPath string
		Imports    []string
		Module     *struct{ Path string }
		Error      *struct{ Err string }
	}
	var list []pkg
	module := ""
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", nil, fmt.Errorf("go list output: %w", err)
		}
		if p.Error != nil {
			return "", nil, fmt.Errorf("package %s: %s", p.ImportPath, p.Error.Err)
		}
		if p.Module == nil {
			return "", nil, fmt.Errorf("package %s: not in a module", p.ImportPath)
		}
		if module == "" {
			module = p.Module.Path
		}
		list = append(list, p)
	}
	if module == "" {
		return "", nil, fmt.Errorf("go list in %s: no packages", dir)
	}
	g := Graph{}
	for _, p := range list {
		var in []string
		for _, imp := range p.Imports {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				in = append(in, imp)
			}
		}
		g[p.ImportPath] = in
	}
	return module, g, nil
}
