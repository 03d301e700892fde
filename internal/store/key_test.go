package store

import (
	"strings"
	"testing"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

func TestKeyEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key  v1alpha1.Key
		want string
	}{
		{v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: "shop"}, "Mesh///shop"},
		{v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: "shop", Name: "front-end.v2_a"}, "VirtualNode/shop//front-end.v2_a"},
		{v1alpha1.Key{Kind: v1alpha1.KindRoute, Mesh: "m", Parent: "r", Name: "x"}, "Route/m/r/x"},
		// Separators and escapes inside names stay unambiguous.
		{v1alpha1.Key{Kind: v1alpha1.KindRoute, Mesh: "m", Parent: "a/b", Name: "c"}, "Route/m/a%2Fb/c"},
		{v1alpha1.Key{Kind: v1alpha1.KindRoute, Mesh: "m", Parent: "a", Name: "b/c"}, "Route/m/a/b%2Fc"},
		{v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: "m", Name: "100%25"}, "VirtualNode/m//100%2525"},
		{v1alpha1.Key{Kind: v1alpha1.KindVirtualService, Mesh: "m", Name: "é ü"}, "VirtualService/m//%C3%A9%20%C3%BC"},
	}
	seen := map[string]v1alpha1.Key{}
	for _, tt := range tests {
		got := string(EncodeKey(tt.key))
		if got != tt.want {
			t.Errorf("EncodeKey(%#v) = %q, want %q", tt.key, got, tt.want)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%#v and %#v both encode as %q", tt.key, other, got)
		}
		seen[got] = tt.key
		back, err := DecodeKey([]byte(got))
		if err != nil || back != tt.key {
			t.Errorf("DecodeKey(%q) = %#v, %v; want %#v", got, back, err, tt.key)
		}
	}
}

func TestDecodeKeyRejects(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", "4 parts"},
		{"Mesh/m", "4 parts"},
		{"Route/m/r/x/y", "4 parts"},
		{"Mesh///%zz", "part 3"},
		{"Mesh///a%2fb", "canonical"}, // lower-case escape: a second spelling
		{"Mesh///a%2Eb", "canonical"}, // needless escape
	}
	for _, tt := range tests {
		if k, err := DecodeKey([]byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DecodeKey(%q) = %#v, %v; want an error mentioning %q", tt.in, k, err, tt.want)
		}
	}
}

// FuzzDecodeKey: any bytes either fail or decode to a key whose encoding
// is exactly those bytes.
func FuzzDecodeKey(f *testing.F) {
	for _, s := range []string{"Mesh///m", "Route/m/r/x", "VirtualNode/m//a%2Fb", "a/b", "%", "////"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeKey(b)
		if err != nil {
			return
		}
		if got := string(EncodeKey(k)); got != string(b) {
			t.Fatalf("DecodeKey(%q) = %#v, which encodes as %q", b, k, got)
		}
	})
}

// FuzzKeyRoundTrip: every key survives encoding, and distinct keys never
// share an encoding (the decode is a function of the bytes).
func FuzzKeyRoundTrip(f *testing.F) {
	f.Add("Route", "m", "r", "x")
	f.Add("Mesh", "", "", "a/b%c")
	f.Add("VirtualNode", "m/", "", "/n")
	f.Fuzz(func(t *testing.T, kind, mesh, parent, name string) {
		k := v1alpha1.Key{Kind: v1alpha1.Kind(kind), Mesh: mesh, Parent: parent, Name: name}
		back, err := DecodeKey(EncodeKey(k))
		if err != nil || back != k {
			t.Fatalf("round trip of %#v = %#v, %v", k, back, err)
		}
	})
}

// FuzzDecodeRecord: a damaged record is an error, never a panic or a
// resource filed under another key.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte("Mesh///m"), []byte(`{"kind":"Mesh","name":"m","metadata":{"version":1},"spec":{}}`))
	f.Add([]byte("VirtualNode/m//n"), []byte(`{"kind":"VirtualNode","mesh":"m","name":"n","metadata":{"version":2},"spec":{"listeners":[{"portMapping":{"port":80,"protocol":"http"}}]}}`))
	f.Add([]byte("Route/m/r/x"), []byte(`{"kind":"rt","mesh":"m","virtualRouter":"r","name":"x","metadata":{},"spec":null}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		r, err := decodeRecord(key, value)
		if err != nil {
			return
		}
		if got := string(EncodeKey(r.Key())); got != string(key) {
			t.Fatalf("record under %q decoded as %s", key, r.Key())
		}
		if r.Metadata == nil {
			t.Fatal("decoded a record without metadata")
		}
	})
}
