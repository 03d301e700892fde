package tlsctx

import (
	"crypto/tls"
	"testing"

	"github.com/meshlens/meshlens/internal/proxy/sds"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// TestModernTLSOnly: server and client contexts, from files or SDS,
// accept TLS 1.2 and later with ECDHE AEAD suites only.
func TestModernTLSOnly(t *testing.T) {
	t.Parallel()
	store := sds.NewStore()
	down, err := DownstreamConfig(&table.DownstreamTLS{SDSCertName: "id", SDSCAName: "root"}, nil, store)
	if err != nil {
		t.Fatal(err)
	}
	up, err := UpstreamConfig(&table.UpstreamTLS{SDSCertName: "id", SDSCAName: "root"}, store)
	if err != nil {
		t.Fatal(err)
	}
	ok := map[uint16]bool{}
	for _, id := range modernSuites {
		ok[id] = true
	}
	for name, c := range map[string]*tls.Config{"downstream": down, "upstream": up} {
		if c.MinVersion != tls.VersionTLS12 {
			t.Errorf("%s: MinVersion %x, want TLS 1.2", name, c.MinVersion)
		}
		if len(c.CipherSuites) == 0 {
			t.Errorf("%s: Go's default suites (CBC included)", name)
		}
		for _, id := range c.CipherSuites {
			if !ok[id] || tls.CipherSuiteName(id) == "" {
				t.Errorf("%s: suite %s is not ECDHE+AEAD", name, tls.CipherSuiteName(id))
			}
		}
	}
	// A secret not received yet fails the handshake, naming it.
	if _, err := down.GetConfigForClient(&tls.ClientHelloInfo{}); err == nil || err.Error() != "SDS secret id not received" {
		t.Errorf("missing secret: %v", err)
	}
}
