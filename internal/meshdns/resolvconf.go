package meshdns

import (
	"bufio"
	"io"
	"os"
	"strings"
)

// resolvConfPort is the port of resolv.conf's nameservers: the file has
// no way to name another.
const resolvConfPort = "53"

// readResolvConf returns the nameservers of a resolv.conf(5) file.
func readResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseResolvConf(f)
}

// parseResolvConf returns the nameservers of resolv.conf(5) text, in
// order: the second field of each line whose first field is
// "nameserver", as it is written (further fields are ignored, as glibc
// and miekg/dns's ClientConfigFromReader ignore them). Nothing else of
// the file matters to a forwarder: search domains and ndots are the
// client's business, and the server has its own timeout and tries every
// nameserver once.
func parseResolvConf(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var out []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 1 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out, sc.Err()
}
