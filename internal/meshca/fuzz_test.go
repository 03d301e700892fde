package meshca

import "testing"

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"spiffe://demo/virtualNode/web", "spiffe://a/virtualGateway/b", "spiffe://", "spiffe://x/../y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err == nil && id.String() != s {
			t.Fatalf("ParseID(%q) = %q", s, id.String())
		}
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	f.Add([]byte("0101010101010101010101010101010101010101010101010101010101010101"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseKey(b) })
}

func FuzzParseRoot(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, c, k []byte) {
		cert, key, err := ParseRoot(c, k)
		if err == nil && (cert == nil || key == nil) {
			t.Fatal("nil root without error")
		}
	})
}
