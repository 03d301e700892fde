package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeerTLS: --api-tls-ca names a PEM bundle the replicas verify each
// other with; without it the system's roots are used; a file that is
// missing or holds no certificate is refused naming the flag.
func TestPeerTLS(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := peerTLS(""); err != nil || cfg.RootCAs != nil {
		t.Fatalf(`peerTLS("") = %+v, %v; want the system's roots`, cfg, err)
	}
	for _, tc := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.pem"), "--api-tls-ca: "},
		{notPEM, "--api-tls-ca " + notPEM + ": no PEM certificate"},
	} {
		if _, err := peerTLS(tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("peerTLS(%s) = %v, want an error with %q", tc.file, err, tc.want)
		}
	}
}
