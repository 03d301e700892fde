package meshdns

import (
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
)

// VIPRange is where mesh names get their addresses: the class E range
// 240.0.0.0/4 is reserved, so no real destination is shadowed.
var VIPRange = netip.MustParsePrefix("240.240.0.0/16")

// Table maps mesh names to their addresses. It is immutable; the sidecar
// builds a new one on each configuration and swaps it in.
type Table struct {
	addrs map[string]netip.Addr // canonical FQDN ("a.b.") -> address
}

// NewTable gives each name an address in VIPRange: the FNV-1a hash of the
// lower-case name picks one of the range's 65534 host addresses; when two
// names hash to the same one, the name that sorts later takes the next
// free address. Names that are not valid DNS names are skipped.
func NewTable(names []string) *Table {
	t := &Table{addrs: map[string]netip.Addr{}}
	canon := make([]string, 0, len(names))
	for _, n := range names {
		fq := canonicalName(strings.TrimSpace(n))
		if fq == "." {
			continue
		}
		if !isDomainName(fq) {
			continue
		}
		canon = append(canon, fq)
	}
	slices.Sort(canon)
	canon = slices.Compact(canon)
	used := map[netip.Addr]bool{}
	base := VIPRange.Addr().As4()
	const hosts = 1<<16 - 2 // .0.0 and .255.255 are left out
	for _, n := range canon {
		h := fnv.New32a()
		h.Write([]byte(n))
		i := h.Sum32() % hosts
		for {
			v := i + 1
			a := netip.AddrFrom4([4]byte{base[0], base[1], byte(v >> 8), byte(v)})
			if !used[a] {
				used[a] = true
				t.addrs[n] = a
				break
			}
			i = (i + 1) % hosts
		}
		if len(used) == hosts {
			break
		}
	}
	return t
}

// Lookup returns the address of name (any case, with or without the
// final dot).
func (t *Table) Lookup(name string) (netip.Addr, bool) {
	if t == nil {
		return netip.Addr{}, false
	}
	a, ok := t.addrs[canonicalName(name)]
	return a, ok
}

// lookupQuestion returns the address of a question's name, in
// presentation form and fully qualified as decodeQuery gives it.
func (t *Table) lookupQuestion(name string) (netip.Addr, bool) {
	if t == nil {
		return netip.Addr{}, false
	}
	a, ok := t.addrs[lower(name)]
	return a, ok
}

// Len is the number of names.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.addrs)
}

// Names returns the names, sorted, as canonical FQDNs.
func (t *Table) Names() []string {
	if t == nil {
		return nil
	}
	out := make([]string, 0, len(t.addrs))
	for n := range t.addrs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// The functions below treat names in presentation form (RFC 1035 5.1:
// "\." is a dot within a label, "\DDD" a byte) as miekg/dns does, so that
// a table holds the names it held when the server used that library.

// canonicalName is name fully qualified, its ASCII letters in lower case
// (RFC 4034 6.2).
func canonicalName(name string) string {
	if !isFqdn(name) {
		name += "."
	}
	return lower(name)
}

// lower is s with its ASCII letters in lower case, and only those.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// isFqdn reports whether s ends with a dot that is not escaped.
func isFqdn(s string) bool {
	if s == "" || s[len(s)-1] != '.' {
		return false
	}
	s = s[:len(s)-1]
	// The dot is escaped when an odd number of backslashes precede it.
	n := len(s) - len(strings.TrimRight(s, "\\"))
	return n%2 == 0
}

// isDomainName reports whether s, fully qualified, is a domain name: no
// empty label but the root, labels of at most 63 bytes and at most 255
// bytes in all on the wire, escapes counting as the byte they stand for.
func isDomainName(s string) bool {
	if s == "" {
		return false
	}
	if !isFqdn(s) {
		s += "."
	}
	if s == "." {
		return true
	}
	wire := 1 // the root label
	label := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			if i+1 == len(s) {
				return false // a dangling escape
			}
			if isDDD(s[i+1:]) {
				i += 3
			} else {
				i++
			}
			label++
		case c == '.':
			if label == 0 || label > 63 {
				return false
			}
			if wire += 1 + label; wire > 255 {
				return false
			}
			label = 0
		default:
			label++
		}
	}
	return label == 0
}

// isDDD reports whether s starts with three decimal digits.
func isDDD(s string) bool {
	return len(s) >= 3 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
