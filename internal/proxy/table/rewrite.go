package table

import "strings"

// HasPathRewrite reports whether RewritePath can change a path, so that
// the data path can skip the call (and keep its own request target).
func (r *Route) HasPathRewrite() bool {
	return r.PrefixRewrite != "" || r.RegexRewrite != nil
}

// RewritePath applies the route's prefix_rewrite or regex_rewrite to a
// request target (path and query, as received) that this route matched,
// and returns the target to send upstream; the query string is kept as
// is. prefix_rewrite replaces the matched prefix (prefix and
// path_separated_prefix routes) or the whole path (exact and regex
// routes); regex_rewrite replaces every match of its pattern in the path,
// as Envoy does. Without a rewrite it returns target unchanged and does
// not allocate.
func (r *Route) RewritePath(target string) string {
	if !r.HasPathRewrite() {
		return target
	}
	path, rest := target, ""
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		path, rest = target[:i], target[i:]
	}
	if r.RegexRewrite != nil {
		return r.RegexRewrite.ReplaceAllString(path, r.regexTemplate) + rest
	}
	n := len(path)
	switch r.Match.pathKind() {
	case pathPrefix:
		n = min(n, len(r.Match.Prefix))
	case pathSeparated:
		n = min(n, len(r.Match.PathSeparated))
	}
	return r.PrefixRewrite + path[n:] + rest
}
