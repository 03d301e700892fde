package meshdns

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseResolvConf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		want       []string
	}{
		{"empty", "", nil},
		{"comments only", "# nameserver 10.0.0.9\n; nameserver 10.0.0.8\n", nil},
		{"one", "nameserver 10.0.0.2\n", []string{"10.0.0.2"}},
		{"no final newline", "nameserver 10.0.0.2", []string{"10.0.0.2"}},
		{"order kept, other lines skipped", "search demo.local\nnameserver 10.0.0.2\noptions ndots:2 timeout:1 attempts:3\nnameserver fd00::53\ndomain demo.local\n", []string{"10.0.0.2", "fd00::53"}},
		{"tabs, spaces and CRLF", "  nameserver\t10.0.0.2  \r\n\tnameserver   10.0.0.3\r\n", []string{"10.0.0.2", "10.0.0.3"}},
		{"trailing fields and comments ignored", "nameserver 10.0.0.2 # the host's\nnameserver 10.0.0.3 extra\n", []string{"10.0.0.2", "10.0.0.3"}},
		{"scoped IPv6", "nameserver fe80::1%eth0\n", []string{"fe80::1%eth0"}},
		{"keyword without address", "nameserver\nnameserver   \n", nil},
		{"keyword is case-sensitive and whole", "Nameserver 10.0.0.2\nnameservers 10.0.0.3\n#nameserver 10.0.0.4\n", nil},
		{"more than three kept here (upstreams cuts)", "nameserver 1.1.1.1\nnameserver 1.1.1.2\nnameserver 1.1.1.3\nnameserver 1.1.1.4\n", []string{"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"}},
		{"long line", "search " + strings.Repeat("a.", 40000) + "\nnameserver 10.0.0.2\n", []string{"10.0.0.2"}},
	}
	for _, tt := range tests {
		got, err := parseResolvConf(strings.NewReader(tt.text))
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestParseResolvConfReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	if _, err := parseResolvConf(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Fatalf("read error: %v, want %v", err, boom)
	}
}

func TestReadResolvConfFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := readResolvConf(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte("nameserver 10.0.0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readResolvConf(path); err != nil || !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Fatalf("got %q, %v", got, err)
	}
	// A directory is an error, not an empty configuration.
	if _, err := upstreams(Config{ResolvConf: dir}); err == nil {
		t.Fatal("a directory as resolv.conf was taken")
	}
}
