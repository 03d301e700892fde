package meshdns

import (
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
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
		fq := dns.CanonicalName(strings.TrimSpace(n))
		if fq == "." {
			continue
		}
		if _, ok := dns.IsDomainName(fq); !ok {
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
	a, ok := t.addrs[dns.CanonicalName(name)]
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
