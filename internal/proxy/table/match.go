package table

import (
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// Request is what route matching reads from a request. The data path
// implements it over its own request representation, so that matching
// needs no copy of the headers.
type Request interface {
	Authority() string // :authority, or Host in HTTP/1.1
	Method() string
	// Path is the request target as received, query string included.
	Path() string
	Scheme() string
	// Header returns a header by lower-case name; several values are
	// joined by ",". Pseudo-headers are asked through the methods above,
	// never through Header.
	Header(name string) (value string, ok bool)
}

// Route selects the virtual host for the request's authority (Envoy's
// precedence: exact domain, longest "*.suffix", longest "prefix*", then
// "*"; case-insensitive; the port is part of the authority unless
// IgnorePortInHostMatching) and then its first route whose match holds.
// route is nil when no route matches (404); vh is nil when no virtual host
// does. It does not allocate unless a query parameter it must read is
// percent-encoded.
func (t *RouteTable) Route(req Request) (vh *VirtualHost, route *Route) {
	vh = t.VirtualHost(req.Authority())
	if vh == nil {
		return nil, nil
	}
	target := req.Path()
	path, query := splitTarget(target)
	for _, r := range vh.Routes {
		if r.Match.matches(req, path, query) {
			return vh, r
		}
	}
	return vh, nil
}

// maxStackHost is the longest authority lower-cased without allocating.
const maxStackHost = 256

// VirtualHost finds the virtual host for an authority.
func (t *RouteTable) VirtualHost(authority string) *VirtualHost {
	ix := t.index()
	if len(ix.exact) == 0 && len(ix.suffixes) == 0 && len(ix.prefixes) == 0 {
		return ix.any
	}
	host := authority
	if t.IgnorePortInHostMatching {
		host = stripPort(host)
	}
	if !hasUpper(host) {
		return ix.lookup(host)
	}
	if len(host) > maxStackHost {
		return ix.lookup(strings.ToLower(host))
	}
	// Lower-case into a stack buffer; lookup only compares the string
	// and never keeps it, so viewing the buffer as a string is safe.
	var buf [maxStackHost]byte
	n := copy(buf[:], host)
	for i := range n {
		if c := buf[i]; 'A' <= c && c <= 'Z' {
			buf[i] = c + ('a' - 'A')
		}
	}
	return ix.lookup(unsafe.String(&buf[0], n))
}

// index returns the domain index, building it on first use for a table
// that Compile did not prepare (Compile also rejects duplicate domains,
// where a hand-built table keeps the first).
func (t *RouteTable) index() *domainIndex {
	if ix := t.idx.Load(); ix != nil {
		return ix
	}
	t.idx.CompareAndSwap(nil, buildIndex(t.VirtualHosts))
	return t.idx.Load()
}

func buildIndex(vhs []*VirtualHost) *domainIndex {
	ix := &domainIndex{exact: map[string]*VirtualHost{}}
	for _, vh := range vhs {
		for _, d := range vh.Domains {
			ld := strings.ToLower(d)
			switch {
			case ld == "*":
				if ix.any == nil {
					ix.any = vh
				}
			case strings.HasPrefix(ld, "*"):
				ix.suffixes = append(ix.suffixes, wildcardDomain{part: ld[1:], vh: vh})
			case strings.HasSuffix(ld, "*"):
				ix.prefixes = append(ix.prefixes, wildcardDomain{part: ld[:len(ld)-1], vh: vh})
			default:
				if _, dup := ix.exact[ld]; !dup {
					ix.exact[ld] = vh
				}
			}
		}
	}
	longestFirst := func(a, b wildcardDomain) int { return len(b.part) - len(a.part) }
	slices.SortStableFunc(ix.suffixes, longestFirst)
	slices.SortStableFunc(ix.prefixes, longestFirst)
	return ix
}

// lookup matches a lower-case host: exact, then suffix and prefix
// wildcards (Envoy requires the "*" to stand for at least one
// character), then "*".
func (ix *domainIndex) lookup(host string) *VirtualHost {
	if vh, ok := ix.exact[host]; ok {
		return vh
	}
	for _, w := range ix.suffixes {
		if len(host) > len(w.part) && host[len(host)-len(w.part):] == w.part {
			return w.vh
		}
	}
	for _, w := range ix.prefixes {
		if len(host) > len(w.part) && host[:len(w.part)] == w.part {
			return w.vh
		}
	}
	return ix.any
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// stripPort drops ":port" from an authority, leaving IPv6 brackets alone.
func stripPort(h string) string {
	i := strings.LastIndexByte(h, ':')
	if i < 0 || strings.LastIndexByte(h, ']') > i {
		return h
	}
	for j := i + 1; j < len(h); j++ {
		if h[j] < '0' || h[j] > '9' {
			return h
		}
	}
	return h[:i]
}

// splitTarget separates the path from the query; the fragment, if a
// client sent one, belongs to neither (Envoy drops it for matching).
func splitTarget(target string) (path, query string) {
	end := len(target)
	if i := strings.IndexByte(target, '#'); i >= 0 {
		end = i
	}
	if i := strings.IndexByte(target[:end], '?'); i >= 0 {
		return target[:i], target[i+1 : end]
	}
	return target[:end], ""
}

// Matches reports whether the route match holds for the request. It is
// what Route uses; the data path may call it to re-check a route.
func (m *RouteMatch) Matches(req Request) bool {
	path, query := splitTarget(req.Path())
	return m.matches(req, path, query)
}

// pathKind is the path condition in force; see RouteMatch.
func (m *RouteMatch) pathKind() pathKind {
	switch {
	case m.kind != pathInfer:
		return m.kind
	case m.PathRegex != nil:
		return pathRegex
	case m.PathSeparated != "":
		return pathSeparated
	case m.Path != "":
		return pathExact
	}
	return pathPrefix
}

func (m *RouteMatch) matches(req Request, path, query string) bool {
	switch m.pathKind() {
	case pathPrefix:
		if !hasPrefixCase(path, m.Prefix, m.CaseSensitive) {
			return false
		}
	case pathExact:
		if m.CaseSensitive {
			if path != m.Path {
				return false
			}
		} else if !strings.EqualFold(path, m.Path) {
			return false
		}
	case pathRegex:
		if !m.PathRegex.MatchString(path) {
			return false
		}
	case pathSeparated:
		p := m.PathSeparated
		if !hasPrefixCase(path, p, m.CaseSensitive) || (len(path) > len(p) && path[len(p)] != '/') {
			return false
		}
	}
	if m.GRPC {
		ct, ok := req.Header("content-type")
		if !ok || !strings.HasPrefix(ct, "application/grpc") {
			return false
		}
	}
	for i := range m.Headers {
		if !m.Headers[i].matches(req) {
			return false
		}
	}
	for i := range m.Query {
		if !m.Query[i].matches(query) {
			return false
		}
	}
	return true
}

func hasPrefixCase(s, prefix string, caseSensitive bool) bool {
	if caseSensitive {
		return strings.HasPrefix(s, prefix)
	}
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// header reads a header or pseudo-header.
func header(req Request, name string) (string, bool) {
	if len(name) > 0 && name[0] == ':' {
		switch name {
		case ":authority":
			return req.Authority(), true
		case ":method":
			return req.Method(), true
		case ":path":
			return req.Path(), true
		case ":scheme":
			return req.Scheme(), true
		}
	}
	return req.Header(name)
}

func (h *HeaderMatcher) matches(req Request) bool {
	v, ok := header(req, h.Name)
	if !ok {
		if !h.TreatMissingAsEmpty {
			if h.Present != nil {
				return *h.Present == h.Invert
			}
			return false
		}
		v = ""
	}
	var match bool
	switch {
	case h.Present != nil:
		match = *h.Present
	case h.Exact != nil:
		match = equalCase(v, *h.Exact, h.IgnoreCase)
	case h.Prefix != nil:
		match = hasPrefixCase(v, *h.Prefix, !h.IgnoreCase)
	case h.Suffix != nil:
		match = hasSuffixCase(v, *h.Suffix, !h.IgnoreCase)
	case h.Contains != nil:
		match = containsCase(v, *h.Contains, h.IgnoreCase)
	case h.Regex != nil:
		match = h.Regex.MatchString(v)
	case h.Range != nil:
		n, err := strconv.ParseInt(v, 10, 64)
		match = err == nil && n >= h.Range.Start && n < h.Range.End
	}
	return match != h.Invert
}

func equalCase(a, b string, ignoreCase bool) bool {
	if ignoreCase {
		return strings.EqualFold(a, b)
	}
	return a == b
}

func hasSuffixCase(s, suffix string, caseSensitive bool) bool {
	if caseSensitive {
		return strings.HasSuffix(s, suffix)
	}
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

func containsCase(s, sub string, ignoreCase bool) bool {
	if !ignoreCase {
		return strings.Contains(s, sub)
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

func (q *QueryMatcher) matches(query string) bool {
	v, ok := queryParam(query, q.Name)
	switch {
	case q.Present:
		return ok
	case q.Absent:
		return !ok
	case !ok:
		return false
	case q.Exact != nil:
		return equalCase(v, *q.Exact, q.IgnoreCase)
	case q.Prefix != nil:
		return hasPrefixCase(v, *q.Prefix, !q.IgnoreCase)
	case q.Suffix != nil:
		return hasSuffixCase(v, *q.Suffix, !q.IgnoreCase)
	case q.Contains != nil:
		return containsCase(v, *q.Contains, q.IgnoreCase)
	case q.Regex != nil:
		return q.Regex.MatchString(v)
	}
	return true
}

// queryParam finds the first occurrence of a parameter in a raw query
// string and returns its percent-decoded value. A parameter without "="
// has the empty value. Only a key or value holding '%' is decoded, which
// is the only case that allocates.
func queryParam(query, name string) (string, bool) {
	for query != "" {
		var kv string
		kv, query, _ = strings.Cut(query, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if strings.IndexByte(k, '%') >= 0 {
			k = percentDecode(k)
		}
		if k != name {
			continue
		}
		if strings.IndexByte(v, '%') >= 0 {
			v = percentDecode(v)
		}
		return v, true
	}
	return "", false
}

// percentDecode decodes %XX escapes; a malformed escape is kept as is,
// as Envoy keeps it.
func percentDecode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
